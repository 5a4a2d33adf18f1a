// Package registry is the embedded OCI registry: distribution v3's handlers behind
// our own http.Server and listener, with filesystem storage, health endpoints and
// a logging bridge into log/slog. It knows nothing about clusters.
package registry

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/idpbuilder/idpbuilder/pkg/auth"
	"github.com/idpbuilder/idpbuilder/pkg/registryapi"
)

// Options configure a Registry.
type Options struct {
	// Addr is the host:port to listen on; ignored when Listener is set.
	Addr string
	// Listener, if set, is used instead of listening on Addr (the registry closes it on Stop).
	Listener net.Listener
	// ExtraAddrs are more host:port addresses to serve on, e.g. a Docker network
	// gateway so containers reach a registry that also listens on loopback.
	ExtraAddrs []string
	// DataDir is the filesystem storage root.
	DataDir string
	// UploadPurgeAge is the age after which abandoned uploads are deleted
	// (DefaultUploadPurgeAge when zero).
	UploadPurgeAge time.Duration
	// Logger receives idpbuilder's own registry logs; nil means slog.Default().
	Logger *slog.Logger
	// AccessLog, if set, gets one line per request.
	AccessLog *slog.Logger
	// GetCertificate, if set, turns on TLS; it is asked on every handshake, so a
	// renewed certificate is served without a restart.
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// Auth, if set, requires users according to its policy.
	Auth *AuthOptions
	// RateLimit bounds requests per client.
	RateLimit RateLimit
	// BodyIdleTimeout cuts request bodies that send nothing for this long
	// (default DefaultBodyIdleTimeout).
	BodyIdleTimeout time.Duration
	// UI, if set, builds the web UI over the registry's UISource when the
	// registry opens; it is served at /ui/ and / redirects browsers there.
	UI func(*UISource) (http.Handler, error)
	// Quota bounds, in bytes, what all repositories hold together, each blob
	// counted once; RepoQuota bounds each repository. 0 means no limit.
	Quota, RepoQuota int64
	// GCGrace is the grace period of garbage collection runs that do not
	// give their own: younger content is never deleted (default
	// registryapi.DefaultGCGrace).
	GCGrace time.Duration
	// MetricsAddr, if set, serves GET /metrics on this host:port too, over
	// plain HTTP and without authentication (the registry's own port serves
	// it under the registry's auth policy). Ignored when MetricsListener is set.
	MetricsAddr string
	// MetricsListener, if set, is used instead of listening on MetricsAddr
	// (the registry closes it on Stop).
	MetricsListener net.Listener

	// For tests: noOps leaves out the metrics layer and the usage statistics
	// (benchmarks measure their cost); statsQuiet shortens the statistics'
	// debounce; disk moves the free-space thresholds of the "disk" check.
	noOps      bool
	statsQuiet time.Duration
	disk       diskThresholds
}

// Registry is the embedded registry as a lifecycle component.
type Registry struct {
	opts    Options
	log     *slog.Logger
	mu      sync.Mutex
	eng     *engine
	refs    *referrersIndex
	quota   *quota // nil without a quota
	disk    *diskGuard
	gc      *collector
	login   *loginGate        // nil without auth
	authz   *authorizer       // nil without auth
	tokens  *auth.TokenSigner // keyed from the data dir's secret
	ui      *UISource         // nil without the UI
	uiH     http.Handler
	handler http.Handler
	ln      net.Listener // the main listener; Addr reports it
	srv     *http.Server
	conns   *connTracker
	served  chan error

	gcHistory gcHistory // last run and listeners, kept across Close and Open
	// Operations: metrics, usage statistics and detailed health.
	started   time.Time
	metrics   *metrics     // nil with noOps
	stats     *statsKeeper // nil with noOps
	sources   opsSources
	checksMu  sync.Mutex
	checks    []healthCheck // added by features
	metricsLn net.Listener
	metricsSv *http.Server
}

// New returns a registry that is not yet listening.
func New(opts Options) *Registry {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.BodyIdleTimeout <= 0 {
		opts.BodyIdleTimeout = DefaultBodyIdleTimeout
	}
	if opts.UploadPurgeAge == 0 {
		opts.UploadPurgeAge = DefaultUploadPurgeAge
	}
	if opts.GCGrace <= 0 {
		opts.GCGrace = registryapi.DefaultGCGrace
	}
	if opts.disk == (diskThresholds{}) {
		opts.disk = diskThresholds{warnBytes: defaultDiskWarnBytes, warnPercent: defaultDiskWarnPercent, minBytes: defaultDiskMinBytes}
	}
	r := &Registry{opts: opts, log: opts.Logger}
	r.wireOps()
	return r
}

