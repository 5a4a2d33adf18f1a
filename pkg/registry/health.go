package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"time"
)

// HealthReport is the JSON body of /healthz and /readyz.
type HealthReport struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks,omitempty"`
}

// Health implements component.Component: the registry is healthy when it is serving
// and its storage is reachable and writable.
func (r *Registry) Health(ctx context.Context) error {
	r.mu.Lock()
	started := r.srv != nil
	r.mu.Unlock()
	if !started {
		return errors.New("not started")
	}
	return r.checkStorage(ctx)
}

// checkStorage writes and removes a probe file in the data dir. It runs in a
// goroutine so a hung filesystem (e.g. a dead network mount) cannot hang the probe
// past ctx.
func (r *Registry) checkStorage(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- probeWritable(filepath.Join(r.opts.DataDir, metaDir)) }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("storage not writable: %w", err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("storage check timed out: %w", ctx.Err())
	}
}

func (r *Registry) handleLive(w http.ResponseWriter, _ *http.Request) {
	writeHealth(w, http.StatusOK, HealthReport{Status: "ok"})
}

func (r *Registry) handleReady(w http.ResponseWriter, req *http.Request) {
	ctx, cancel := context.WithTimeout(req.Context(), 5*time.Second)
	defer cancel()
	if err := r.checkStorage(ctx); err != nil {
		// /readyz answers anonymous clients: the reason, with its paths, goes to the log.
		r.log.Warn("readiness check failed", "err", err)
		reason := "not writable (the registry's log has the details)"
		if errors.Is(err, context.DeadlineExceeded) {
			reason = "timed out (the registry's log has the details)"
		}
		checks := map[string]string{"storage": reason}
		if e := r.diskFull(); e != "" {
			checks["disk"] = e
		}
		writeHealth(w, http.StatusServiceUnavailable, HealthReport{Status: "unavailable", Checks: checks})
		return
	}
	if e := r.diskFull(); e != "" {
		writeHealth(w, http.StatusServiceUnavailable, HealthReport{Status: "unavailable", Checks: map[string]string{"storage": "ok", "disk": e}})
		return
	}
	writeHealth(w, http.StatusOK, HealthReport{Status: "ok", Checks: map[string]string{"storage": "ok", "disk": "ok"}})
}

// diskFull says why the disk counts as full ("" when it does not): no room
// for uploads, or not for the last one refused.
func (r *Registry) diskFull() string {
	r.mu.Lock()
	disk := r.disk
	r.mu.Unlock()
	if disk == nil {
		return ""
	}
	if st := disk.status(); st.Full {
		return st.Reason
	}
	return ""
}

func writeHealth(w http.ResponseWriter, code int, rep HealthReport) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(rep)
}
