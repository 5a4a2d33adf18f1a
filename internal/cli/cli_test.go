package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/idpbuilder/idpbuilder/pkg/certs"
)

// syncBuffer is a bytes.Buffer safe for a command writing while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func run(t *testing.T, ctx context.Context, env map[string]string, args ...string) (code int, stdout, stderr *syncBuffer) {
	t.Helper()
	stdout, stderr = &syncBuffer{}, &syncBuffer{}
	if env == nil {
		env = map[string]string{}
	}
	if _, ok := env["HOME"]; !ok {
		env["HOME"] = t.TempDir() // never read the developer's real config
	}
	code = Run(ctx, args, IO{In: strings.NewReader(""), Out: stdout, Err: stderr, Env: func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}})
	return code, stdout, stderr
}

func TestVersion(t *testing.T) {
	code, out, _ := run(t, context.Background(), nil, "version")
	require.Equal(t, ExitOK, code)
	assert.Regexp(t, `(?m)^idpbuilder \S+\ncommit: \S+\ngo: go1\.`, out.String())

	code, out, _ = run(t, context.Background(), nil, "version", "-o", "json")
	require.Equal(t, ExitOK, code)
	assert.Contains(t, out.String(), `"goVersion": "go1.`)
}

func TestUsageErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	tmp := t.TempDir()
	file := filepath.Join(tmp, "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	badCfg := filepath.Join(tmp, "bad.yaml")
	require.NoError(t, os.WriteFile(badCfg, []byte("registry:\n  listen: 1\n"), 0o600))

	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantCode int
		wantErr  string
		dataDir  string // must not exist afterwards
	}{
		{name: "unknown flag", args: []string{"registry", "serve", "--port", "1"}, wantCode: ExitUsage, wantErr: "unknown flag: --port"},
		{name: "unexpected argument", args: []string{"registry", "serve", "extra"}, wantCode: ExitUsage, wantErr: `unknown command "extra"`},
		{name: "unknown config key", args: []string{"registry", "serve", "--config", badCfg}, wantCode: ExitUsage, wantErr: "registry.listen: unknown key"},
		{name: "missing config file", args: []string{"registry", "serve", "--config", filepath.Join(tmp, "nope.yaml")}, wantCode: ExitUsage, wantErr: "nope.yaml"},
		{name: "config file from env", args: []string{"registry", "serve"}, env: map[string]string{"IDPBUILDER_CONFIG": badCfg}, wantCode: ExitUsage, wantErr: "registry.listen"},
		{name: "bad duration", args: []string{"registry", "serve", "--shutdown-timeout", "forever"}, wantCode: ExitUsage, wantErr: `flag --shutdown-timeout: registry.shutdownTimeout: "forever" is not a duration`},
		{name: "bad env", args: []string{"registry", "serve"}, env: map[string]string{"IDPBUILDER_ADDR": "nope"}, wantCode: ExitUsage, wantErr: "env IDPBUILDER_ADDR"},
		{
			name: "port in use", args: []string{"registry", "serve", "--addr", busy.Addr().String(), "--data-dir", filepath.Join(tmp, "d1")},
			wantCode: ExitUsage, wantErr: "already in use\nstop the process using it, or choose another address with --addr", dataDir: filepath.Join(tmp, "d1"),
		},
		{
			name: "unusable data dir", args: []string{"registry", "serve", "--addr", "127.0.0.1:0", "--data-dir", filepath.Join(file, "d2")},
			wantCode: ExitUsage, wantErr: "choose another directory with --data-dir", dataDir: filepath.Join(file, "d2"),
		},
		{name: "bad version output", args: []string{"version", "-o", "xml"}, wantCode: ExitUsage, wantErr: "unknown output format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(t, context.Background(), tt.env, tt.args...)
			assert.Equal(t, tt.wantCode, code, "stderr: %s", errOut)
			assert.Contains(t, errOut.String(), tt.wantErr)
			assert.Empty(t, out.String(), "errors go to stderr")
			if tt.dataDir != "" {
				_, err := os.Stat(tt.dataDir)
				assert.Error(t, err, "nothing may be written")
			}
		})
	}
}

func TestServeRunsUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dataDir := filepath.Join(t.TempDir(), "data")
	env := map[string]string{"HOME": t.TempDir(), "IDPBUILDER_ADDR": "127.0.0.1:0", "IDPBUILDER_DATA_DIR": dataDir}
	out, errOut := &syncBuffer{}, &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"registry", "serve", "--log-format", "json"}, IO{
			In: strings.NewReader(""), Out: out, Err: errOut,
			Env: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		})
	}()

	// The command prints its address on stdout once ready.
	re := regexp.MustCompile(`Registry listening on http://(127\.0\.0\.1:\d+) \(data in ` + regexp.QuoteMeta(dataDir) + `, auth: none\)`)
	var addr string
	require.Eventually(t, func() bool {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			addr = m[1]
			return true
		}
		return false
	}, 10*time.Second, 10*time.Millisecond, "stdout: %q stderr: %q", out, errOut)

	resp, err := http.Get("http://" + addr + "/v2/")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	cancel() // what SIGINT/SIGTERM do through signal.NotifyContext
	select {
	case code := <-done:
		assert.Equal(t, ExitOK, code, "stderr: %s", errOut)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop after cancel")
	}
	// stdout holds exactly the ready lines; logs (JSON here) are on stderr.
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 3, out.String())
	assert.Contains(t, lines[1], "docker push localhost:")
	assert.Contains(t, lines[2], "Web UI: http://localhost:")
	for _, l := range strings.Split(strings.TrimSpace(errOut.String()), "\n") {
		assert.True(t, strings.HasPrefix(l, "{"), "stderr line is not JSON: %q", l)
	}
	assert.Contains(t, errOut.String(), `"msg":"registry stopped"`)
}

