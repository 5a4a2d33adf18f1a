package registry

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/idpbuilder/idpbuilder/pkg/registryapi"
	"github.com/idpbuilder/idpbuilder/pkg/version"
)

// metrics are one Registry's Prometheus collectors. They live in a
// prometheus.Registry of their own, so two registries in one process (as in
// tests) never collide; what distribution and the Go runtime register in the
// process-wide default registry is joined in when gathering, never registered
// again.
type metrics struct {
	reg      *prometheus.Registry
	gatherer prometheus.Gatherer
	log      *slog.Logger

	inFlight prometheus.Gauge
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	bytesIn  [numRouteKinds]prometheus.Counter
	bytesOut [numRouteKinds]prometheus.Counter
	// byLabels caches the children of requests and duration per (method,
	// route, status class), so a request costs no label hashing.
	byLabels [numMethods * numRouteKinds * numStatusClasses]atomic.Pointer[requestSeries]

	// Plain counters, so the stats read them too.
	pushes, pulls, blobUploads, blobMounts atomic.Int64

	gcRuns             *prometheus.CounterVec
	gcDuration         prometheus.Histogram
	gcFreedBytes       prometheus.Counter
	gcDeletedBlobs     prometheus.Counter
	gcDeletedManifests prometheus.Counter
	gcLastSuccess      prometheus.Gauge

	// changed is told about every successful write to storage (the stats
	// refresh after them).
	changed func()
}

type requestSeries struct {
	count    prometheus.Counter
	duration prometheus.Observer
}

// Label spaces, bounded: methods outside the list count as "other".
var (
	methodLabels       = [...]string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodPost, http.MethodPatch, http.MethodDelete, http.MethodOptions, "other"}
	statusClassLabels  = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}
	requestDurationBkt = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}
)

const (
	numMethods       = len(methodLabels)
	numRouteKinds    = len(routeNames)
	numStatusClasses = len(statusClassLabels)
)

func methodIndex(m string) int {
	for i, l := range methodLabels[:numMethods-1] {
		if m == l {
			return i
		}
	}
	return numMethods - 1
}

func statusClassIndex(code int) int {
	return min(max(code/100-1, 0), numStatusClasses-1)
}

// distributionUnused are families distribution registers for features the
// registry does not use (pull-through proxy, notifications): always zero.
var distributionUnused = []string{"registry_proxy_", "registry_notifications_"}

