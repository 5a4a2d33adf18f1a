package registryruntime

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	idpOnce sync.Once
	idpPath string
	idpErr  error
)

// idpbuilderBinary is the real idpbuilder, built once per test run: the process
// runtime is tested by running the registry it runs, not a stand-in.
func idpbuilderBinary(t *testing.T) string {
	t.Helper()
	idpOnce.Do(func() {
		dir, err := os.MkdirTemp("", "idpbuilder-runtime-test-")
		if err != nil {
			idpErr = err
			return
		}
		idpPath = filepath.Join(dir, "idpbuilder")
		cmd := exec.Command("go", "build", "-o", idpPath, "github.com/idpbuilder/idpbuilder/cmd/idpbuilder")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			idpErr = fmt.Errorf("build idpbuilder: %w\n%s", err, out)
		}
	})
	require.NoError(t, idpErr)
	return idpPath
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func newProcess(t *testing.T) *Process {
	t.Helper()
	state := t.TempDir()
	p := &Process{Opts: Options{
		HostPort: freePort(t), NodeHostName: "host.docker.internal",
		DataDir: filepath.Join(state, "registry"), StateDir: state, Binary: idpbuilderBinary(t),
	}, Ready: 30 * time.Second}
	t.Cleanup(func() { _ = p.Remove(context.Background()) })
	return p
}

// TestProcessLifecycle runs the real registry as a detached process: started,
// reused while its settings hold, replaced when they change, stopped, removed.
func TestProcessLifecycle(t *testing.T) {
	ctx := context.Background()
	p := newProcess(t)
	assert.Equal(t, ModeProcess, p.Mode())
	assert.Equal(t, "pid file "+filepath.Join(p.Opts.StateDir, "registry.pid"), p.Describe())
	st, err := p.State(ctx)
	require.NoError(t, err)
	assert.Equal(t, "missing", st.Status)

	ep, err := p.Ensure(ctx)
	require.NoError(t, err)
	port := p.Opts.HostPort
	assert.Equal(t, &Endpoint{
		Mode: ModeProcess, HostAddr: fmt.Sprintf("localhost:%d", port), NodeURL: fmt.Sprintf("http://host.docker.internal:%d", port),
		NodeHost: fmt.Sprintf("host.docker.internal:%d", port), ClusterPort: port,
	}, ep)
	first := p.pid()
	require.NotZero(t, first)
	st, err = p.State(ctx)
	require.NoError(t, err)
	assert.Equal(t, "running", st.Status)
	args, err := os.ReadFile(filepath.Join(p.Opts.StateDir, "registry.args"))
	require.NoError(t, err)
	want, err := p.args()
	require.NoError(t, err)
	assert.Equal(t, strings.Join(want, "\n"), string(args))
	assert.FileExists(t, p.LogFile())

	_, err = p.Ensure(ctx)
	require.NoError(t, err)
	assert.Equal(t, first, p.pid(), "same settings, answering: reused")

	// Nodes now reach it on a second address: another process.
	p.Opts.ListenIP, p.Opts.NodeHostName = "127.0.0.2", "127.0.0.2"
	ep, err = p.Ensure(ctx)
	require.NoError(t, err)
	assert.NotEqual(t, first, p.pid())
	assert.Equal(t, "127.0.0.2", ep.ClusterIP)
	args2, err := p.args()
	require.NoError(t, err)
	assert.Contains(t, args2, fmt.Sprintf("127.0.0.2:%d", port))
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.2:%d", port))
	require.NoError(t, err, "it listens on the nodes' address too")
	conn.Close()

	require.NoError(t, p.Stop(ctx))
	st, err = p.State(ctx)
	require.NoError(t, err)
	assert.Equal(t, "exited", st.Status, "the pid file stays for status")
	require.NoError(t, p.Stop(ctx), "stopping a stopped registry is done")
	require.NoError(t, p.Remove(ctx))
	st, err = p.State(ctx)
	require.NoError(t, err)
	assert.Equal(t, "missing", st.Status)
}