func TestPushHost(t *testing.T) {
	tests := map[string]string{
		"127.0.0.1:5001":    "localhost:5001",
		"0.0.0.0:5001":      "localhost:5001",
		"[::]:5001":         "localhost:5001",
		"[::1]:5001":        "localhost:5001",
		"192.168.1.10:5001": "192.168.1.10:5001",
		"registry:5000":     "registry:5000",
	}
	for in, want := range tests {
		assert.Equal(t, want, pushHost(in), in)
	}
}

func TestCreateRejectsLegacyMirrors(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "kind.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(`kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
containerdConfigPatches:
- |-
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."localhost:5001"]
    endpoint = ["http://kind-registry:5000"]
`), 0o600))
	code, out, errOut := run(t, context.Background(), nil, "create", "--kind-config", cfg)
	assert.Equal(t, ExitUsage, code)
	assert.Contains(t, errOut.String(), "legacy")
	assert.Empty(t, out.String())
}

func TestOutputFormatsAreChecked(t *testing.T) {
	for _, args := range [][]string{{"registry", "status", "-o", "xml"}, {"registry", "list", "-o", "csv"}} {
		code, _, errOut := run(t, context.Background(), nil, args...)
		assert.Equal(t, ExitUsage, code, args)
		assert.Contains(t, errOut.String(), "unknown output format")
	}
}

func TestHumanBytesAndProgressBar(t *testing.T) {
	tests := map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 << 20: "5.0 MiB", 3 << 30: "3.0 GiB"}
	for in, want := range tests {
		assert.Equal(t, want, humanBytes(in))
	}
	assert.Equal(t, "[=====     ]  50% 512 B/1.0 KiB", progressBar(512, 1024, 10))
	assert.Equal(t, "[==========] 100% 1.0 KiB/1.0 KiB", progressBar(1024, 1024, 10))
	assert.Equal(t, "[          ]", progressBar(0, 0, 10))
}

// TestDockerMissingIsExplained runs commands that need Docker with no docker on PATH.
func TestDockerMissingIsExplained(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	for _, args := range [][]string{{"create"}, {"delete"}, {"registry", "status"}} {
		code, _, errOut := run(t, context.Background(), nil, args...)
		assert.Equal(t, ExitFailure, code, args)
		assert.Contains(t, errOut.String(), "the docker CLI is not installed", args)
	}
}

// TestServeBringYourOwnCertificate: --tls-cert/--tls-key are served as given.
func TestServeBringYourOwnCertificate(t *testing.T) {
	own := &certs.Manager{Dir: t.TempDir(), Names: []string{"my.registry.test"}}
	_, err := own.Ensure()
	require.NoError(t, err)
	pem, err := own.CAPEM()
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pem))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, errOut := &syncBuffer{}, &syncBuffer{}
	env := map[string]string{"HOME": t.TempDir()}
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"registry", "serve", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--tls",
			"--tls-cert", filepath.Join(own.Dir, certs.CertFile), "--tls-key", filepath.Join(own.Dir, certs.KeyFile)},
			IO{In: strings.NewReader(""), Out: out, Err: errOut, Env: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	}()
	re := regexp.MustCompile(`listening on https://(\S+) `)
	var addr string
	require.Eventually(t, func() bool {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			addr = m[1]
			return true
		}
		return false
	}, 10*time.Second, 10*time.Millisecond, "stderr: %s", errOut)
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "my.registry.test"})
	require.NoError(t, err)
	assert.Equal(t, own.Leaf().SerialNumber, conn.ConnectionState().PeerCertificates[0].SerialNumber)
	conn.Close()
	cancel()
	assert.Equal(t, ExitOK, <-done)

	// Half a pair is a usage error.
	code, _, e := run(t, context.Background(), nil, "registry", "serve", "--tls", "--tls-cert", filepath.Join(own.Dir, certs.CertFile))
	assert.Equal(t, ExitUsage, code)
	assert.Contains(t, e.String(), "--tls-key")
}

func TestUserCommands(t *testing.T) {
	home := t.TempDir()
	env := map[string]string{"HOME": home}
	runIn := func(stdin string, args ...string) (int, string, string) {
		out, errOut := &syncBuffer{}, &syncBuffer{}
		code := Run(context.Background(), args, IO{In: strings.NewReader(stdin), Out: out, Err: errOut,
			Env: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
		return code, out.String(), errOut.String()
	}
	code, _, errOut := runIn("", "registry", "user", "add", "alice")
	assert.Equal(t, ExitUsage, code)
	assert.Contains(t, errOut, "--password-stdin")
	code, _, errOut = runIn("short\n", "registry", "user", "add", "alice", "--password-stdin")
	assert.Equal(t, ExitUsage, code)
	assert.Contains(t, errOut, "shorter than 8")
	code, _, _ = runIn("long enough password\n", "registry", "user", "add", "alice", "--password-stdin")
	require.Equal(t, ExitOK, code)
	code, out, _ := runIn("", "registry", "user", "list")
	require.Equal(t, ExitOK, code)
	assert.Equal(t, "alice\n", out)
	code, _, errOut = runIn("", "registry", "user", "remove", "bob")
	assert.Equal(t, ExitUsage, code)
	assert.Contains(t, errOut, "no such user")
	code, _, _ = runIn("", "registry", "user", "remove", "alice")
	assert.Equal(t, ExitOK, code)

	// --auth=push with no user is refused before anything listens.
	code, _, errOut = runIn("", "registry", "serve", "--addr", "127.0.0.1:0", "--auth", "push", "--data-dir", filepath.Join(home, "d"))
	assert.Equal(t, ExitUsage, code)
	assert.Contains(t, errOut, "needs at least one user")
}