// Name implements component.Component.
func (r *Registry) Name() string { return "registry" }

// ListenError is returned when the registry cannot bind its address. InUse tells
// the common case (another process has the port) apart.
type ListenError struct {
	Addr  string
	InUse bool
	Err   error
}

func (e *ListenError) Error() string {
	if e.InUse {
		return fmt.Sprintf("address %s is already in use", e.Addr)
	}
	return fmt.Sprintf("cannot listen on %s: %v", e.Addr, e.Err)
}

func (e *ListenError) Unwrap() error { return e.Err }

// Listen binds addr. It is separate from Start so a caller can fail fast on a busy
// port before anything is written to disk.
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, &ListenError{Addr: addr, InUse: errors.Is(err, syscall.EADDRINUSE), Err: err}
	}
	return ln, nil
}

// DataDirError is returned when the data directory cannot be created or written.
type DataDirError struct {
	Dir string
	Err error
}

func (e *DataDirError) Error() string {
	return fmt.Sprintf("data dir %s is not usable: %v", e.Dir, e.Err)
}

func (e *DataDirError) Unwrap() error { return e.Err }

// Open prepares the data directory, opens the engine and the referrers index
// and builds the HTTP handler, without listening: tests drive Handler() with
// httptest. Start opens the registry itself when it is not open yet.
func (r *Registry) Open(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.handler != nil {
		return errors.New("registry already open")
	}
	return r.openLocked(ctx)
}

func (r *Registry) openLocked(ctx context.Context) error {
	secret, err := prepareDataDir(r.opts.DataDir)
	if err != nil {
		return err
	}
	bridgeLogrus(r.log.Enabled(ctx, slog.LevelDebug))
	eng, err := openEngine(context.WithoutCancel(ctx), r.opts, secret)
	if err != nil {
		return err
	}
	refs := newReferrersIndex(r.opts.DataDir, eng, r.log)
	if err := refs.open(ctx); err != nil {
		_ = eng.close()
		return err
	}
	r.eng, r.refs = eng, refs
	r.tokens = auth.NewTokenSigner([]byte(secret))
	r.disk = newDiskGuard(r.opts.DataDir, eng, r.log)
	if r.opts.Quota > 0 || r.opts.RepoQuota > 0 {
		r.quota = newQuota(r.opts.Quota, r.opts.RepoQuota, r.opts.DataDir, eng, r.log)
	}
	r.gc = newCollector(eng, r.opts, r.log, &r.gcHistory)
	if r.quota != nil {
		r.gc.afterRun = r.quota.reload
	}
	r.started = time.Now()
	if !r.opts.noOps {
		r.stats = newStatsKeeper(r.opts.DataDir, r.log, r.opts.statsQuiet)
		r.stats.start(ctx)
		r.metrics = newMetrics(r.log, &r.sources, r.stats, r.stats.invalidate)
	}
	if r.opts.UI != nil {
		r.ui = newUISource(r, eng, refs)
		if r.uiH, err = r.opts.UI(r.ui); err != nil {
			if r.stats != nil {
				r.stats.close()
			}
			_ = eng.close()
			return fmt.Errorf("web UI: %w", err)
		}
	}
	// The stack is built in two parts so the UI can send its deletes into the
	// part below authentication, through the very same layers.
	front, core := splitAtAuth(r.layers(eng, refs))
	coreHandler := buildHandler(core, eng.app)
	r.handler = buildHandler(front, coreHandler)
	if r.ui != nil {
		r.ui.core, r.ui.login = coreHandler, r.login
	}
	return nil
}

// Handler is the registry's HTTP handler; nil until Open or Start.
func (r *Registry) Handler() http.Handler {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.handler
}

// Close releases what Open acquired; Stop calls it.
func (r *Registry) Close() error {
	r.mu.Lock()
	eng, stats := r.eng, r.stats
	r.eng, r.handler, r.gc, r.stats, r.metrics = nil, nil, nil, nil, nil
	r.mu.Unlock()
	if stats != nil {
		stats.close()
	}
	if eng == nil {
		return nil
	}
	return eng.close()
}