func TestProcessFailures(t *testing.T) {
	ctx := context.Background()

	t.Run("port taken", func(t *testing.T) {
		p := newProcess(t)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p.Opts.HostPort))
		require.NoError(t, err)
		defer ln.Close()
		_, err = p.Ensure(ctx)
		var pe *PortInUseError
		require.ErrorAs(t, err, &pe)
		assert.Equal(t, p.Opts.HostPort, pe.Port)
		assert.True(t, strings.HasPrefix(err.Error(), fmt.Sprintf("port %d on 127.0.0.1 is already in use: ", p.Opts.HostPort)), err.Error())
	})

	t.Run("registry exits at once", func(t *testing.T) {
		p := newProcess(t)
		require.NoError(t, os.WriteFile(p.Opts.DataDir, []byte("a file, not a directory"), 0o600))
		_, err := p.Ensure(ctx)
		assert.ErrorContains(t, err, "registry process exited")
		assert.ErrorContains(t, err, "data dir", "the log's last lines say why")
		assert.NoFileExists(t, filepath.Join(p.Opts.StateDir, "registry.pid"))
	})

	t.Run("nodes cannot reach this machine", func(t *testing.T) {
		p := newProcess(t)
		p.Opts.NodeHostName = ""
		_, err := p.Ensure(ctx)
		assert.ErrorContains(t, err, "the kind network does not exist")
	})

	t.Run("no binary", func(t *testing.T) {
		p := newProcess(t)
		p.Opts.Binary = filepath.Join(t.TempDir(), "missing")
		_, err := p.Ensure(ctx)
		assert.ErrorContains(t, err, "start registry process")
	})

	t.Run("state dir unusable", func(t *testing.T) {
		p := newProcess(t)
		blocker := filepath.Join(t.TempDir(), "file")
		require.NoError(t, os.WriteFile(blocker, nil, 0o600))
		p.Opts.StateDir = filepath.Join(blocker, "state")
		_, err := p.Ensure(ctx)
		assert.ErrorContains(t, err, "create state dir")
	})
}

// TestProcessPid: a pid file whose process is gone, or is not our registry
// (the pid was reused), is not a running registry.
func TestProcessPid(t *testing.T) {
	p := &Process{Opts: Options{StateDir: t.TempDir(), DataDir: "/nowhere/registry"}}
	write := func(s string) {
		require.NoError(t, os.WriteFile(p.pidFile(), []byte(s), 0o600))
	}
	assert.Zero(t, p.pid(), "no pid file")
	write("garbage\n")
	assert.Zero(t, p.pid())
	write(strconv.Itoa(os.Getpid()) + "\n")
	assert.Zero(t, p.pid(), "a live process that is not the registry of this data dir")

	// A child that exited but was not reaped yet is a zombie: not running.
	cmd := exec.Command("sh", "-c", "exit 0", p.Opts.DataDir)
	require.NoError(t, cmd.Start())
	write(strconv.Itoa(cmd.Process.Pid))
	deadline := time.Now().Add(30 * time.Second)
	for p.pid() != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	assert.Zero(t, p.pid())
	require.NoError(t, cmd.Wait())
}

func TestIsZombie(t *testing.T) {
	assert.True(t, isZombie([]byte("123 (idp (x) builder) Z 1 2 3")))
	assert.False(t, isZombie([]byte("123 (idpbuilder) S 1 2 3")))
	assert.False(t, isZombie([]byte("garbage")))
}

func TestTailFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	assert.Empty(t, tailFile(path, 3))
	require.NoError(t, os.WriteFile(path, []byte("1\n2\n3\n4\n5\n"), 0o600))
	assert.Equal(t, "3\n4\n5", tailFile(path, 3))
	assert.Equal(t, "1\n2\n3\n4\n5", tailFile(path, 10))
}

// TestProcessStopCancelled: while a registry takes its time to stop, a
// cancelled caller is answered at once.
func TestProcessStopCancelled(t *testing.T) {
	p := &Process{Opts: Options{StateDir: t.TempDir(), DataDir: "/idpbuilder-test-data-dir"}}
	cmd := exec.Command("sh", "-c", `trap "" TERM; echo ignoring; while :; do sleep 1; done`, p.Opts.DataDir)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	// SIGTERM before the trap is set would end it: wait until it ignores the signal.
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "ignoring\n", line)
	require.NoError(t, os.WriteFile(p.pidFile(), []byte(strconv.Itoa(cmd.Process.Pid)), 0o600))
	require.NotZero(t, p.pid())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = p.Stop(ctx)
	assert.True(t, errors.Is(err, context.Canceled), err)
}
