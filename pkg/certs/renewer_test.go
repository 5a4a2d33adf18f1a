package certs

import (
	"context"
	"crypto/x509"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRenewerLifecycle(t *testing.T) {
	c := newClock(time.Now())
	m := &Manager{Dir: t.TempDir(), Now: c.now, Lifetime: time.Hour}
	renewed := make(chan *x509.Certificate, 1)
	r := &Renewer{Manager: m, Interval: 10 * time.Millisecond, OnRenew: func(leaf *x509.Certificate, err error) {
		if err == nil {
			select {
			case renewed <- leaf:
			default:
			}
		}
	}}
	assert.Error(t, r.Health(context.Background()), "no certificate before Start")
	require.NoError(t, r.Start(context.Background()))
	assert.Error(t, r.Start(context.Background()), "a second Start is refused")
	require.NoError(t, r.Health(context.Background()))
	first := m.Leaf().SerialNumber

	c.add(50 * time.Minute)
	select {
	case leaf := <-renewed:
		assert.NotEqual(t, first, leaf.SerialNumber)
	case <-time.After(10 * time.Second):
		t.Fatal("no renewal")
	}
	require.NoError(t, r.Stop(context.Background()))
	c.add(2 * time.Hour) // past the renewed certificate too; nothing renews it now
	assert.Error(t, r.Health(context.Background()), "an expired certificate is unhealthy")
}
