package registry

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestHSTSOnlyForOtherHosts(t *testing.T) {
	h := withSecurityHeaders(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), true)
	for host, want := range map[string]bool{
		"localhost:5001": false, "LOCALHOST": false, "127.0.0.1:5001": false, "127.0.0.2": false, "[::1]:5001": false,
		"app.localhost:5001": false, "registry.local:5000": true, "myhost.example:443": true, "172.18.0.1:5001": true,
	} {
		req := httptest.NewRequest(http.MethodGet, "/v2/", nil)
		req.Host = host
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		assert.Equal(t, want, rec.Header().Get("Strict-Transport-Security") != "", host)
	}
	// Never over plain HTTP.
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/v2/", nil)
	req.Host = "registry.local"
	withSecurityHeaders(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), false).ServeHTTP(rec, req)
	assert.Empty(t, rec.Header().Get("Strict-Transport-Security"))
}

func TestHealthProbesAreNotRateLimited(t *testing.T) {
	r := New(Options{DataDir: t.TempDir(), Logger: discardLogger(), RateLimit: RateLimit{RequestsPerSecond: 0.001, Burst: 1}})
	require.NoError(t, r.Open(context.Background()))
	t.Cleanup(func() { _ = r.Close() })
	get := func(path string) int {
		rec := httptest.NewRecorder()
		r.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code
	}
	assert.Equal(t, http.StatusOK, get("/v2/"))
	assert.Equal(t, http.StatusTooManyRequests, get("/v2/"), "the client's bucket is empty")
	for range 20 {
		assert.Equal(t, http.StatusOK, get("/healthz"))
		assert.Equal(t, http.StatusOK, get("/readyz"))
	}
}
