package registry

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/idpbuilder/idpbuilder/pkg/registryapi"
)

// GCScheduler runs garbage collection inside the registry every Interval,
// as a component started after the registry and stopped before it. Its runs
// and the admin endpoint's share the registry's one-at-a-time rule: a tick
// that finds a run in progress is skipped.
type GCScheduler struct {
	Registry *Registry
	Interval time.Duration
	// Request is what each run does (DryRun is ignored).
	Request registryapi.GCRequest
	Logger  *slog.Logger

	mu      sync.Mutex
	cancel  context.CancelFunc
	done    chan struct{}
	lastErr error
}

// Name implements component.Component.
func (s *GCScheduler) Name() string { return "gc-scheduler" }

// Start begins the schedule; the first run is one Interval away.
func (s *GCScheduler) Start(ctx context.Context) error {
	if s.Interval <= 0 {
		return errors.New("garbage collection interval must be positive")
	}
	if err := s.Request.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancel != nil {
		return errors.New("gc scheduler already started")
	}
	log := s.Logger
	if log == nil {
		log = slog.Default()
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel, s.done = cancel, make(chan struct{})
	req := s.Request
	req.DryRun = false
	go func() {
		defer close(s.done)
		t := time.NewTicker(s.Interval)
		defer t.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
			}
			_, err := s.Registry.GC(runCtx, req)
			if errors.Is(err, ErrGCRunning) {
				log.Info("scheduled garbage collection skipped: another run is in progress")
				continue
			}
			if runCtx.Err() != nil {
				return
			}
			s.mu.Lock()
			s.lastErr = err
			s.mu.Unlock()
		}
	}()
	log.Info("garbage collection scheduled", "interval", s.Interval, "untagged", req.Untagged)
	return nil
}

// Stop ends the schedule, waiting (until ctx ends) for a run in progress;
// a run's mark stops at once, a sweep is finished.
func (s *GCScheduler) Stop(ctx context.Context) error {
	s.mu.Lock()
	cancel, done := s.cancel, s.done
	s.cancel = nil
	s.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Health reports the last scheduled run's failure, if it failed.
func (s *GCScheduler) Health(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}
