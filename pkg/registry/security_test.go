package registry

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/idpbuilder/idpbuilder/pkg/auth"
	"github.com/idpbuilder/idpbuilder/pkg/certs"
)

const testPassword = "correct horse battery"

// secureRegistry starts a registry with TLS from a fresh CA and the given auth
// policy (user alice). It returns the registry, the CA pool and the access log.
func secureRegistry(t *testing.T, policy auth.Policy, lifetime time.Duration, checkEvery time.Duration) (*Registry, *x509.CertPool, *certs.Manager, *bytes.Buffer) {
	t.Helper()
	dir := t.TempDir()
	h := auth.Htpasswd{Path: filepath.Join(dir, "htpasswd")}
	require.NoError(t, h.Set("alice", testPassword))
	m := &certs.Manager{Dir: filepath.Join(dir, "certs"), Lifetime: lifetime}
	_, err := m.Ensure()
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if checkEvery > 0 {
		go m.Run(ctx, checkEvery, nil)
	}
	var accessBuf bytes.Buffer
	access := slog.New(slog.NewJSONHandler(&lockedWriter{w: &accessBuf}, nil))
	r := New(Options{
		Addr: "127.0.0.1:0", DataDir: filepath.Join(dir, "data"), Logger: slog.New(slog.DiscardHandler),
		GetCertificate: m.GetCertificate,
		Auth:           &AuthOptions{Policy: policy, Verifier: auth.NewVerifier(h)},
		AccessLog:      access,
	})
	require.NoError(t, r.Start(context.Background()))
	t.Cleanup(func() { _ = r.Stop(context.Background()) })
	pem, err := m.CAPEM()
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pem))
	return r, pool, m, &accessBuf
}

type lockedWriter struct {
	mu atomic.Bool
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	for !l.mu.CompareAndSwap(false, true) {
	}
	defer l.mu.Store(false)
	return l.w.Write(p)
}

func tlsClient(pool *x509.CertPool) *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// TestPhase2_TLSSecurity is the seed plan's validation test.
func TestPhase2_TLSSecurity(t *testing.T) {
	r, pool, m, _ := secureRegistry(t, auth.PolicyPush, 0, 0)
	resp, err := tlsClient(pool).Get("https://" + r.Addr() + "/v2/")
	require.NoError(t, err)
	resp.Body.Close()
	// /v2/ challenges anonymous clients so they learn to send credentials.
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	req, _ := http.NewRequest(http.MethodGet, "https://"+r.Addr()+"/v2/", nil)
	req.SetBasicAuth("alice", testPassword)
	resp, err = tlsClient(pool).Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	assert.Empty(t, resp.Header.Get("Strict-Transport-Security"), "no HSTS for 127.0.0.1: it would pin every port")

	cert := m.Leaf()
	require.NotEmpty(t, cert.Subject.CommonName)
	require.True(t, cert.NotAfter.After(time.Now()))
	require.NoError(t, cert.VerifyHostname("127.0.0.1"))
}

func TestClientVerifiesOnlyWithOurCA(t *testing.T) {
	r, pool, _, _ := secureRegistry(t, auth.PolicyPush, 0, 0)
	ref, err := name.ParseReference(r.Addr() + "/secure/app:v1")
	require.NoError(t, err)
	img, _ := random.Image(1024, 2)
	user := remote.WithAuth(&authn.Basic{Username: "alice", Password: testPassword})

	// With only our CA in its pool, the client pushes and pulls.
	withCA := remote.WithTransport(&http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}})
	require.NoError(t, remote.Write(ref, img, withCA, user))
	got, err := remote.Image(ref, withCA)
	require.NoError(t, err, "anonymous pull under --auth=push")
	d1, _ := img.Digest()
	d2, _ := got.Digest()
	assert.Equal(t, d1, d2)

	// Without it, certificate verification fails.
	without := remote.WithTransport(&http.Transport{TLSClientConfig: &tls.Config{RootCAs: x509.NewCertPool()}})
	_, err = remote.Image(ref, without)
	require.Error(t, err)
	var uae x509.UnknownAuthorityError
	assert.True(t, errors.As(err, &uae), "want an x509 unknown-authority error, got %v", err)
}

