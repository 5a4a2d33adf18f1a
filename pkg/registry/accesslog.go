package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// requestInfo travels in the request context: the outermost layer parses the
// route once for every layer below, and the access log reports what inner
// layers learned (the user).
type requestInfo struct {
	id    string
	route Route
	user  string
}

type requestInfoKey struct{}

func infoFrom(ctx context.Context) *requestInfo {
	ri, _ := ctx.Value(requestInfoKey{}).(*requestInfo)
	return ri
}

// routeOf is the request's parsed route (parsed here if no layer did yet, as in
// tests that drive one layer alone).
func routeOf(r *http.Request) Route {
	if ri := infoFrom(r.Context()); ri != nil {
		return ri.route
	}
	return parseRoute(r.URL.Path)
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

// Flush forwards to the underlying writer (distribution flushes streamed bodies).
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer (flushes, deadlines).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ReadFrom counts what readFromThrough copies.
func (w *statusWriter) ReadFrom(src io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := readFromThrough(w.ResponseWriter, src)
	w.bytes += n
	return n, err
}

// readFromThrough copies src into w by w's own ReadFrom. Every writer that
// wraps http.ResponseWriter in this package has a ReadFrom that ends here
// (TestResponseWritersPassReadFrom checks): http.ServeContent copies a blob
// with io.CopyN, which asks the writer for io.ReaderFrom, and only net/http's
// own ReadFrom hands an *os.File to the connection's sendfile. A wrapper
// without it makes the copy go through a 32 KiB user-space buffer instead.
func readFromThrough(w http.ResponseWriter, src io.Reader) (int64, error) {
	if rf, ok := w.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(writeOnly{w}, src)
}

// writeOnly hides every method but Write, so io.Copy uses plain writes.
type writeOnly struct{ io.Writer }

// withRequestInfo assigns a request id and parses the route, once per request.
func withRequestInfo(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ri := &requestInfo{id: newRequestID(), route: parseRoute(r.URL.Path)}
		w.Header().Set("X-Request-Id", ri.id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, ri)))
	})
}

// withAccessLog logs one line per request: who, what, outcome, size, time.
// Never credentials, never query strings (they carry upload state).
func withAccessLog(next http.Handler, log *slog.Logger) http.Handler {
	if log == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		var user, id, kind string
		if ri := infoFrom(r.Context()); ri != nil {
			user, id, kind = ri.user, ri.id, ri.route.Kind.String()
		}
		log.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("remote", clientIP(r)),
			slog.String("user", user),
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.String("route", kind),
			slog.Int("status", status),
			slog.Int64("bytes", sw.bytes),
			slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
			slog.String("request_id", id),
		)
	})
}

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// clientIP is the peer address; forwarding headers are ignored (spoofable).
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