// Start binds the listener (unless one was given), opens the registry if Open
// was not called, and starts serving in the background.
func (r *Registry) Start(ctx context.Context) (err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.srv != nil {
		return errors.New("registry already started")
	}

	ln := r.opts.Listener
	if ln == nil {
		if ln, err = Listen(ctx, r.opts.Addr); err != nil {
			return err
		}
	}
	lns := []net.Listener{ln}
	metricsLn := r.opts.MetricsListener
	defer func() {
		if err != nil {
			for _, l := range append(lns, metricsLn) {
				if l != nil {
					_ = l.Close()
				}
			}
		}
	}()
	for _, a := range r.opts.ExtraAddrs {
		extra, lerr := Listen(ctx, a)
		if lerr != nil {
			return lerr
		}
		lns = append(lns, extra)
	}
	if metricsLn == nil && r.opts.MetricsAddr != "" {
		if metricsLn, err = Listen(ctx, r.opts.MetricsAddr); err != nil {
			return err
		}
	}

	if r.handler == nil {
		if err := r.openLocked(ctx); err != nil {
			return err
		}
	}
	if metricsLn != nil {
		if err := r.serveMetrics(metricsLn); err != nil {
			return err
		}
	}

	if r.opts.GetCertificate != nil {
		tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.opts.GetCertificate, CipherSuites: tls12Suites}
		for i, l := range lns {
			lns[i] = tls.NewListener(l, tlsCfg)
		}
		ln = lns[0]
	}

	r.ln = ln
	r.conns = newConnTracker()
	r.srv = &http.Server{
		Handler:           r.handler,
		MaxHeaderBytes:    maxHeaderBytes,
		ConnState:         r.conns.track,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(r.log.Handler(), slog.LevelWarn),
	}
	r.served = make(chan error, 1)
	var wg sync.WaitGroup
	errs := make(chan error, len(lns))
	srv := r.srv // Stop clears the field; the serving goroutines keep their server
	for _, l := range lns {
		wg.Go(func() {
			if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
				errs <- err
				// One listener failing stops the others: serve everywhere or nowhere.
				_ = srv.Close()
			}
		})
	}
	go func(served chan<- error) {
		wg.Wait()
		close(errs)
		served <- errors.Join(collect(errs)...)
		close(served)
	}(r.served)
	addrs := make([]string, len(lns))
	for i, l := range lns {
		addrs[i] = l.Addr().String()
	}
	r.log.Info("registry started", "addr", strings.Join(addrs, ","), "data_dir", r.opts.DataDir)
	return nil
}

// tls12Suites are the TLS 1.2 suites offered: AEAD with forward secrecy only
// (Go's defaults still include CBC-SHA1 suites). TLS 1.3 suites are not
// configurable and all qualify.
var tls12Suites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// Addr returns the address the registry listens on (the real port when Addr used port 0).
func (r *Registry) Addr() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ln == nil {
		return ""
	}
	return r.ln.Addr().String()
}

// Done is closed when the server stops serving; it yields the serve error, if any.
// It is nil before Start.
func (r *Registry) Done() <-chan error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.served
}

// Stop stops accepting connections and waits for in-flight requests until ctx ends;
// then it closes the remaining connections and reports that it had to.
func (r *Registry) Stop(ctx context.Context) error {
	r.mu.Lock()
	srv, served, conns, msrv := r.srv, r.served, r.conns, r.metricsSv
	r.srv, r.metricsSv = nil, nil
	r.mu.Unlock()
	if srv == nil {
		return r.Close()
	}
	var errs []error
	if msrv != nil {
		if err := msrv.Shutdown(ctx); err != nil {
			_ = msrv.Close()
		}
	}
	sweepCtx, stopSweep := context.WithCancel(ctx)
	go conns.closeUnused(sweepCtx)
	err := srv.Shutdown(ctx)
	stopSweep()
	if err != nil {
		errs = append(errs, fmt.Errorf("graceful shutdown did not finish in time, closing remaining connections: %w", err))
		if cerr := srv.Close(); cerr != nil {
			errs = append(errs, cerr)
		}
	}
	if err := <-served; err != nil {
		errs = append(errs, err)
	}
	if err := r.Close(); err != nil {
		errs = append(errs, err)
	}
	r.log.Info("registry stopped")
	return errors.Join(errs...)
}

func collect(ch <-chan error) []error {
	var out []error
	for err := range ch {
		out = append(out, err)
	}
	return out
}