func newMetrics(log *slog.Logger, sources *opsSources, stats *statsKeeper, changed func()) *metrics {
	reg := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	m := &metrics{reg: reg, log: log, changed: changed}

	m.inFlight = prometheus.NewGauge(prometheus.GaugeOpts{Name: "registry_http_requests_in_flight", Help: "Requests being served."})
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "registry_http_requests_total",
		Help: "Requests served, by method, route kind and status class."}, []string{"method", "route", "status"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "registry_http_request_duration_seconds",
		Help: "Time to serve a request, by method, route kind and status class.", Buckets: requestDurationBkt}, []string{"method", "route", "status"})
	in := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "registry_http_request_bytes_total", Help: "Request body bytes received, by route kind."}, []string{"route"})
	out := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "registry_http_response_bytes_total", Help: "Response body bytes sent, by route kind."}, []string{"route"})
	for k := range numRouteKinds {
		m.bytesIn[k] = in.WithLabelValues(RouteKind(k).String())
		m.bytesOut[k] = out.WithLabelValues(RouteKind(k).String())
	}
	f(m.inFlight)
	f(m.requests)
	f(m.duration)
	f(in)
	f(out)

	f(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "registry_storage_blob_upload_total", Help: "Blob uploads completed (monolithic or chunked)."},
		func() float64 { return float64(m.blobUploads.Load()) }))
	f(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "registry_storage_blob_mount_total", Help: "Blobs mounted from another repository."},
		func() float64 { return float64(m.blobMounts.Load()) }))
	f(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "registry_manifest_pushes_total", Help: "Manifests pushed (PUT answered 201)."},
		func() float64 { return float64(m.pushes.Load()) }))
	f(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "registry_manifest_pulls_total", Help: "Manifests pulled (GET answered 200)."},
		func() float64 { return float64(m.pulls.Load()) }))

	m.gcRuns = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "registry_gc_runs_total", Help: "Garbage collection runs, by result (ok, failed, dry_run)."}, []string{"result"})
	m.gcDuration = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "registry_gc_duration_seconds", Help: "Time a garbage collection run took.",
		Buckets: []float64{.01, .05, .1, .5, 1, 5, 10, 30, 60, 300, 900}})
	m.gcFreedBytes = prometheus.NewCounter(prometheus.CounterOpts{Name: "registry_gc_freed_bytes_total", Help: "Bytes garbage collection deleted."})
	m.gcDeletedBlobs = prometheus.NewCounter(prometheus.CounterOpts{Name: "registry_gc_deleted_blobs_total", Help: "Blobs garbage collection deleted."})
	m.gcDeletedManifests = prometheus.NewCounter(prometheus.CounterOpts{Name: "registry_gc_deleted_manifests_total", Help: "Manifests garbage collection deleted."})
	m.gcLastSuccess = prometheus.NewGauge(prometheus.GaugeOpts{Name: "registry_gc_last_success_timestamp_seconds", Help: "When the last successful garbage collection finished (Unix time; 0: never)."})
	for _, c := range []prometheus.Collector{m.gcRuns, m.gcDuration, m.gcFreedBytes, m.gcDeletedBlobs, m.gcDeletedManifests, m.gcLastSuccess} {
		f(c)
	}

	v := version.Get()
	bi := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "registry_build_info", Help: "The idpbuilder build serving the registry (always 1)."},
		[]string{"version", "commit", "goversion"})
	bi.WithLabelValues(v.Version, v.Commit, v.GoVersion).Set(1)
	f(bi)
	f(&usageCollector{stats: stats, sources: sources})

	m.gatherer = prometheus.Gatherers{reg, prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		mfs, err := prometheus.DefaultGatherer.Gather()
		kept := mfs[:0]
		for _, mf := range mfs {
			if !hasAnyPrefix(mf.GetName(), distributionUnused) {
				kept = append(kept, mf)
			}
		}
		return kept, err
	})}
	return m
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// series returns the cached children for one label combination.
func (m *metrics) series(method, kind, class int) *requestSeries {
	slot := &m.byLabels[(method*numRouteKinds+kind)*numStatusClasses+class]
	if s := slot.Load(); s != nil {
		return s
	}
	labels := []string{methodLabels[method], RouteKind(kind).String(), statusClassLabels[class]}
	s := &requestSeries{count: m.requests.WithLabelValues(labels...), duration: m.duration.WithLabelValues(labels...)}
	slot.CompareAndSwap(nil, s) // a racing twin holds the same children
	return slot.Load()
}

// layer observes every request: count, duration, bytes each way, and what it
// did (pushes, pulls, uploads), which it also reports to changed.
func (m *metrics) layer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		m.inFlight.Inc()
		defer m.inFlight.Dec()
		var body *countingBody
		if r.Body != nil && r.Body != http.NoBody {
			body = &countingBody{ReadCloser: r.Body}
			r.Body = body
		}
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)

		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		kind := routeOf(r).Kind
		k := int(kind)
		if k < 0 || k >= numRouteKinds {
			k = int(RouteUnknown)
		}
		s := m.series(methodIndex(r.Method), k, statusClassIndex(status))
		s.count.Inc()
		s.duration.Observe(time.Since(start).Seconds())
		if body != nil && body.n > 0 {
			m.bytesIn[k].Add(float64(body.n))
		}
		if sw.bytes > 0 {
			m.bytesOut[k].Add(float64(sw.bytes))
		}
		m.count(r, kind, status)
	})
}