func TestAuthPolicies(t *testing.T) {
	tests := []struct {
		policy      auth.Policy
		method      string
		path        string
		creds       string // "", "good", "bad"
		want        int
		wantChallen bool
	}{
		{auth.PolicyPush, "GET", "/v2/x/tags/list", "", 404, false},
		{auth.PolicyPush, "POST", "/v2/x/blobs/uploads/", "", 401, true},
		{auth.PolicyPush, "POST", "/v2/x/blobs/uploads/", "bad", 401, true},
		{auth.PolicyPush, "POST", "/v2/x/blobs/uploads/", "good", 202, false},
		{auth.PolicyPush, "GET", "/v2/x/tags/list", "bad", 401, true}, // sent credentials are always checked
		{auth.PolicyPush, "DELETE", "/v2/x/manifests/sha256:" + strings.Repeat("a", 64), "", 401, true},
		{auth.PolicyAll, "GET", "/v2/x/tags/list", "", 401, true},
		{auth.PolicyAll, "GET", "/v2/x/tags/list", "good", 404, false},
		{auth.PolicyAll, "GET", "/healthz", "", 200, false},
		{auth.PolicyAll, "GET", "/readyz", "", 200, false},
	}
	regs := map[auth.Policy]*Registry{}
	pools := map[auth.Policy]*x509.CertPool{}
	for _, tt := range tests {
		if regs[tt.policy] == nil {
			regs[tt.policy], pools[tt.policy], _, _ = secureRegistry(t, tt.policy, 0, 0)
		}
		r, c := regs[tt.policy], tlsClient(pools[tt.policy])
		req, _ := http.NewRequest(tt.method, "https://"+r.Addr()+tt.path, nil)
		switch tt.creds {
		case "good":
			req.SetBasicAuth("alice", testPassword)
		case "bad":
			req.SetBasicAuth("alice", "wrong password")
		}
		resp, err := c.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, tt.want, resp.StatusCode, "%s %s %s %s: %s", tt.policy, tt.method, tt.path, tt.creds, body)
		assert.Equal(t, tt.wantChallen, resp.Header.Get("WWW-Authenticate") != "", "%s %s %s", tt.policy, tt.method, tt.path)
		if tt.want == 401 {
			assert.Contains(t, string(body), `"code":"UNAUTHORIZED"`)
		}
	}
}

// TestUnauthenticatedPushWritesNothing: a refused push leaves storage untouched.
func TestUnauthenticatedPushWritesNothing(t *testing.T) {
	r, pool, _, _ := secureRegistry(t, auth.PolicyPush, 0, 0)
	ref, _ := name.ParseReference(r.Addr() + "/nope/app:v1")
	img, _ := random.Image(1024, 1)
	err := remote.Write(ref, img, remote.WithTransport(&http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "UNAUTHORIZED")
	_, statErr := os.Stat(filepath.Join(r.opts.DataDir, "docker"))
	assert.True(t, os.IsNotExist(statErr), "nothing may be written to storage")
}

// TestBadLoginsAreRateLimited: 50 bad logins from one client run into 429s with
// Retry-After; the right password from another client still works.
func TestBadLoginsAreRateLimited(t *testing.T) {
	r, pool, _, _ := secureRegistry(t, auth.PolicyAll, 0, 0)
	from := func(ip string) *http.Client {
		return &http.Client{Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool},
			DialContext:     (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}).DialContext,
		}}
	}
	attacker := from("127.0.0.1")
	start := time.Now()
	codes := map[int]int{}
	var retryAfter, body string
	for range 50 {
		req, _ := http.NewRequest(http.MethodGet, "https://"+r.Addr()+"/v2/", nil)
		req.SetBasicAuth("alice", "guess")
		resp, err := attacker.Do(req)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		codes[resp.StatusCode]++
		if resp.StatusCode == http.StatusTooManyRequests {
			retryAfter, body = resp.Header.Get("Retry-After"), string(b)
		}
	}
	// The budget refills at one per 6 s while the loop runs (slowly, under -race).
	refills := int(time.Since(start).Seconds()*failedLoginRate) + 1
	t.Logf("50 bad logins: %v (refills possible: %d)", codes, refills)
	assert.GreaterOrEqual(t, codes[401], failedLoginBurst, "the burst is answered 401")
	assert.LessOrEqual(t, codes[401], failedLoginBurst+refills)
	assert.Equal(t, 50, codes[401]+codes[429])
	assert.NotEmpty(t, retryAfter)
	assert.Contains(t, body, `"code":"TOOMANYREQUESTS"`)

	// Even the right password is refused from the attacking client for now...
	req, _ := http.NewRequest(http.MethodGet, "https://"+r.Addr()+"/v2/", nil)
	req.SetBasicAuth("alice", testPassword)
	resp, err := attacker.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	// ...but another client logs in.
	req, _ = http.NewRequest(http.MethodGet, "https://"+r.Addr()+"/v2/", nil)
	req.SetBasicAuth("alice", testPassword)
	resp, err = from("127.0.0.2").Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

