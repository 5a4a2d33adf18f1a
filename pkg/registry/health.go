package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/idpbuilder/idpbuilder/pkg/registryapi"
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

// Detailed health (GET /health): named checks, each healthy, degraded or
// unhealthy, run concurrently. Anyone may read it, so messages never name a
// machine path; details go to the registry's log.

// healthCheck is one named check. Features add theirs with addHealthCheck
// when the registry opens.
type healthCheck struct {
	name string
	run  func(ctx context.Context) (registryapi.HealthStatus, string)
}

// checkTimeout bounds one check: a hung filesystem reports unhealthy instead
// of hanging the endpoint.
const checkTimeout = 5 * time.Second

// Disk space thresholds of the "disk" check.
const (
	defaultDiskWarnBytes   = 1 << 30  // degraded below 1 GiB free
	defaultDiskWarnPercent = 5        // or below 5% free
	defaultDiskMinBytes    = 64 << 20 // unhealthy below 64 MiB: a typical layer no longer fits
)

// diskThresholds say when free space is low (degraded) and too low (unhealthy).
type diskThresholds struct {
	warnBytes   uint64
	warnPercent float64
	minBytes    uint64
}

// certWarn is how long before expiry the "certificate" check degrades: the
// renewer replaces certificates long before, so a certificate this close to
// its end means renewal is failing.
const certWarn = 7 * 24 * time.Hour

// addHealthCheck adds a check to GET /health.
func (r *Registry) addHealthCheck(name string, run func(ctx context.Context) (registryapi.HealthStatus, string)) {
	r.checksMu.Lock()
	defer r.checksMu.Unlock()
	r.checks = append(r.checks, healthCheck{name: name, run: run})
}

// healthChecks are the checks in the order /health lists them.
func (r *Registry) healthChecks() []healthCheck {
	cs := []healthCheck{{"storage", r.storageCheck}, {"disk", r.diskCheck}}
	if r.opts.GetCertificate != nil {
		cs = append(cs, healthCheck{"certificate", r.certificateCheck})
	}
	if r.sources.hasGC() {
		cs = append(cs, healthCheck{"gc", r.gcCheck})
	}
	if r.sources.hasQuota() {
		cs = append(cs, healthCheck{"quota", r.quotaCheck})
	}
	r.checksMu.Lock()
	defer r.checksMu.Unlock()
	return append(cs, r.checks...)
}

// DetailedHealth runs every health check; the status is the worst of theirs.
func (r *Registry) DetailedHealth(ctx context.Context) registryapi.Health {
	cs := r.healthChecks()
	h := registryapi.Health{Status: registryapi.Healthy, Checks: make([]registryapi.HealthCheck, len(cs))}
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, checkTimeout)
			defer cancel()
			start := time.Now()
			status, msg := runCheck(cctx, c)
			h.Checks[i] = registryapi.HealthCheck{Name: c.name, Status: status, Message: msg,
				DurationMS: float64(time.Since(start).Microseconds()) / 1000}
		})
	}
	wg.Wait()
	for _, c := range h.Checks {
		if c.Status.Rank() > h.Status.Rank() {
			h.Status = c.Status
		}
	}
	return h
}

// runCheck runs one check, giving up when ctx ends (the check's goroutine
// finishes on its own).
func runCheck(ctx context.Context, c healthCheck) (registryapi.HealthStatus, string) {
	type result struct {
		status registryapi.HealthStatus
		msg    string
	}
	done := make(chan result, 1)
	go func() {
		s, m := c.run(ctx)
		done <- result{s, m}
	}()
	select {
	case res := <-done:
		return res.status, res.msg
	case <-ctx.Done():
		return registryapi.Unhealthy, "the check did not finish in " + checkTimeout.String()
	}
}

// handleDetailedHealth answers GET /health: 200 while healthy or degraded,
// 503 when unhealthy.
func (r *Registry) handleDetailedHealth(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeOCIError(w, http.StatusMethodNotAllowed, codeUnsupported, "health answers GET only")
		return
	}
	h := r.DetailedHealth(req.Context())
	code := http.StatusOK
	if h.Status == registryapi.Unhealthy {
		code = http.StatusServiceUnavailable
	}
	writeOpsJSON(w, code, h)
}

func (r *Registry) storageCheck(ctx context.Context) (registryapi.HealthStatus, string) {
	if err := r.checkStorage(ctx); err != nil {
		r.log.Warn("health: storage check failed", "err", err)
		if errors.Is(err, context.DeadlineExceeded) {
			return registryapi.Unhealthy, "writing to the data directory timed out (the registry's log has the details)"
		}
		return registryapi.Unhealthy, "the data directory is not writable (the registry's log has the details)"
	}
	return registryapi.Healthy, "the data directory is writable"
}