// count records what a successful request did to the registry's content.
func (m *metrics) count(r *http.Request, kind RouteKind, status int) {
	wrote := false
	switch {
	case kind == RouteManifest && r.Method == http.MethodGet && status == http.StatusOK:
		m.pulls.Add(1)
	case kind == RouteManifest && r.Method == http.MethodPut && status == http.StatusCreated:
		m.pushes.Add(1)
		wrote = true
	case kind == RouteUpload && status == http.StatusCreated:
		// A POST with mount= answers 201 when it mounted; every other 201
		// here is a completed upload (PUT, or a monolithic POST).
		if r.Method == http.MethodPost && r.URL.Query().Get("mount") != "" {
			m.blobMounts.Add(1)
		} else {
			m.blobUploads.Add(1)
		}
		wrote = true
	case (kind == RouteManifest || kind == RouteBlob) && r.Method == http.MethodDelete && status == http.StatusAccepted:
		wrote = true
	}
	if wrote && m.changed != nil {
		m.changed()
	}
}

// observeGC records a garbage collection run. The garbage collector calls it
// after every run, dry or real.
func (m *metrics) observeGC(res registryapi.GCSummary) {
	result := "ok"
	switch {
	case res.Error != "":
		result = "failed"
	case res.DryRun:
		result = "dry_run"
	}
	m.gcRuns.WithLabelValues(result).Inc()
	m.gcDuration.Observe(res.DurationMS / 1000)
	if result != "ok" {
		return
	}
	m.gcFreedBytes.Add(float64(res.FreedBytes))
	m.gcDeletedBlobs.Add(float64(res.DeletedBlobs))
	m.gcDeletedManifests.Add(float64(res.DeletedManifests))
	end := res.StartedAt.Add(time.Duration(res.DurationMS * float64(time.Millisecond)))
	m.gcLastSuccess.Set(float64(end.UnixNano()) / 1e9)
}

