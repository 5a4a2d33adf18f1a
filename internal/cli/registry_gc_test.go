package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/idpbuilder/idpbuilder/pkg/auth"
	"github.com/idpbuilder/idpbuilder/pkg/certs"
	"github.com/idpbuilder/idpbuilder/pkg/config"
	"github.com/idpbuilder/idpbuilder/pkg/registry"
	"github.com/idpbuilder/idpbuilder/pkg/registryapi"
)

func TestRegistryGCUsageErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--grace", "-1s"}, "--grace -1s is negative"},
		{[]string{"--keep-tags", "-2"}, "--keep-tags -2 is negative"},
		{[]string{"--repo", "ci/*"}, "give --keep-tags too"},
		{[]string{"--keep-tags", "3", "--repo", "ci/["}, "syntax error"},
		{[]string{"--keep-tags", "3", "--repo", "ci/**x"}, "whole path component"},
		{[]string{"-o", "xml"}, "unknown output format"},
		{[]string{"--grace", "soon"}, "invalid argument"},
	} {
		code, out, errOut := run(t, context.Background(), nil, append([]string{"registry", "gc"}, tt.args...)...)
		assert.Equal(t, ExitUsage, code, tt.args)
		assert.Contains(t, errOut.String(), tt.want, tt.args)
		assert.Empty(t, out.String())
	}
}

// uploadBlob uploads a blob no manifest names to base (scheme://host:port)
// with client, as user:pass when given.
func uploadBlob(t *testing.T, client *http.Client, base string, content []byte, user, pass string) digest.Digest {
	t.Helper()
	do := func(method, target string, body []byte) *http.Response {
		req, err := http.NewRequest(method, target, bytes.NewReader(body))
		require.NoError(t, err)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := client.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}
	resp := do(http.MethodPost, base+"/v2/app/blobs/uploads/", nil)
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	loc, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	d := digest.FromBytes(content)
	q := loc.Query()
	q.Set("digest", d.String())
	resp = do(http.MethodPut, base+loc.Path+"?"+q.Encode(), content)
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	return d
}

func TestRegistryGCAgainstARunningRegistry(t *testing.T) {
	addr := startTestRegistry(t, registry.Options{}).Addr()
	d := uploadBlob(t, http.DefaultClient, "http://"+addr, []byte("nobody needs this"), "", "")

	code, out, errOut := run(t, context.Background(), nil, "registry", "gc", "--registry-addr", addr, "--grace", "0s", "--dry-run")
	require.Equal(t, ExitOK, code, errOut.String())
	assert.Contains(t, out.String(), "Would delete 0 tags, 0 manifests, 1 blobs")
	assert.Contains(t, out.String(), d.String())

	code, out, errOut = run(t, context.Background(), nil, "registry", "gc", "--registry-addr", addr, "--grace", "0s", "-o", "json")
	require.Equal(t, ExitOK, code, errOut.String())
	var res registryapi.GCResult
	require.NoError(t, json.Unmarshal([]byte(out.String()), &res))
	require.Len(t, res.Blobs, 1)
	assert.Equal(t, d.String(), res.Blobs[0].Digest)
	assert.False(t, res.DryRun)
	assert.Positive(t, res.BytesFreed)

	// Without --grace the registry's own applies: the hour.
	uploadBlob(t, http.DefaultClient, "http://"+addr, []byte("too young to go"), "", "")
	code, out, errOut = run(t, context.Background(), nil, "registry", "gc", "--registry-addr", addr, "-o", "yaml")
	require.Equal(t, ExitOK, code, errOut.String())
	assert.Contains(t, out.String(), "grace: 1h0m0s")
	assert.Contains(t, out.String(), "blobs: []")

	// Nothing listens there.
	code, _, errOut = run(t, context.Background(), nil, "registry", "gc", "--registry-addr", "127.0.0.1:1")
	assert.Equal(t, ExitFailure, code)
	assert.Contains(t, errOut.String(), "is the registry running?")
}

