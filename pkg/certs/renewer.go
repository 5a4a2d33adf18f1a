package certs

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// Renewer keeps a Manager's certificate current in the background. It has the
// lifecycle of a component (Name, Start, Stop, Health), so `registry serve`
// runs it beside the registry and stops it with it.
type Renewer struct {
	Manager *Manager
	// Interval is how often the certificate is checked (default 1h).
	Interval time.Duration
	// OnRenew, if set, hears about each renewal or failed check.
	OnRenew func(leaf *x509.Certificate, err error)

	cancel context.CancelFunc
	done   chan struct{}
}

// Name names the component.
func (r *Renewer) Name() string { return "certificate renewer" }

// Start makes sure a certificate exists and starts the periodic check.
func (r *Renewer) Start(ctx context.Context) error {
	if r.done != nil {
		return errors.New("certificate renewer already started")
	}
	if _, err := r.Manager.Ensure(); err != nil {
		return fmt.Errorf("TLS certificate: %w", err)
	}
	interval := r.Interval
	if interval <= 0 {
		interval = time.Hour
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.cancel, r.done = cancel, make(chan struct{})
	go func() {
		defer close(r.done)
		r.Manager.Run(runCtx, interval, r.OnRenew)
	}()
	return nil
}

// Stop ends the periodic check and waits for it (until ctx ends).
func (r *Renewer) Stop(ctx context.Context) error {
	if r.done == nil {
		return nil
	}
	r.cancel()
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("certificate renewer did not stop: %w", ctx.Err())
	}
}

// Health reports whether the certificate being served is valid now.
func (r *Renewer) Health(context.Context) error {
	leaf := r.Manager.Leaf()
	if leaf == nil {
		return errors.New("no certificate")
	}
	if now := r.Manager.now(); now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
		return fmt.Errorf("certificate valid %s to %s, not now", leaf.NotBefore.Format(time.RFC3339), leaf.NotAfter.Format(time.RFC3339))
	}
	return nil
}