// TestRequestRateLimit: clients elsewhere are limited; loopback clients, the
// registry's own user, never are, at the defaults or below them.
func TestRequestRateLimit(t *testing.T) {
	open := func(rl RateLimit) http.Handler {
		r := New(Options{DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler), RateLimit: rl})
		require.NoError(t, r.Open(context.Background()))
		t.Cleanup(func() { _ = r.Close() })
		return r.Handler()
	}
	get := func(h http.Handler, from string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/v2/", nil)
		req.RemoteAddr = from
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	tight := open(RateLimit{RequestsPerSecond: 0.5, Burst: 3})
	var last *httptest.ResponseRecorder
	for range 4 {
		last = get(tight, "192.0.2.7:4000")
	}
	assert.Equal(t, http.StatusTooManyRequests, last.Code)
	assert.Equal(t, "2", last.Header().Get("Retry-After"))
	for _, from := range []string{"127.0.0.1:4000", "[::1]:4000", "127.0.0.2:4000"} {
		for range 10 {
			require.Equal(t, http.StatusOK, get(tight, from).Code, from)
		}
	}
	// At the defaults (burst 2000), a bulk job from this machine is never refused.
	defaults := open(RateLimit{})
	for i := range 2500 {
		require.Equal(t, http.StatusOK, get(defaults, "127.0.0.1:4000").Code, "request %d", i)
	}
}

func TestSecurityHeadersAndAccessLog(t *testing.T) {
	r, pool, _, access := secureRegistry(t, auth.PolicyPush, 0, 0)
	req, _ := http.NewRequest(http.MethodGet, "https://"+r.Addr()+"/v2/_catalog?n=10", nil)
	req.SetBasicAuth("alice", testPassword)
	resp, err := tlsClient(pool).Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	for h, want := range map[string]string{
		"X-Content-Type-Options":    "nosniff",
		"Referrer-Policy":           "no-referrer",
		"X-Frame-Options":           "DENY",
		"Content-Security-Policy":   "frame-ancestors 'none'",
		"Strict-Transport-Security": "",
	} {
		assert.Equal(t, want, resp.Header.Get(h), h)
	}
	id := resp.Header.Get("X-Request-Id")
	require.Len(t, id, 16)

	var line map[string]any
	for _, l := range strings.Split(strings.TrimSpace(access.String()), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m))
		if m["request_id"] == id {
			line = m
		}
	}
	require.NotNil(t, line, "no access log line for request %s in:\n%s", id, access)
	assert.Equal(t, "alice", line["user"])
	assert.Equal(t, "GET", line["method"])
	assert.Equal(t, "/v2/_catalog", line["path"], "no query string")
	assert.EqualValues(t, 200, line["status"])
	assert.Equal(t, "127.0.0.1", line["remote"])
	assert.Contains(t, line, "duration_ms")
	assert.Contains(t, line, "bytes")
	assert.NotContains(t, access.String(), testPassword)
	assert.NotContains(t, access.String(), "Basic ")
}

