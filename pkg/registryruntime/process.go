package registryruntime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Process runs the registry as `idpbuilder registry serve` detached from the
// terminal, for engines that cannot run our binary in a container (macOS,
// Windows) or when chosen with --registry-mode=process. Nothing restarts it after
// a crash: `registry status` reports it and `registry start` or `create` restart it.
type Process struct {
	Opts  Options
	Ready time.Duration
}

// Mode implements Runtime.
func (p *Process) Mode() Mode { return ModeProcess }

// Describe implements Runtime.
func (p *Process) Describe() string { return "pid file " + p.pidFile() }

func (p *Process) pidFile() string { return filepath.Join(p.Opts.StateDir, "registry.pid") }

// LogFile is where the process writes its logs.
func (p *Process) LogFile() string { return filepath.Join(p.Opts.StateDir, "registry.log") }

// pid returns the running registry's pid, or 0. A pid file whose process is gone,
// or is no longer our registry (pid reuse), counts as not running.
func (p *Process) pid() int {
	b, err := os.ReadFile(p.pidFile())
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err == nil {
		if !bytes.Contains(cmdline, []byte(p.Opts.DataDir)) {
			return 0
		}
		if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && isZombie(stat) {
			return 0
		}
		return pid
	}
	// No /proc (macOS): signal 0 tells whether the pid exists.
	if syscall.Kill(pid, 0) == nil {
		return pid
	}
	return 0
}

func isZombie(stat []byte) bool {
	// /proc/<pid>/stat: "pid (comm) S ..."; the state follows the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

// State implements Runtime.
func (p *Process) State(context.Context) (State, error) {
	if p.pid() != 0 {
		return State{Status: StatusRunning}, nil
	}
	if _, err := os.Stat(p.pidFile()); err == nil {
		return State{Status: "exited"}, nil
	}
	return State{Status: StatusMissing}, nil
}

// Endpoint implements Runtime.
func (p *Process) Endpoint(context.Context) (*Endpoint, error) {
	nodeHost := fmt.Sprintf("%s:%d", p.Opts.NodeHostName, p.Opts.HostPort)
	return &Endpoint{
		Mode:        ModeProcess,
		HostAddr:    fmt.Sprintf("localhost:%d", p.Opts.HostPort),
		NodeURL:     scheme(p.Opts.CertDir) + "://" + nodeHost,
		NodeHost:    nodeHost,
		ClusterIP:   p.Opts.ListenIP,
		ClusterPort: p.Opts.HostPort,
	}, nil
}

// Ensure implements Runtime.
func (p *Process) Ensure(ctx context.Context) (*Endpoint, error) {
	if p.Opts.NodeHostName == "" {
		return nil, errors.New("cluster nodes have no address to reach a registry process on this machine: the kind network does not exist or has no IPv4 gateway (create the cluster first)")
	}
	args, err := p.args()
	if err != nil {
		return nil, err
	}
	if pid := p.pid(); pid != 0 {
		same := false
		if prev, err := os.ReadFile(p.argsFile()); err == nil {
			same = string(prev) == strings.Join(args, "\n")
		}
		if same && waitReady(ctx, p.Opts, 5*time.Second) == nil {
			return p.Endpoint(ctx)
		}
		// Other settings, or alive but not answering: replace it.
		if err := p.Stop(ctx); err != nil {
			return nil, err
		}
	}
	if err := p.start(ctx, args); err != nil {
		return nil, err
	}
	return p.Endpoint(ctx)
}

func (p *Process) start(ctx context.Context, args []string) error {
	// A port held by something else would only show as the child's exit, in
	// the words of `registry serve`: say it plainly first.
	var lc net.ListenConfig
	if ln, err := lc.Listen(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", p.Opts.HostPort)); err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return &PortInUseError{Port: p.Opts.HostPort, Err: err}
		}
	} else {
		_ = ln.Close()
	}
	if err := os.MkdirAll(p.Opts.StateDir, 0o700); err != nil {
		return fmt.Errorf("create state dir: %w", err)
	}
	logf, err := os.OpenFile(p.LogFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open registry log: %w", err)
	}
	defer logf.Close()
	if err := os.WriteFile(p.argsFile(), []byte(strings.Join(args, "\n")), 0o600); err != nil {
		return fmt.Errorf("write registry args: %w", err)
	}
	// Not pkg/exec: that runs commands to completion; this one outlives us.
	cmd := osexec.Command(p.Opts.Binary, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "HOME="+p.Opts.StateDir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // no terminal signals reach it
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start registry process: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	if err := os.WriteFile(p.pidFile(), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o600); err != nil {
		_ = cmd.Process.Kill()
		return fmt.Errorf("write pid file: %w", err)
	}

	readyCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	ready := make(chan error, 1)
	go func() { ready <- waitReady(readyCtx, p.Opts, p.readyTimeout()) }()
	select {
	case err := <-ready:
		if err != nil {
			_ = cmd.Process.Kill()
			return fmt.Errorf("registry process is not answering: %w\n%s", err, tailFile(p.LogFile(), 10))
		}
		return nil
	case err := <-exited:
		_ = os.Remove(p.pidFile())
		return fmt.Errorf("registry process exited (%v):\n%s", err, tailFile(p.LogFile(), 10))
	}
}

// args are the process's arguments; a change of them replaces the process.
func (p *Process) args() ([]string, error) {
	sv := serve{addr: fmt.Sprintf("127.0.0.1:%d", p.Opts.HostPort), dataDir: p.Opts.DataDir, opts: p.Opts, logJSON: true}
	if p.Opts.ListenIP != "" {
		sv.extraAddrs = []string{fmt.Sprintf("%s:%d", p.Opts.ListenIP, p.Opts.HostPort)}
	}
	if p.Opts.CertDir != "" {
		sv.certDir, sv.tlsNames = p.Opts.CertDir, p.Opts.TLSNames
	}
	if p.Opts.authOn() {
		sv.htpasswd = p.Opts.Htpasswd
	}
	args, err := sv.args()
	if err != nil {
		return nil, err
	}
	return append([]string{"registry", "serve"}, args...), nil
}

func (p *Process) argsFile() string { return filepath.Join(p.Opts.StateDir, "registry.args") }

func (p *Process) readyTimeout() time.Duration {
	if p.Ready > 0 {
		return p.Ready
	}
	return 30 * time.Second
}

// Stop implements Runtime: SIGTERM, then wait for the graceful shutdown.
func (p *Process) Stop(ctx context.Context) error {
	pid := p.pid()
	if pid == 0 {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop registry process %d: %w", pid, err)
	}
	deadline := time.Now().Add(40 * time.Second)
	for p.pid() != 0 {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

// Remove implements Runtime.
func (p *Process) Remove(ctx context.Context) error {
	if err := p.Stop(ctx); err != nil {
		return err
	}
	if err := os.Remove(p.pidFile()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
