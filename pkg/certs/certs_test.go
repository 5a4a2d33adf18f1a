package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type clock struct{ t atomic.Int64 }

func (c *clock) now() time.Time      { return time.Unix(0, c.t.Load()) }
func (c *clock) set(t time.Time)     { c.t.Store(t.UnixNano()) }
func (c *clock) add(d time.Duration) { c.t.Add(int64(d)) }
func newClock(t time.Time) *clock    { c := &clock{}; c.set(t); return c }

func TestEnsureCreatesCAAndCertWithPermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	m := &Manager{Dir: dir, Names: []string{"localdev-registry", "registry.local", "172.18.0.1"}}
	renewed, err := m.Ensure()
	require.NoError(t, err)
	assert.True(t, renewed)

	modes := map[string]os.FileMode{"": 0o700, CAKeyFile: 0o600, KeyFile: 0o600, CAFile: 0o644, CertFile: 0o644}
	for name, want := range modes {
		info, err := os.Stat(filepath.Join(dir, name))
		require.NoError(t, err, name)
		assert.Equal(t, want, info.Mode().Perm(), "mode of %q", name)
	}

	leaf := m.Leaf()
	for _, n := range []string{"localhost", "127.0.0.1", "::1", "host.docker.internal", "localdev-registry", "registry.local", "172.18.0.1"} {
		assert.NoError(t, leaf.VerifyHostname(n), n)
	}
	assert.Error(t, leaf.VerifyHostname("example.com"))

	// The chain verifies against the CA alone.
	caPEM, err := m.CAPEM()
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(caPEM))
	_, err = leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "registry.local"})
	require.NoError(t, err)
	assert.Equal(t, "ECDSA", leaf.PublicKeyAlgorithm.String())

	// A second manager on the same dir reuses everything.
	m2 := &Manager{Dir: dir, Names: m.Names}
	renewed, err = m2.Ensure()
	require.NoError(t, err)
	assert.False(t, renewed)
	assert.Equal(t, leaf.SerialNumber, m2.Leaf().SerialNumber)
}

func TestRenewal(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		advance time.Duration
		names   []string
		renew   bool
	}{
		{name: "fresh", advance: 0, renew: false},
		{name: "more than a third left", advance: 59 * 24 * time.Hour, renew: false},
		{name: "a third left", advance: 61 * 24 * time.Hour, renew: true},
		{name: "expired", advance: 100 * 24 * time.Hour, renew: true},
		{name: "new name", advance: 0, names: []string{"extra.example"}, renew: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock(start)
			dir := t.TempDir()
			m := &Manager{Dir: dir, Now: c.now, Lifetime: 90 * 24 * time.Hour}
			_, err := m.Ensure()
			require.NoError(t, err)
			first := m.Leaf()
			c.add(tt.advance)
			m2 := &Manager{Dir: dir, Now: c.now, Lifetime: 90 * 24 * time.Hour, Names: tt.names}
			renewed, err := m2.Ensure()
			require.NoError(t, err)
			assert.Equal(t, tt.renew, renewed)
			if tt.renew {
				assert.NotEqual(t, first.SerialNumber, m2.Leaf().SerialNumber)
				assert.True(t, m2.Leaf().NotAfter.After(c.now().Add(89*24*time.Hour)))
			}
		})
	}
}

func TestRotateAndGetCertificate(t *testing.T) {
	m := &Manager{Dir: t.TempDir()}
	_, err := m.Ensure()
	require.NoError(t, err)
	before, err := m.GetCertificate(&tls.ClientHelloInfo{})
	require.NoError(t, err)
	require.NoError(t, m.Rotate())
	after, err := m.GetCertificate(&tls.ClientHelloInfo{})
	require.NoError(t, err)
	assert.NotEqual(t, before.Leaf.SerialNumber, after.Leaf.SerialNumber)
	assert.Equal(t, before.Leaf.Issuer.String(), after.Leaf.Issuer.String(), "same CA")
}

func TestRunRenewsInBackground(t *testing.T) {
	c := newClock(time.Now())
	m := &Manager{Dir: t.TempDir(), Now: c.now, Lifetime: time.Hour}
	_, err := m.Ensure()
	require.NoError(t, err)
	first := m.Leaf().SerialNumber
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	renewals := make(chan *x509.Certificate, 1)
	go m.Run(ctx, 10*time.Millisecond, func(leaf *x509.Certificate, err error) {
		if err == nil {
			select {
			case renewals <- leaf:
			default:
			}
		}
	})
	c.add(50 * time.Minute) // 10 minutes left of 60: renew
	select {
	case leaf := <-renewals:
		assert.NotEqual(t, first, leaf.SerialNumber)
	case <-time.After(10 * time.Second):
		t.Fatal("no renewal")
	}
}

func TestCorruptCAIsAnError(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, CAFile), []byte("junk"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, CAKeyFile), []byte("junk"), 0o600))
	_, err := (&Manager{Dir: dir}).Ensure()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "move the files away")
}

func TestFingerprint(t *testing.T) {
	m := &Manager{Dir: t.TempDir()}
	_, err := m.Ensure()
	require.NoError(t, err)
	fp := Fingerprint(m.Leaf())
	assert.Len(t, fp, 95)
	assert.Regexp(t, `^([0-9a-f]{2}:){31}[0-9a-f]{2}$`, fp)
}

func TestRunPicksUpRotationByAnotherProcess(t *testing.T) {
	dir := t.TempDir()
	serving := &Manager{Dir: dir}
	_, err := serving.Ensure()
	require.NoError(t, err)
	first := serving.Leaf().SerialNumber

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changed := make(chan *x509.Certificate, 1)
	go serving.Run(ctx, 10*time.Millisecond, func(leaf *x509.Certificate, err error) {
		if err == nil {
			select {
			case changed <- leaf:
			default:
			}
		}
	})
	time.Sleep(20 * time.Millisecond) // distinct mtime
	other := &Manager{Dir: dir}       // e.g. `idpbuilder registry cert rotate`
	require.NoError(t, other.Rotate())
	select {
	case leaf := <-changed:
		assert.NotEqual(t, first, leaf.SerialNumber)
		assert.Equal(t, other.Leaf().SerialNumber, leaf.SerialNumber)
	case <-time.After(10 * time.Second):
		t.Fatal("the serving manager did not pick up the rotated certificate")
	}
}
