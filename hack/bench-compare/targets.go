package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// target is one registry under test: how to start it on a data dir.
type target struct {
	name string
	// command returns the argv and environment serving dataDir on addr.
	command func(addr, dataDir string) (argv, env []string, err error)
	work    string
	main    *proc // serves the main data dir for the whole run
	client  *http.Client
}

// proc is one running server process.
type proc struct {
	cmd     *exec.Cmd
	base    string // http://127.0.0.1:port
	startup time.Duration
	logPath string
}

func newOurs(bin, work string) *target {
	return &target{name: "idpbuilder", work: filepath.Join(work, "idpbuilder"), client: newClient(),
		command: func(addr, dataDir string) ([]string, []string, error) {
			home := filepath.Join(filepath.Dir(dataDir), "home")
			argv := []string{bin, "registry", "serve", "--addr", addr, "--data-dir", dataDir,
				"--rate-limit", "0", "--access-log", "off", "--auth", "none", "--log-level", "warn",
				"--htpasswd", filepath.Join(home, "htpasswd"), "--cert-dir", filepath.Join(home, "certs")}
			// A config file or environment of the user must not change what is measured.
			env := []string{"HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, "config"), "XDG_STATE_HOME=" + filepath.Join(home, "state"), "PATH=" + os.Getenv("PATH")}
			return argv, env, os.MkdirAll(home, 0o700)
		}}
}

// newDistribution runs distribution's registry as its documentation shows,
// with the same storage choices as our engine (filesystem, deletes enabled,
// in-memory blob descriptor cache, catalog pages of 1000) and no access log.
func newDistribution(bin, work string) *target {
	return &target{name: "distribution", work: filepath.Join(work, "distribution"), client: newClient(),
		command: func(addr, dataDir string) ([]string, []string, error) {
			cfg := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
  secret: bench-compare-secret
catalog:
  maxentries: 1000
`, strconv.Quote(dataDir), addr)
			path := dataDir + ".yml"
			if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
				return nil, nil, err
			}
			return []string{bin, "serve", path}, []string{"OTEL_TRACES_EXPORTER=none", "PATH=" + os.Getenv("PATH")}, nil
		}}
}

func newClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 512, DisableCompression: true, IdleConnTimeout: time.Minute},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// start runs the target on dataDir and waits for its first 200 on /v2/; the
// time from just before exec to that answer is proc.startup.
func (t *target) start(ctx context.Context, dataDir string) (*proc, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	argv, env, err := t.command(addr, dataDir)
	if err != nil {
		return nil, err
	}
	logPath := dataDir + ".log"
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	p := &proc{cmd: cmd, base: "http://" + addr, logPath: logPath}
	// The probe client is new: no idle connection from an earlier process.
	probe := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	deadline := began.Add(2 * time.Minute)
	for {
		resp, err := probe.Get(p.base + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				p.startup = time.Since(began)
				return p, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			p.stop()
			log, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("%s did not answer /v2/ with 200 (last error %v): %s", t.name, err, log)
		}
		time.Sleep(500 * time.Microsecond)
	}
}

// stop ends the process with SIGTERM (SIGKILL after 30 s) and waits for it.
func (p *proc) stop() {
	if p == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

func (t *target) stop() {
	t.main.stop()
	t.main = nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return 0, errors.New("no TCP address")
	}
	return addr.Port, nil
}
