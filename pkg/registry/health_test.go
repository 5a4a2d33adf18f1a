package registry

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/idpbuilder/idpbuilder/pkg/registryapi"
)

func checkNames(h registryapi.Health) []string {
	var names []string
	for _, c := range h.Checks {
		names = append(names, c.Name)
	}
	return names
}

func check(t testing.TB, h registryapi.Health, name string) registryapi.HealthCheck {
	t.Helper()
	for _, c := range h.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no %q check in %v", name, checkNames(h))
	return registryapi.HealthCheck{}
}

// getHealth fetches /health and decodes it.
func (s *opsServer) getHealth(t testing.TB) (int, registryapi.Health) {
	t.Helper()
	resp, body := s.get(t, "/health", "", "")
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var h registryapi.Health
	require.NoError(t, json.Unmarshal(body, &h), string(body))
	return resp.StatusCode, h
}

func TestDetailedHealthHealthy(t *testing.T) {
	s := newOpsServer(t, Options{})
	code, h := s.getHealth(t)
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, registryapi.Healthy, h.Status)
	assert.Equal(t, []string{"storage", "disk", "gc", "writes"}, checkNames(h), "no certificate or quota check without TLS or a quota")
	for _, c := range h.Checks {
		assert.Equal(t, registryapi.Healthy, c.Status, c.Name)
		assert.NotEmpty(t, c.Message, c.Name)
		assert.GreaterOrEqual(t, c.DurationMS, 0.0)
		assert.NotContains(t, c.Message, s.reg.opts.DataDir)
	}
	assert.Contains(t, check(t, h, "disk").Message, "free of")

	// The short probes keep their short answers.
	resp, body := s.get(t, "/readyz", "", "")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.JSONEq(t, `{"status":"ok","checks":{"disk":"ok","storage":"ok"}}`, string(body))
}

func TestDetailedHealthDiskThresholds(t *testing.T) {
	for _, tc := range []struct {
		name   string
		disk   diskThresholds
		code   int
		status registryapi.HealthStatus
		says   string
	}{
		{"plenty", diskThresholds{warnBytes: 1, warnPercent: 0, minBytes: 1}, http.StatusOK, registryapi.Healthy, "free of"},
		{"below the warning in bytes", diskThresholds{warnBytes: 1 << 62, minBytes: 1}, http.StatusOK, registryapi.Degraded, "free space or run garbage collection"},
		{"below the warning in percent", diskThresholds{warnBytes: 1, warnPercent: 100.1, minBytes: 1}, http.StatusOK, registryapi.Degraded, "below"},
		{"below the minimum", diskThresholds{warnBytes: 1 << 62, minBytes: 1 << 62}, http.StatusServiceUnavailable, registryapi.Unhealthy, "pushes will fail"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newOpsServer(t, Options{disk: tc.disk})
			code, h := s.getHealth(t)
			assert.Equal(t, tc.code, code)
			assert.Equal(t, tc.status, h.Status)
			d := check(t, h, "disk")
			assert.Equal(t, tc.status, d.Status)
			assert.Contains(t, d.Message, tc.says)
			assert.Equal(t, registryapi.Healthy, check(t, h, "storage").Status)
		})
	}
}

func TestDetailedHealthUnwritableStorage(t *testing.T) {
	dir := t.TempDir()
	s := newOpsServer(t, Options{DataDir: dir})
	// A file where the metadata dir was: every write into it fails, root or not.
	meta := filepath.Join(dir, metaDir)
	require.NoError(t, os.RemoveAll(meta))
	require.NoError(t, os.WriteFile(meta, []byte("x"), 0o600))

	code, h := s.getHealth(t)
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Equal(t, registryapi.Unhealthy, h.Status)
	c := check(t, h, "storage")
	assert.Equal(t, registryapi.Unhealthy, c.Status)
	assert.Contains(t, c.Message, "not writable")
	assert.NotContains(t, c.Message, dir, "an anonymous reader learns no machine path")
}

// selfSigned returns a certificate valid from an hour ago until notAfter.
func selfSigned(t testing.TB, notAfter time.Time) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-100 * 24 * time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestDetailedHealthCertificateExpiry(t *testing.T) {
	for _, tc := range []struct {
		name     string
		notAfter time.Duration
		status   registryapi.HealthStatus
		says     string
	}{
		{"valid", 60 * 24 * time.Hour, registryapi.Healthy, "valid until"},
		{"expiring", 3 * 24 * time.Hour, registryapi.Degraded, "has not been renewed"},
		{"expired", -time.Hour, registryapi.Unhealthy, "expired on"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert := selfSigned(t, time.Now().Add(tc.notAfter))
			s := newOpsServer(t, Options{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert, nil }})
			h := s.reg.DetailedHealth(context.Background())
			c := check(t, h, "certificate")
			assert.Equal(t, tc.status, c.Status)
			assert.Contains(t, c.Message, tc.says)
			assert.Contains(t, c.Message, time.Now().Add(tc.notAfter).UTC().Format(time.DateOnly))
			assert.Equal(t, tc.status, h.Status, "the worst check decides")
		})
	}
}

func TestDetailedHealthOverTLS(t *testing.T) {
	r, pool, _, _ := secureRegistry(t, "push", 0, 0)
	resp, err := tlsClient(pool).Get("https://" + r.Addr() + "/health")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var h registryapi.Health
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&h))
	assert.Equal(t, registryapi.Healthy, h.Status)
	assert.Equal(t, []string{"storage", "disk", "certificate", "gc", "writes"}, checkNames(h))
	assert.Contains(t, check(t, h, "certificate").Message, "valid until")
}

func TestFeaturesAddHealthChecks(t *testing.T) {
	s := newOpsServer(t, Options{})
	s.reg.addHealthCheck("hung", func(ctx context.Context) (registryapi.HealthStatus, string) {
		<-ctx.Done() // a check that never finishes on its own
		return registryapi.Healthy, "never seen"
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the check's deadline has passed already
	h := s.reg.DetailedHealth(ctx)
	assert.Equal(t, []string{"storage", "disk", "gc", "writes", "hung"}, checkNames(h))
	assert.Equal(t, registryapi.Unhealthy, check(t, h, "hung").Status)
	assert.Contains(t, check(t, h, "hung").Message, "did not finish")
}
