package registry

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
)

// OCI error codes (distribution-spec), plus the few distribution adds.
const (
	codeBlobUnknown       = "BLOB_UNKNOWN"
	codeBlobUploadInvalid = "BLOB_UPLOAD_INVALID"
	codeBlobUploadUnknown = "BLOB_UPLOAD_UNKNOWN"
	codeDigestInvalid     = "DIGEST_INVALID"
	codeManifestInvalid   = "MANIFEST_INVALID"
	codeManifestUnknown   = "MANIFEST_UNKNOWN"
	codeNameInvalid       = "NAME_INVALID"
	codeTagInvalid        = "TAG_INVALID"
	codeSizeInvalid       = "SIZE_INVALID"
	codeUnauthorized      = "UNAUTHORIZED"
	codeDenied            = "DENIED"
	codeUnsupported       = "UNSUPPORTED"
	codeTooManyRequests   = "TOOMANYREQUESTS"
	codePaginationInvalid = "PAGINATION_NUMBER_INVALID"
	codeUnknown           = "UNKNOWN"
)

// ociError is one error of a distribution-spec error body, with its status.
type ociError struct {
	Status  int
	Code    string
	Message string
}

func (e *ociError) Error() string { return e.Code + ": " + e.Message }

func (e *ociError) write(w http.ResponseWriter) { writeOCIError(w, e.Status, e.Code, e.Message) }

// writeOCIError writes a distribution-spec error body.
func writeOCIError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Del("Content-Length")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"errors": []map[string]any{{"code": code, "message": msg}},
	})
}

// withServerErrors keeps server errors from leaking: distribution puts the
// storage driver's error text, machine paths included, into the detail of its
// 500s. The body is replaced by a generic one naming the request id, and the
// original goes to the log, where the operator can read it.
func withServerErrors(next http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &serverErrorWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if sw.status < 500 {
			return
		}
		if sw.status == http.StatusInsufficientStorage {
			// Only the disk guard answers 507, with a body of its own.
			sw.replay()
			return
		}
		id := ""
		if ri := infoFrom(r.Context()); ri != nil {
			id = ri.id
		}
		log.LogAttrs(r.Context(), slog.LevelError, "internal error",
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", sw.status), slog.String("body", sw.body.String()), slog.String("request_id", id))
		writeOCIError(w, sw.status, codeUnknown, "internal error; the registry's log has the details (request id "+id+")")
	})
}

// serverErrorWriter passes everything through until a 5xx status is written;
// from then on it holds the body back (bounded) for withServerErrors.
type serverErrorWriter struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (w *serverErrorWriter) WriteHeader(code int) {
	if w.status != 0 {
		return
	}
	w.status = code
	if code < 500 {
		w.ResponseWriter.WriteHeader(code)
	}
}

func (w *serverErrorWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.status >= 500 {
		if w.body.Len() < 4096 {
			w.body.Write(b[:min(len(b), 4096-w.body.Len())])
		}
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// Flush is forwarded (streamed blob downloads) except while a 5xx is held back.
func (w *serverErrorWriter) Flush() {
	if w.status >= 500 {
		return
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// replay sends a held answer on as it was.
func (w *serverErrorWriter) replay() {
	w.ResponseWriter.WriteHeader(w.status)
	_, _ = w.ResponseWriter.Write(w.body.Bytes())
}

func (w *serverErrorWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ReadFrom passes through (sendfile, see readFromThrough) except while a 5xx
// is held back.
func (w *serverErrorWriter) ReadFrom(src io.Reader) (int64, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.status >= 500 {
		return io.Copy(writeOnly{w}, src)
	}
	return readFromThrough(w.ResponseWriter, src)
}