func TestManifestSizeLimit(t *testing.T) {
	r := startRegistry(t, "")
	big := bytes.Repeat([]byte(" "), maxManifestSize+1)
	req, _ := http.NewRequest(http.MethodPut, "http://"+r.Addr()+"/v2/big/manifests/v1", bytes.NewReader(big))
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	assert.Contains(t, string(body), "MANIFEST_INVALID")
}

// TestRotationWhileServing: a certificate near expiry is renewed in the
// background while a client keeps pulling; no request fails, no restart.
func TestRotationWhileServing(t *testing.T) {
	// 3 s certificates checked every 100 ms: renewed after ~2 s.
	r, pool, m, _ := secureRegistry(t, auth.PolicyPush, 3*time.Second, 100*time.Millisecond)
	ref, _ := name.ParseReference(r.Addr() + "/rot/app:v1")
	img, _ := random.Image(512, 1)
	tr := remote.WithTransport(&http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true})
	require.NoError(t, remote.Write(ref, img, tr, remote.WithAuth(&authn.Basic{Username: "alice", Password: testPassword})))

	seen := map[string]bool{}
	deadline := time.Now().Add(20 * time.Second)
	pulls := 0
	for len(seen) < 3 && time.Now().Before(deadline) {
		// A fresh TLS connection each time, so each handshake shows the served certificate.
		conn, err := tls.Dial("tcp", r.Addr(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
		require.NoError(t, err, "handshake after %d pulls", pulls)
		seen[conn.ConnectionState().PeerCertificates[0].SerialNumber.String()] = true
		conn.Close()
		_, err = remote.Image(ref, tr)
		require.NoError(t, err, "pull %d", pulls)
		pulls++
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%d pulls, %d certificates served", pulls, len(seen))
	require.GreaterOrEqual(t, len(seen), 2, "the certificate was never renewed")
	assert.True(t, m.Leaf().NotAfter.After(time.Now()))
}

// FuzzRegistryRequests throws arbitrary methods and paths (repository names,
// references, digests) at the whole handler: it must answer with a client
// error or success, never panic, never a 5xx, never a path of the machine.
func FuzzRegistryRequests(f *testing.F) {
	dir := f.TempDir()
	r := New(Options{DataDir: dir, Logger: slog.New(slog.DiscardHandler),
		Auth: &AuthOptions{Policy: auth.PolicyNone}, RateLimit: RateLimit{Disabled: true}})
	require.NoError(f, r.Open(context.Background()))
	defer r.Close()
	h := r.Handler()
	for _, seed := range []string{
		"/v2/", "/v2/_catalog", "/v2/a/b/manifests/latest", "/v2/a/blobs/sha256:" + strings.Repeat("0", 64),
		"/v2/a/manifests/sha256:zz", "/v2/../../etc/passwd/tags/list", "/v2/A/manifests/x", "/v2//blobs/uploads/",
		"/v2/a/blobs/uploads/00000000-0000-0000-0000-000000000000?_state=xx", "/v2/a/referrers/sha256:00",
	} {
		for _, m := range []byte{0, 1, 2, 3, 4, 5} {
			f.Add(m, seed)
		}
	}
	methods := []string{"GET", "HEAD", "PUT", "POST", "PATCH", "DELETE"}
	f.Fuzz(func(t *testing.T, m byte, target string) {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return
		}
		req := &http.Request{Method: methods[int(m)%len(methods)], URL: u, Header: http.Header{}, Body: http.NoBody,
			Host: "localhost", RemoteAddr: "127.0.0.1:1234", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
		req = req.WithContext(context.Background())
		rec := &recorder{header: http.Header{}}
		h.ServeHTTP(rec, req)
		if rec.code == 0 {
			rec.code = 200
		}
		if rec.code >= 500 {
			t.Errorf("%s %s -> %d %s", req.Method, target, rec.code, rec.buf.String())
		}
		if strings.Contains(rec.buf.String(), dir) {
			t.Errorf("%s %s: the answer names the data dir: %s", req.Method, target, rec.buf.String())
		}
	})
}

type recorder struct {
	header http.Header
	code   int
	buf    bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = 200
	}
	return r.buf.Write(b)
}
func (r *recorder) WriteHeader(c int) {
	if r.code == 0 {
		r.code = c
	}
}

// TestTLS12OffersOnlyAEADSuites: a TLS 1.2 client that only speaks the CBC-SHA1
// suites Go offers by default is refused; an AEAD one is served.
func TestTLS12OffersOnlyAEADSuites(t *testing.T) {
	r, pool, _, _ := secureRegistry(t, auth.PolicyNone, 0, 0)
	for _, tc := range []struct {
		suite uint16
		ok    bool
	}{
		{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, false},
		{tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, false},
		{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, true},
		{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, true},
	} {
		conn, err := tls.Dial("tcp", r.Addr(), &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tc.suite}})
		if tc.ok {
			require.NoError(t, err, tls.CipherSuiteName(tc.suite))
			conn.Close()
		} else {
			assert.Error(t, err, tls.CipherSuiteName(tc.suite))
		}
	}
}