func (r *Registry) diskCheck(context.Context) (registryapi.HealthStatus, string) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(r.opts.DataDir, &st); err != nil {
		r.log.Warn("health: disk check failed", "err", err)
		return registryapi.Unhealthy, "cannot read the free space of the data directory's file system (the registry's log has the details)"
	}
	free := st.Bavail * uint64(st.Bsize)
	total := st.Blocks * uint64(st.Bsize)
	pct := 100.0
	if total > 0 {
		pct = float64(free) / float64(total) * 100
	}
	t := r.opts.disk
	msg := fmt.Sprintf("%s free of %s (%.0f%%)", formatBytes(free), formatBytes(total), pct)
	switch {
	case free < t.minBytes:
		return registryapi.Unhealthy, msg + ": pushes will fail; free space or run garbage collection"
	case free < t.warnBytes || pct < t.warnPercent:
		return registryapi.Degraded, fmt.Sprintf("%s: below %s or %.0f%%; free space or run garbage collection", msg, formatBytes(t.warnBytes), t.warnPercent)
	}
	return registryapi.Healthy, msg
}

func (r *Registry) certificateCheck(context.Context) (registryapi.HealthStatus, string) {
	cert, err := r.opts.GetCertificate(&tls.ClientHelloInfo{})
	if err == nil && (cert == nil || len(cert.Certificate) == 0) {
		err = errors.New("no certificate")
	}
	var leaf *x509.Certificate
	if err == nil {
		if leaf = cert.Leaf; leaf == nil {
			leaf, err = x509.ParseCertificate(cert.Certificate[0])
		}
	}
	if err != nil {
		r.log.Warn("health: certificate check failed", "err", err)
		return registryapi.Unhealthy, "no usable certificate (the registry's log has the details)"
	}
	left := time.Until(leaf.NotAfter)
	until := leaf.NotAfter.UTC().Format(time.DateOnly)
	switch {
	case left <= 0:
		return registryapi.Unhealthy, "the certificate expired on " + until
	case left < certWarn:
		return registryapi.Degraded, fmt.Sprintf("the certificate expires in %s (on %s) and has not been renewed", roundDays(left), until)
	}
	return registryapi.Healthy, fmt.Sprintf("valid until %s (%s)", until, roundDays(left))
}

func (r *Registry) gcCheck(context.Context) (registryapi.HealthStatus, string) {
	g := r.sources.gcSummary()
	switch {
	case g == nil:
		return registryapi.Healthy, "no garbage collection has run since the registry started"
	case g.Error != "":
		return registryapi.Degraded, "the last garbage collection (" + g.StartedAt.UTC().Format(time.RFC3339) + ") failed (the registry's log has the details)"
	}
	what := "freed"
	if g.DryRun {
		what = "would free"
	}
	return registryapi.Healthy, fmt.Sprintf("last run %s: %s %s (%d blobs, %d manifests) in %.0f ms",
		g.StartedAt.UTC().Format(time.RFC3339), what, formatBytes(uint64(max(g.FreedBytes, 0))), g.DeletedBlobs, g.DeletedManifests, g.DurationMS)
}

// quotaWarn is the share of a quota above which the "quota" check degrades.
const quotaWarn = 0.9

func (r *Registry) quotaCheck(context.Context) (registryapi.HealthStatus, string) {
	q := r.sources.quotaSummary()
	if q == nil {
		return registryapi.Healthy, "no quota is set"
	}
	status, parts := registryapi.Healthy, []string{}
	over := func(used, limit int64) bool { return limit > 0 && float64(used) >= quotaWarn*float64(limit) }
	share := func(used, limit int64) string {
		return fmt.Sprintf("%s of %s (%.0f%%)", formatBytes(uint64(max(used, 0))), formatBytes(uint64(limit)), float64(used)/float64(limit)*100)
	}
	if q.LimitBytes > 0 {
		parts = append(parts, "registry: "+share(q.UsedBytes, q.LimitBytes))
		if over(q.UsedBytes, q.LimitBytes) {
			status = registryapi.Degraded
		}
	} else {
		parts = append(parts, "registry: "+formatBytes(uint64(max(q.UsedBytes, 0)))+" used, no limit")
	}
	near := 0
	for _, rq := range q.Repositories {
		if over(rq.UsedBytes, rq.LimitBytes) {
			status = registryapi.Degraded
			if near < 3 {
				parts = append(parts, rq.Name+": "+share(rq.UsedBytes, rq.LimitBytes))
			}
			near++
		}
	}
	if near > 3 {
		parts = append(parts, fmt.Sprintf("and %d more repositories near their quota", near-3))
	}
	msg := strings.Join(parts, "; ")
	if status != registryapi.Healthy {
		msg += "; pushes are refused at 100%: delete images and run garbage collection"
	}
	return status, msg
}

// roundDays renders a duration in whole days (hours below two days).
func roundDays(d time.Duration) string {
	if d < 48*time.Hour {
		return fmt.Sprintf("%d hours", int(d.Hours()))
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}

// formatBytes renders a byte count with a binary unit.
func formatBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// writeOpsJSON writes the JSON body of an operations endpoint.
func writeOpsJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
