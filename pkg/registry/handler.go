package registry

import (
	"net/http"
	"strings"

	"github.com/idpbuilder/idpbuilder/pkg/auth"
)

// layer wraps a handler with one job.
type layer struct {
	name string
	wrap func(http.Handler) http.Handler
}

// layers is the registry's HTTP stack, outermost first: read it top-down as
// the path of a request.
func (r *Registry) layers(eng *engine, refs *referrersIndex) []layer {
	// The manifest layer is built here so that garbage collection deletes
	// reach its listeners too.
	ml := &manifestLayer{eng: eng, log: r.log, listeners: []manifestListener{refs.onManifest, r.gc.onManifest}}
	if r.ui != nil {
		ml.listeners = append(ml.listeners, r.ui.onManifest)
	}
	r.gc.tell = ml.tell
	ls := []layer{
		{"request info", withRequestInfo}, // request id and the parsed route, once
	}
	if r.metrics != nil {
		ls = append(ls, layer{"metrics", r.metrics.layer}) // measures every layer below
	}
	ls = append(ls, []layer{
		{"body idle timeout", func(h http.Handler) http.Handler { return withBodyIdleTimeout(h, r.opts.BodyIdleTimeout) }},
		{"access log", func(h http.Handler) http.Handler { return withAccessLog(h, r.opts.AccessLog) }},
		{"security headers", func(h http.Handler) http.Handler { return withSecurityHeaders(h, r.opts.GetCertificate != nil) }},
		{"health", r.withHealth}, // before the rate limit: probes must answer under load
	}...)
	if rl := r.opts.RateLimit; !rl.Disabled {
		rps, burst := rl.RequestsPerSecond, rl.Burst
		if rps <= 0 {
			rps = DefaultRequestsPerSecond
		}
		if burst <= 0 {
			burst = DefaultBurst
		}
		ls = append(ls, layer{"rate limit", func(h http.Handler) http.Handler { return withRateLimit(h, newLimiter(rps, burst, nil)) }})
	}
	ls = append(ls, layer{"detailed health", r.withDetailedHealth}) // anyone may ask, as for the probes
	// The UI has its own login (a form and a session), so it comes before auth.
	if r.uiH != nil {
		ls = append(ls, layer{layerUI, func(h http.Handler) http.Handler { return withUI(h, r.uiH) }})
	}
	if a := r.opts.Auth; a != nil && a.Policy != auth.PolicyNone {
		r.login = newLoginGate(a.Verifier, nil)
		r.authz = newAuthorizer(*a, r.login, r.tokens)
		ls = append(ls, layer{layerAuth, r.authz.wrap}) // and the token endpoint
	}
	ls = append(ls,
		layer{"operations", r.withOps}, // after auth: under --auth=all, metrics and stats need a user
		layer{"limits", withLimits},
		layer{"gc api", r.withGCAPI},      // POST /api/v1/gc
		layer{"gc gate", r.gc.withGCGate}, // commits wait for a sweep only; reads are noted for it
		layer{"server errors", func(h http.Handler) http.Handler { return withServerErrors(h, r.log) }},
		layer{"disk full", func(h http.Handler) http.Handler { return withDiskGuard(h, r.disk) }}, // 507s pass the layer above
	)
	if r.quota != nil {
		ls = append(ls, layer{"quota", func(h http.Handler) http.Handler { return withQuota(h, r.quota) }})
	}
	ls = append(ls,
		layer{"referrers", func(h http.Handler) http.Handler { return withReferrers(h, refs) }},
		layer{"blob files", func(h http.Handler) http.Handler { return withBlobFiles(h, eng, r.opts.DataDir) }},
	)
	if r.ui != nil {
		ls = append(ls, layer{"repository gate", r.ui.gate.wrap})
	}
	ls = append(ls, layer{"manifests", func(h http.Handler) http.Handler { ml.next = h; return ml }})
	return ls
}

// Layers the stack is split after: requests below them are authenticated.
const (
	layerAuth = "auth"
	layerUI   = "ui"
)

// splitAtAuth splits the layers after authentication (and the UI, which does
// its own): the UI's own requests enter the stack there.
func splitAtAuth(ls []layer) (front, core []layer) {
	i := 0
	for j, l := range ls {
		if l.name == layerAuth || l.name == layerUI {
			i = j + 1
		}
	}
	return ls[:i], ls[i:]
}

// withUI serves the web UI under /ui/ and sends browsers from / there.
func withUI(next, ui http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch p := r.URL.Path; {
		case (p == "/" || p == "/ui") && (r.Method == http.MethodGet || r.Method == http.MethodHead):
			http.Redirect(w, r, "/ui/", http.StatusFound)
		case strings.HasPrefix(p, "/ui/"):
			ui.ServeHTTP(w, r)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// buildHandler stacks the layers over distribution's app.
func buildHandler(ls []layer, engine http.Handler) http.Handler {
	h := engine
	for i := len(ls) - 1; i >= 0; i-- {
		h = ls[i].wrap(h)
	}
	return h
}

// withHealth answers the health endpoints, which need neither auth nor the engine.
func (r *Registry) withHealth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		switch kind := routeOf(req).Kind; {
		case kind == RouteLive && req.Method == http.MethodGet:
			r.handleLive(w, req)
		case kind == RouteReady && req.Method == http.MethodGet:
			r.handleReady(w, req)
		default:
			next.ServeHTTP(w, req)
		}
	})
}

// withReferrers serves the referrers API, which distribution does not have.
func withReferrers(next http.Handler, refs *referrersIndex) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rt := routeOf(r); rt.Kind == RouteReferrers {
			refs.serve(w, r, rt)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// withDetailedHealth answers GET /health.
func (r *Registry) withDetailedHealth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if routeOf(req).Kind == RouteHealth {
			r.handleDetailedHealth(w, req)
			return
		}
		next.ServeHTTP(w, req)
	})
}

// withOps answers /metrics and /api/v1/stats.
func (r *Registry) withOps(next http.Handler) http.Handler {
	var metricsHandler http.Handler
	if r.metrics != nil {
		metricsHandler = r.metrics.handler()
	}
	statsOn := r.stats != nil
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		switch routeOf(req).Kind {
		case RouteMetrics:
			if metricsHandler == nil {
				writeOCIError(w, http.StatusNotFound, codeUnsupported, "metrics are turned off in this registry")
				return
			}
			metricsHandler.ServeHTTP(w, req)
		case RouteStats:
			if !statsOn {
				writeOCIError(w, http.StatusNotFound, codeUnsupported, "statistics are turned off in this registry")
				return
			}
			r.serveStats(w, req)
		default:
			next.ServeHTTP(w, req)
		}
	})
}