// TestParallelGuessesCannotOverdrawTheBudget: 200 parallel wrong passwords for
// one user reach bcrypt at most as often as the budget allows; another user on
// the same client still logs in, and parallel first logins with the right
// password are never refused.
func TestParallelGuessesCannotOverdrawTheBudget(t *testing.T) {
	dir := t.TempDir()
	h := auth.Htpasswd{Path: filepath.Join(dir, "htpasswd")}
	require.NoError(t, h.Set("alice", testPassword))
	require.NoError(t, h.Set("bob", testPassword+"-bob"))
	require.NoError(t, h.Set("carol", testPassword+"-carol"))
	r := New(Options{DataDir: filepath.Join(dir, "data"), Logger: slog.New(slog.DiscardHandler), RateLimit: RateLimit{Disabled: true},
		Auth: &AuthOptions{Policy: auth.PolicyAll, Verifier: auth.NewVerifier(h)}})
	require.NoError(t, r.Open(context.Background()))
	t.Cleanup(func() { _ = r.Close() })
	login := func(user, pass string) int {
		req := httptest.NewRequest(http.MethodGet, "/v2/", nil)
		req.SetBasicAuth(user, pass)
		rec := httptest.NewRecorder()
		r.Handler().ServeHTTP(rec, req)
		return rec.Code
	}

	// The budgets' clock stands still: on a loaded machine the guesses take tens
	// of seconds, and a refill would make the lockout below a matter of timing.
	frozen := time.Now()
	r.login.perUser.now = func() time.Time { return frozen }
	r.login.perClient.now = func() time.Time { return frozen }
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for i := range 200 {
		wg.Go(func() {
			c := login("alice", fmt.Sprintf("guess-%d", i))
			mu.Lock()
			codes[c]++
			mu.Unlock()
		})
	}
	wg.Wait()
	verified := r.login.verifications.Load()
	t.Logf("200 parallel guesses: %v, %d verifications (budget %d)", codes, verified, failedLoginBurst)
	assert.Equal(t, int64(failedLoginBurst), verified, "guesses beyond the budget reached bcrypt")
	assert.Equal(t, int(verified), codes[http.StatusUnauthorized])
	assert.Equal(t, 200, codes[http.StatusUnauthorized]+codes[http.StatusTooManyRequests])

	// alice is locked out from this client; bob is not.
	assert.Equal(t, http.StatusTooManyRequests, login("alice", testPassword))
	assert.Equal(t, http.StatusOK, login("bob", testPassword+"-bob"))

	// 30 parallel first requests with carol's right password (a node pulling
	// 30 layers after a restart) are all served, and share one verification.
	before := r.login.verifications.Load()
	codes = map[int]int{}
	for range 30 {
		wg.Go(func() {
			c := login("carol", testPassword+"-carol")
			mu.Lock()
			codes[c]++
			mu.Unlock()
		})
	}
	wg.Wait()
	assert.Equal(t, map[int]int{http.StatusOK: 30}, codes)
	assert.LessOrEqual(t, r.login.verifications.Load()-before, int64(2), "identical attempts share verifications")
}
