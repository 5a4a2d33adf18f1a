//go:build e2e

// Package e2e holds end-to-end tests that run the real idpbuilder binary against
// real clients: Docker, containerd's ctr, skopeo, go-containerregistry and the OCI
// conformance runner. Run them with `make e2e` (build tag e2e). They need a running
// Docker engine, containerd and skopeo: hack/test-all.sh installs and starts them.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the idpbuilder binary under test, built once by TestMain.
var binary string

// moduleRoot is the repository root (for `go tool` and `go build`).
var moduleRoot string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	moduleRoot = filepath.Clean(filepath.Join(wd, "..", ".."))
	dir, err := os.MkdirTemp("", "idpbuilder-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "idpbuilder")
	build := exec.Command("go", "build", "-o", binary, "./cmd/idpbuilder")
	build.Dir = moduleRoot
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building idpbuilder: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// server is a running `idpbuilder registry serve` process.
type server struct {
	Addr    string // 127.0.0.1:port
	DataDir string
	cmd     *exec.Cmd
	stdout  *lockedBuffer
	stderr  *lockedBuffer
	exited  chan struct{}
	exitErr error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var listeningRE = regexp.MustCompile(`Registry listening on https?://(\S+) `)

// startServer runs the registry on a free loopback port with dataDir (a new temp
// dir when empty) and waits until it is ready. It is stopped when the test ends.
func startServer(t testing.TB, dataDir string, extraArgs ...string) *server {
	t.Helper()
	return startServerHome(t, t.TempDir(), dataDir, extraArgs...)
}

// startServerHome is startServer with HOME (the state dir: users, certificates) given.
func startServerHome(t testing.TB, home, dataDir string, extraArgs ...string) *server {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	args := append([]string{"registry", "serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir}, extraArgs...)
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "HOME="+home)
	s := &server{DataDir: dataDir, cmd: cmd, stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, exited: make(chan struct{})}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", binary, err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			s.stdout.Write([]byte(line + "\n"))
			if m := listeningRE.FindStringSubmatch(line); m != nil {
				ready <- m[1]
			}
		}
	}()
	go func() {
		s.exitErr = cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() { s.Stop(t) })

	select {
	case s.Addr = <-ready:
	case <-s.exited:
		t.Fatalf("registry exited before it was ready: %v\nstderr:\n%s", s.exitErr, s.stderr)
	case <-time.After(30 * time.Second):
		t.Fatalf("registry not ready after 30s\nstderr:\n%s", s.stderr)
	}
	resp, err := insecureHTTP.Get(s.scheme() + "://" + s.Addr + "/readyz")
	if err != nil {
		t.Fatalf("readyz: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("readyz: %s", resp.Status)
	}
	return s
}

// scheme is https when the server was started with --tls.
func (s *server) scheme() string {
	if slices.Contains(s.cmd.Args, "--tls") {
		return "https"
	}
	return "http"
}

// insecureHTTP is for readiness probes only: tests that check TLS use the CA.
var insecureHTTP = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}

// Stop sends SIGTERM and waits for a clean exit; it fails the test otherwise.
func (s *server) Stop(t testing.TB) {
	t.Helper()
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		if s.exitErr != nil {
			t.Errorf("registry did not exit cleanly on SIGTERM: %v\nstderr:\n%s", s.exitErr, s.stderr)
		}
	case <-time.After(60 * time.Second):
		_ = s.cmd.Process.Kill()
		t.Errorf("registry did not stop within 60s of SIGTERM")
	}
}

// Port is the registry's port.
func (s *server) Port() string {
	return s.Addr[strings.LastIndex(s.Addr, ":")+1:]
}

// Localhost is the registry as Docker users name it: localhost:port.
func (s *server) Localhost() string { return "localhost:" + s.Port() }

// manifestDigest asks the registry (HEAD) for the digest of repo:ref.
func (s *server) manifestDigest(t testing.TB, repo, ref string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodHead, "http://"+s.Addr+"/v2/"+repo+"/manifests/"+ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", strings.Join([]string{
		"application/vnd.oci.image.index.v1+json",
		"application/vnd.oci.image.manifest.v1+json",
		"application/vnd.docker.distribution.manifest.list.v2+json",
		"application/vnd.docker.distribution.manifest.v2+json",
	}, ", "))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HEAD %s:%s: %s", repo, ref, resp.Status)
	}
	return resp.Header.Get("Docker-Content-Digest")
}

// runCmd runs a command with a timeout and returns its stdout; it fails the test
// with stdout and stderr on error.
func runCmd(t testing.TB, timeout time.Duration, name string, args ...string) string {
	t.Helper()
	out, err := tryCmd(timeout, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return out
}

func tryCmd(timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%w\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// runBinary runs idpbuilder with env and returns stdout, stderr and the exit code.
func runBinary(t testing.TB, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = env
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run idpbuilder: %v", err)
	}
	return stdout.String(), stderr.String(), code
}

// dockerPush tags local as remote, pushes it with the docker CLI and returns the
// pushed digest; the remote tag is removed when the test ends.
func dockerPush(t testing.TB, local, remote string) string {
	t.Helper()
	runCmd(t, time.Minute, "docker", "tag", local, remote)
	t.Cleanup(func() { _, _ = tryCmd(time.Minute, "docker", "rmi", "-f", remote) })
	out := runCmd(t, 5*time.Minute, "docker", "push", remote)
	m := pushDigestRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no digest in docker push output:\n%s", out)
	}
	return m[1]
}

// requireTool fails (never skips) when a tool the suite depends on is missing:
// hack/test-all.sh installs them all.
func requireTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s not found in PATH: run hack/test-all.sh (it installs the e2e dependencies)", name)
	}
}

// drain reads and discards r, returning the byte count.
func drain(r io.Reader) (int64, error) { return io.Copy(io.Discard, r) }