// handler serves the metrics in the Prometheus text (or OpenMetrics) format.
func (m *metrics) handler() http.Handler {
	h := promhttp.HandlerFor(m.gatherer, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError, // a broken collector must not hide the rest
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeOCIError(w, http.StatusMethodNotAllowed, codeUnsupported, "metrics answer GET only")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// countingBody counts the request body bytes the handlers read.
type countingBody struct {
	io.ReadCloser
	n int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}

// usageCollector turns the latest usage statistics and quota usage into gauges
// at scrape time: a scrape never walks the storage.
type usageCollector struct {
	stats   *statsKeeper
	sources *opsSources
}

var (
	usageDescs = struct {
		repos, tags, manifests, blobs, unique, logical, updated *prometheus.Desc
		quotaUsed, quotaLimit, repoQuotaUsed, repoQuotaLimit    *prometheus.Desc
	}{
		repos:          prometheus.NewDesc("registry_repositories", "Repositories in the registry.", nil, nil),
		tags:           prometheus.NewDesc("registry_tags", "Tags over all repositories.", nil, nil),
		manifests:      prometheus.NewDesc("registry_manifests", "Manifests over all repositories (per repository).", nil, nil),
		blobs:          prometheus.NewDesc("registry_blobs", "Blobs in the content store (each once).", nil, nil),
		unique:         prometheus.NewDesc("registry_storage_unique_bytes", "Bytes in the content store, each blob once.", nil, nil),
		logical:        prometheus.NewDesc("registry_storage_logical_bytes", "Bytes the repositories reference, summed over repositories.", nil, nil),
		updated:        prometheus.NewDesc("registry_usage_updated_timestamp_seconds", "When the usage gauges were last computed (Unix time).", nil, nil),
		quotaUsed:      prometheus.NewDesc("registry_quota_used_bytes", "Bytes counted against the registry's quota.", nil, nil),
		quotaLimit:     prometheus.NewDesc("registry_quota_limit_bytes", "The registry's quota in bytes.", nil, nil),
		repoQuotaUsed:  prometheus.NewDesc("registry_repository_quota_used_bytes", "Bytes counted against a repository's quota.", []string{"repository"}, nil),
		repoQuotaLimit: prometheus.NewDesc("registry_repository_quota_limit_bytes", "A repository's quota in bytes.", []string{"repository"}, nil),
	}
)

func (c *usageCollector) Describe(ch chan<- *prometheus.Desc) {
	d := usageDescs
	for _, x := range []*prometheus.Desc{d.repos, d.tags, d.manifests, d.blobs, d.unique, d.logical, d.updated, d.quotaUsed, d.quotaLimit, d.repoQuotaUsed, d.repoQuotaLimit} {
		ch <- x
	}
}

func (c *usageCollector) Collect(ch chan<- prometheus.Metric) {
	d := usageDescs
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	if u := c.stats.current(); u != nil {
		gauge(d.repos, float64(u.repositories))
		gauge(d.tags, float64(u.tags))
		gauge(d.manifests, float64(u.manifests))
		gauge(d.blobs, float64(u.blobs))
		gauge(d.unique, float64(u.uniqueBytes))
		gauge(d.logical, float64(u.logicalBytes))
		gauge(d.updated, float64(u.at.UnixNano())/1e9)
	}
	if q := c.sources.quotaSummary(); q != nil {
		gauge(d.quotaUsed, float64(q.UsedBytes))
		if q.LimitBytes > 0 {
			gauge(d.quotaLimit, float64(q.LimitBytes))
		}
		for _, rq := range q.Repositories {
			gauge(d.repoQuotaUsed, float64(rq.UsedBytes), rq.Name)
			gauge(d.repoQuotaLimit, float64(rq.LimitBytes), rq.Name)
		}
	}
}

// opsSources are the optional feeds of the operations endpoints from features
// that keep their own state. A nil func leaves its part out of stats, health
// and metrics (nothing is made up in its place).
type opsSources struct {
	mu sync.RWMutex
	// lastGC returns the last garbage collection run, nil before the first.
	lastGC func() *registryapi.GCSummary
	// quota returns quota usage, nil when no quota is set.
	quota func() *registryapi.QuotaSummary
}

func (s *opsSources) gcSummary() *registryapi.GCSummary {
	s.mu.RLock()
	fn := s.lastGC
	s.mu.RUnlock()
	if fn == nil {
		return nil
	}
	return fn()
}

func (s *opsSources) quotaSummary() *registryapi.QuotaSummary {
	s.mu.RLock()
	fn := s.quota
	s.mu.RUnlock()
	if fn == nil {
		return nil
	}
	return fn()
}

// serveMetrics serves GET /metrics alone on ln, over plain HTTP and without
// authentication: who may connect is decided by where ln listens.
func (r *Registry) serveMetrics(ln net.Listener) error {
	if r.metrics == nil {
		return errors.New("metrics are turned off in this registry")
	}
	mh := r.metrics.handler()
	mux := http.NewServeMux()
	mux.Handle("/metrics", mh)
	mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		writeOCIError(w, http.StatusNotFound, codeUnsupported, "this address serves /metrics only")
	})
	srv := &http.Server{
		Handler:           withSecurityHeaders(mux, false),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(r.log.Handler(), slog.LevelWarn),
	}
	r.metricsLn, r.metricsSv = ln, srv
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			r.log.Error("metrics server stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	r.log.Info("metrics served", "addr", ln.Addr().String())
	return nil
}

// MetricsAddr is the address of the separate metrics server ("" without one).
func (r *Registry) MetricsAddr() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.metricsLn == nil || r.metricsSv == nil {
		return ""
	}
	return r.metricsLn.Addr().String()
}

// gcRan is what the garbage collector calls after every run: the metrics
// count it and the usage statistics refresh (a dry run changes nothing).
func (r *Registry) gcRan(res registryapi.GCSummary) {
	r.mu.Lock()
	m, st := r.metrics, r.stats
	r.mu.Unlock()
	if m != nil {
		m.observeGC(res)
	}
	if st != nil && !res.DryRun {
		st.invalidate()
	}
}

// setGCSource and setQuotaSource connect the garbage collector and the quotas
// to stats, health and metrics; until they are called those parts are left out.
func (r *Registry) setGCSource(fn func() *registryapi.GCSummary) {
	r.sources.mu.Lock()
	defer r.sources.mu.Unlock()
	r.sources.lastGC = fn
}

func (r *Registry) setQuotaSource(fn func() *registryapi.QuotaSummary) {
	r.sources.mu.Lock()
	defer r.sources.mu.Unlock()
	r.sources.quota = fn
}

func (s *opsSources) hasGC() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.lastGC != nil
}

func (s *opsSources) hasQuota() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.quota != nil
}
