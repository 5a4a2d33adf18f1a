package registry

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/idpbuilder/idpbuilder/pkg/auth"
	"github.com/idpbuilder/idpbuilder/pkg/registryapi"
)

// maxGCRequestBytes bounds the admin request body (a few small fields).
const maxGCRequestBytes = 64 << 10

// withGCAPI serves POST /api/v1/gc: one garbage collection run, its result
// as JSON.
func (r *Registry) withGCAPI(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if routeOf(req).Kind != RouteGC {
			next.ServeHTTP(w, req)
			return
		}
		r.serveGC(w, req)
	})
}

func (r *Registry) serveGC(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeOCIError(w, http.StatusMethodNotAllowed, codeUnsupported, "garbage collection is started with POST")
		return
	}
	if a := r.opts.Auth; a != nil && a.Policy != auth.PolicyNone && !isUser(req) {
		r.authz.challenge(w, req, nil, "", "garbage collection needs a logged-in user: run idpbuilder registry login")
		return
	}
	var body registryapi.GCRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, req.Body, maxGCRequestBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil && !errors.Is(err, io.EOF) {
		writeOCIError(w, http.StatusBadRequest, registryapi.CodeInvalidRequest, "the request body is not a garbage collection request: "+err.Error())
		return
	}
	if err := body.Validate(); err != nil {
		writeOCIError(w, http.StatusBadRequest, registryapi.CodeInvalidRequest, err.Error())
		return
	}
	r.mu.Lock()
	c := r.gc
	r.mu.Unlock()
	if c == nil {
		writeOCIError(w, http.StatusServiceUnavailable, codeUnknown, "the registry is shutting down")
		return
	}
	res, err := c.run(req.Context(), body)
	switch {
	case errors.Is(err, ErrGCRunning):
		writeOCIError(w, http.StatusConflict, registryapi.CodeGCRunning, "a garbage collection is already running; try again when it has finished")
		return
	case err != nil:
		// The result says what was deleted before the run stopped, and why
		// (without machine paths: the log has those).
		writeJSON(w, http.StatusInternalServerError, res)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// isUser tells whether the request is authenticated as a user (Basic
// credentials or a user's token; an anonymous token is nobody).
func isUser(req *http.Request) bool {
	_, ok := userOf(req)
	return ok
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
