package registry

import (
	"errors"
	"io"
	"net"
	"net/http"
	"time"
)

// DefaultBodyIdleTimeout cuts a request body that sends nothing for this long;
// a slow body that keeps moving is never cut.
const DefaultBodyIdleTimeout = 60 * time.Second

// withBodyIdleTimeout bounds how long a request body may stall: without it a
// client that opens 300 uploads and sends a byte now and then holds their file
// descriptors for as long as it likes.
func withBodyIdleTimeout(next http.Handler, idle time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		body := &idleBody{ReadCloser: r.Body, rc: http.NewResponseController(w), idle: idle}
		r.Body = body
		next.ServeHTTP(&stalledWriter{ResponseWriter: w, body: body}, r)
	})
}

// stalledWriter answers 408 for a body cut by the idle timeout, whatever the
// inner handler makes of the read error (distribution says 499).
type stalledWriter struct {
	http.ResponseWriter
	body     *idleBody
	replaced bool
}

func (w *stalledWriter) WriteHeader(code int) {
	if w.body.timedOut && code >= 400 && !w.replaced {
		w.replaced = true
		writeOCIError(w.ResponseWriter, http.StatusRequestTimeout, codeBlobUploadInvalid,
			"the request body sent nothing for "+w.body.idle.String()+"; send it again")
		return
	}
	if !w.replaced {
		w.ResponseWriter.WriteHeader(code)
	}
}

func (w *stalledWriter) Write(b []byte) (int, error) {
	if w.replaced {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

func (w *stalledWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ReadFrom passes through (sendfile, see readFromThrough) unless the answer
// was replaced.
func (w *stalledWriter) ReadFrom(src io.Reader) (int64, error) {
	if w.replaced {
		return io.Copy(io.Discard, src)
	}
	return readFromThrough(w.ResponseWriter, src)
}

// idleBody moves the connection's read deadline forward before every read.
type idleBody struct {
	io.ReadCloser
	rc       *http.ResponseController
	idle     time.Duration
	ended    bool
	timedOut bool
}

func (b *idleBody) Read(p []byte) (int, error) {
	if b.ended {
		return b.ReadCloser.Read(p)
	}
	// Errors are ignored: a connection that cannot take deadlines (HTTP/2,
	// or a test recorder) just keeps the server's own timeouts.
	_ = b.rc.SetReadDeadline(time.Now().Add(b.idle))
	n, err := b.ReadCloser.Read(p)
	if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
		b.timedOut = true
	}
	if err == io.EOF {
		// The whole body is in: the handler may work on (hashing, moving)
		// for longer than the idle time, and net/http's background read must
		// not time out meanwhile. After a timeout the deadline stays passed,
		// so net/http gives up on the rest of the body and closes.
		b.ended = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}
