package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/idpbuilder/idpbuilder/pkg/auth"
)

// Limits and defaults of the HTTP front.
const (
	maxHeaderBytes  = 64 << 10
	maxManifestSize = 4 << 20 // what distribution itself accepts
	// DefaultRequestsPerSecond and DefaultBurst bound each client; generous
	// enough for 100 parallel pushes from one machine.
	DefaultRequestsPerSecond = 1000
	DefaultBurst             = 2000
	// Failed logins refill at one per 6 s with a burst of 10: 50 bad passwords
	// in a row from one client are mostly answered 429.
	failedLoginRate  = 1.0 / 6
	failedLoginBurst = 10
)

// AuthOptions turn on authentication.
type AuthOptions struct {
	Policy   auth.Policy
	Verifier *auth.Verifier
}

// RateLimit configures per-client rate limiting; zero values mean the defaults.
type RateLimit struct {
	RequestsPerSecond float64
	Burst             int
	// Disabled turns the limiter off (benchmarks of the engine alone).
	Disabled bool
}

// requestInfo travels in the request context so the access log, outermost, can
// report what inner layers learned (the user).
type requestInfo struct {
	id   string
	user string
}

type requestInfoKey struct{}

func infoFrom(ctx context.Context) *requestInfo {
	ri, _ := ctx.Value(requestInfoKey{}).(*requestInfo)
	return ri
}

// statusWriter records the status code and bytes written.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer (flushes, deadlines).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// withAccessLog assigns a request id and logs one line per request: who, what,
// outcome, size, time. Never credentials, never query strings (upload state).
func withAccessLog(next http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ri := &requestInfo{id: newRequestID()}
		w.Header().Set("X-Request-Id", ri.id)
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, ri)))
		if log == nil {
			return
		}
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		log.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("remote", clientIP(r)),
			slog.String("user", ri.user),
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", status),
			slog.Int64("bytes", sw.bytes),
			slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
			slog.String("request_id", ri.id),
		)
	})
}

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// withSecurityHeaders sets headers that keep browsers from misusing responses.
func withSecurityHeaders(next http.Handler, tls bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", "frame-ancestors 'none'")
		if tls {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		next.ServeHTTP(w, r)
	})
}

// withLimits refuses manifests over distribution's own limit before reading them.
func withLimits(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") {
			if r.ContentLength > maxManifestSize {
				writeOCIError(w, http.StatusRequestEntityTooLarge, "MANIFEST_INVALID",
					fmt.Sprintf("manifest is %d bytes; the limit is %d", r.ContentLength, maxManifestSize))
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, maxManifestSize)
		}
		next.ServeHTTP(w, r)
	})
}

// withRateLimit answers 429 with Retry-After once a client spends its tokens.
func withRateLimit(next http.Handler, l *limiter) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ok, retry := l.take(clientIP(r)); !ok {
			tooMany(w, retry, "too many requests from this client")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func tooMany(w http.ResponseWriter, retry time.Duration, msg string) {
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(retry.Seconds()))))
	writeOCIError(w, http.StatusTooManyRequests, "TOOMANYREQUESTS", msg)
}

// withAuth applies the policy. Credentials, when sent, are always checked (so
// `docker login` fails on a wrong password even where pulls are anonymous); a
// client whose failed logins ran out its budget gets 429 until it refills.
func withAuth(next http.Handler, opts AuthOptions, failed *limiter) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip := clientIP(r)
		header := r.Header.Get("Authorization")
		needs := opts.Policy.Requires(r.Method) || (opts.Policy != auth.PolicyNone && r.URL.Path == "/v2/")
		if header == "" && !needs {
			next.ServeHTTP(w, r)
			return
		}
		if empty, retry := failed.empty(ip); empty {
			tooMany(w, retry, "too many failed logins from this client")
			return
		}
		if header == "" {
			challenge(w, "authentication required")
			return
		}
		user, pass, ok := auth.ParseBasic(header)
		if !ok {
			failed.take(ip)
			challenge(w, "malformed Authorization header (want Basic)")
			return
		}
		good, err := opts.Verifier.Verify(user, pass)
		if err != nil {
			writeOCIError(w, http.StatusInternalServerError, "UNKNOWN", "cannot read the user database")
			return
		}
		if !good {
			failed.take(ip)
			challenge(w, "invalid username or password")
			return
		}
		if ri := infoFrom(r.Context()); ri != nil {
			ri.user = user
		}
		next.ServeHTTP(w, r)
	})
}

func challenge(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", `Basic realm="idpbuilder registry"`)
	writeOCIError(w, http.StatusUnauthorized, "UNAUTHORIZED", msg)
}

// writeOCIError writes a distribution-spec error body.
func writeOCIError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"errors": []map[string]any{{"code": code, "message": msg}},
	})
}

// clientIP is the peer address; forwarding headers are ignored (spoofable).
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