// TestRegistryGCNeedsALogin: a registry with TLS from the local CA and
// --auth push, as the cluster's can be; the CLI trusts the CA and logs in
// with what `registry login` stored.
func TestRegistryGCNeedsALogin(t *testing.T) {
	home := t.TempDir()
	env := map[string]string{"HOME": home}
	getenv := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	m := &certs.Manager{Dir: config.Default(getenv).Registry.CertDir}
	_, err := m.Ensure()
	require.NoError(t, err)
	h := auth.Htpasswd{Path: filepath.Join(t.TempDir(), "htpasswd")}
	require.NoError(t, h.Set("alice", "correct horse battery"))
	addr := startTestRegistry(t, registry.Options{GetCertificate: m.GetCertificate,
		Auth: &registry.AuthOptions{Policy: auth.PolicyPush, Verifier: auth.NewVerifier(h)}}).Addr()
	pem, err := m.CAPEM()
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pem))
	tlsClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	uploadBlob(t, tlsClient, "https://"+addr, []byte("pushed by alice"), "alice", "correct horse battery")

	code, out, errOut := run(t, context.Background(), env, "registry", "gc", "--registry-addr", addr, "--grace", "0s")
	assert.Equal(t, ExitFailure, code)
	assert.Contains(t, errOut.String(), "idpbuilder registry login "+addr)
	assert.Empty(t, out.String())

	store := credStore(getenv)
	require.NoError(t, store.Store(auth.Credentials{ServerURL: addr, Username: "alice", Secret: "wrong password"}))
	code, _, errOut = run(t, context.Background(), env, "registry", "gc", "--registry-addr", addr, "--grace", "0s")
	assert.Equal(t, ExitFailure, code)
	assert.Contains(t, errOut.String(), "refused the stored login")

	require.NoError(t, store.Store(auth.Credentials{ServerURL: addr, Username: "alice", Secret: "correct horse battery"}))
	code, out, errOut = run(t, context.Background(), env, "registry", "gc", "--registry-addr", addr, "--grace", "0s")
	require.Equal(t, ExitOK, code, errOut.String())
	assert.Contains(t, out.String(), "Deleted 0 tags, 0 manifests, 1 blobs")
}

func TestServeGCSettings(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--gc-interval", "30s"}, "at least 1m"},
		{[]string{"--gc-interval", "daily"}, "not a duration"},
		{[]string{"--gc-grace", "0s"}, "must be positive"},
	} {
		code, _, errOut := run(t, context.Background(), nil, append([]string{"registry", "serve", "--addr", "127.0.0.1:0"}, tt.args...)...)
		assert.Equal(t, ExitUsage, code, tt.args)
		assert.Contains(t, errOut.String(), tt.want, tt.args)
	}

	// The schedule starts with the registry, and stops before it.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	env := map[string]string{"HOME": t.TempDir(), "IDPBUILDER_GC_UNTAGGED": "true", "IDPBUILDER_GC_GRACE": "2h"}
	out, errOut := &syncBuffer{}, &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"registry", "serve", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--gc-interval", "1h", "--log-format", "json"},
			IO{In: strings.NewReader(""), Out: out, Err: errOut, Env: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	}()
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "Registry listening on") }, 10*time.Second, 10*time.Millisecond, "stderr: %s", errOut)
	assert.Regexp(t, `"msg":"garbage collection scheduled","interval":3600000000000,"untagged":true`, errOut.String())
	addr := regexp.MustCompile(`http://(\S+) `).FindStringSubmatch(out.String())[1]
	code, gcOut, gcErr := run(t, context.Background(), nil, "registry", "gc", "--registry-addr", addr, "--dry-run", "-o", "json")
	require.Equal(t, ExitOK, code, gcErr.String())
	assert.Contains(t, gcOut.String(), `"grace": "2h0m0s"`, "the registry's --gc-grace applies")
	cancel()
	assert.Equal(t, ExitOK, <-done, errOut.String())
}
