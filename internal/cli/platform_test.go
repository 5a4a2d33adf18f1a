package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/idpbuilder/idpbuilder/internal/platformtest"
	"github.com/idpbuilder/idpbuilder/pkg/auth"
	"github.com/idpbuilder/idpbuilder/pkg/config"
	"github.com/idpbuilder/idpbuilder/pkg/exec/exectest"
	"github.com/idpbuilder/idpbuilder/pkg/hoststoml"
	"github.com/idpbuilder/idpbuilder/pkg/kind"
)

// cliWorld is a platformtest world whose state dir is the one the commands
// find through XDG_STATE_HOME.
type cliWorld struct {
	*platformtest.World
	env map[string]string
}

func newCLIWorld(t *testing.T, opts platformtest.Options) *cliWorld {
	xdg := t.TempDir()
	opts.StateDir = filepath.Join(xdg, "idpbuilder")
	return &cliWorld{World: platformtest.New(t, "dev", opts), env: map[string]string{"HOME": t.TempDir(), "XDG_STATE_HOME": xdg}}
}

// run runs idpbuilder against the world.
func (w *cliWorld) run(args ...string) (int, string, string) {
	w.T.Helper()
	var out, errOut syncBuffer
	env := func(k string) (string, bool) { v, ok := w.env[k]; return v, ok }
	code := Run(context.Background(), args, IO{In: strings.NewReader(""), Out: &out, Err: &errOut, Env: env, Exec: w.Rec, Binary: w.Binary})
	return code, out.String(), errOut.String()
}

// wired makes the node and the cluster report the wiring create writes.
func (w *cliWorld) wired() {
	reg := kind.Registry{HostAddr: fmt.Sprintf("localhost:%d", w.Port), NodeURL: "http://dev-registry:5000", NodeHost: "dev-registry:5000",
		InClusterName: "registry.local", Help: "https://github.com/idpbuilder/idpbuilder/blob/main/docs/kind.md"}
	w.OnNode("cat").Reply(exectest.OK(hoststoml.File{Server: reg.NodeURL}.String()))
	w.OnNode("kubectl", "--kubeconfig=/etc/kubernetes/admin.conf", "-n", "kube-public", "get", "configmap", "local-registry-hosting").
		Reply(exectest.OK(reg.LocalRegistryHosting()))
}

var stepLine = regexp.MustCompile(`^ [✓✗] .+ \((\d+\.\ds|\d+m\d+s)\)$`)

// TestCreateCommand: create shows one line per step, each ending with ✓ and
// its time (plain lines: stdout is not a terminal), then how to use it.
func TestCreateCommand(t *testing.T) {
	w := newCLIWorld(t, platformtest.Options{})
	code, out, errOut := w.run("create", "--name", "dev", "--registry-port", fmt.Sprint(w.Port))
	require.Equal(t, ExitOK, code, errOut)
	lines := strings.Split(out, "\n")
	var steps []string
	for _, l := range lines {
		if strings.HasPrefix(l, " ✓") || strings.HasPrefix(l, " ✗") {
			assert.Regexp(t, stepLine, l)
			steps = append(steps, l[:strings.LastIndex(l, " (")])
		}
	}
	host := fmt.Sprintf("localhost:%d", w.Port)
	assert.Equal(t, []string{
		` ✓ Using cluster "dev" (its nodes' containerd reads hosts.toml)`,
		" ✓ Starting the registry container on " + host,
		" ✓ Wiring 1 node(s) to " + host + ", registry.local:5000, dev-registry:5000",
		" ✓ Publishing kube-public/local-registry-hosting and registry.local:5000 for pods",
		" ✓ Checking that 1 node(s) pull from the registry",
	}, steps)
	assert.Contains(t, out, "push from this machine:  "+host+"/IMAGE")
	assert.Contains(t, out, "kubectl run myapp --image="+host+"/myapp:v1")
	assert.NotContains(t, out, "\x1b[", "no terminal codes in a pipe")
}

// TestStatusUsesTheCreatedPort: `registry status --name dev` for a cluster
// created with --registry-port finds the registry on that port and reports it
// healthy (exit 0).
func TestStatusUsesTheCreatedPort(t *testing.T) {
	w := newCLIWorld(t, platformtest.Options{})
	code, _, errOut := w.run("create", "--name", "dev", "--registry-port", fmt.Sprint(w.Port))
	require.Equal(t, ExitOK, code, errOut)
	w.wired()
	code, out, errOut := w.run("registry", "status", "--name", "dev", "-o", "json")
	require.Equal(t, ExitOK, code, "%s\n%s", out, errOut)
	var st struct {
		Address, Health, State string
		Wiring                 struct{ LocalRegistryHosting string }
	}
	require.NoError(t, json.Unmarshal([]byte(out), &st))
	assert.Equal(t, fmt.Sprintf("localhost:%d", w.Port), st.Address)
	assert.Equal(t, "ok", st.Health)
	assert.Equal(t, "ok", st.Wiring.LocalRegistryHosting)

	code, out, _ = w.run("registry", "status", "--name", "dev")
	require.Equal(t, ExitOK, code)
	assert.Regexp(t, `Address:\s+localhost:`+fmt.Sprint(w.Port), out)
	assert.Regexp(t, `node dev-control-plane: hosts.toml .*ok`, out)

	// A pull check on its own: its line goes to stderr, stdout stays JSON.
	code, out, errOut = w.run("registry", "status", "--name", "dev", "--pull-check", "-o", "json")
	require.Equal(t, ExitOK, code, errOut)
	require.True(t, json.Valid([]byte(out)))
	assert.Contains(t, errOut, " ✓ Checking that 1 node(s) pull from the registry (")
}

// TestBrokenWiringFailsThePullCheck: a node that cannot pull fails the check
// with ✗, the node's name and what to run.
func TestBrokenWiringFailsThePullCheck(t *testing.T) {
	w := newCLIWorld(t, platformtest.Options{})
	code, _, errOut := w.run("create", "--name", "dev", "--registry-port", fmt.Sprint(w.Port))
	require.Equal(t, ExitOK, code, errOut)
	w.wired()
	w.OnNode("crictl", "pull").Reply(exectest.Fail(1, "failed to resolve reference: connection refused"))
	code, _, errOut = w.run("registry", "status", "--name", "dev", "--pull-check")
	assert.Equal(t, ExitFailure, code)
	assert.Contains(t, errOut, " ✗ Checking that 1 node(s) pull from the registry (")
	assert.Contains(t, errOut, "Error: node dev-control-plane cannot pull localhost:")
	assert.Contains(t, errOut, "connection refused")
	assert.Contains(t, errOut, "`idpbuilder create --name dev` rewrites it")
}

func TestCorruptSettingsFileIsNamed(t *testing.T) {
	w := newCLIWorld(t, platformtest.Options{})
	file := filepath.Join(w.StateDir, "clusters", "dev", "registry.json")
	require.NoError(t, os.MkdirAll(filepath.Dir(file), 0o700))
	require.NoError(t, os.WriteFile(file, []byte("{not json"), 0o600))
	for _, args := range [][]string{{"registry", "status"}, {"registry", "list"}, {"create"}, {"registry", "stop"}} {
		code, out, errOut := w.run(append(args, "--name", "dev")...)
		assert.Equal(t, ExitFailure, code, args)
		assert.Contains(t, errOut, "Error: the cluster's registry settings in "+file+" cannot be read", args)
		assert.Contains(t, errOut, "fix or remove that file", args)
		assert.Empty(t, out, args)
	}
}

func TestDeleteStartStopCommands(t *testing.T) {
	w := newCLIWorld(t, platformtest.Options{})
	port := fmt.Sprint(w.Port)
	code, out, errOut := w.run("registry", "start", "--name", "dev", "--registry-port", port)
	require.Equal(t, ExitOK, code, errOut)
	assert.Contains(t, out, " ✓ Starting the registry container on localhost:"+port)
	assert.Contains(t, out, "Registry container (dev-registry) is running at localhost:"+port)

	code, out, errOut = w.run("registry", "stop", "--name", "dev")
	require.Equal(t, ExitOK, code, errOut)
	assert.Equal(t, "Registry container (dev-registry) stopped; `idpbuilder registry start` starts it again.\n", out)

	w.Rec.On("docker", "ps").Reply(exectest.OK(""))
	code, out, errOut = w.run("delete", "--name", "dev")
	require.Equal(t, ExitOK, code, errOut)
	assert.Contains(t, out, " ✓ Removing the registry container (dev-registry) (")
	assert.Contains(t, out, `Deleted the registry of cluster "dev" (there was no cluster). Its images are kept in `+filepath.Join(w.StateDir, "clusters", "dev", "registry"))

	code, out, errOut = w.run("delete", "--name", "dev", "--purge")
	require.Equal(t, ExitOK, code, errOut)
	assert.Contains(t, out, "and its registry data.")
	assert.NoDirExists(t, filepath.Join(w.StateDir, "clusters", "dev"))

	w.Rec.On("docker", "network", "inspect", "--format", "{{.Name}}").Reply(exectest.Fail(1, "Error: No such network: kind"))
	code, _, errOut = w.run("registry", "start", "--name", "dev")
	assert.Equal(t, ExitFailure, code)
	assert.Contains(t, errOut, "create the cluster first: `idpbuilder create --name dev`")
}

// TestAuthNeedsAUser: a policy that needs a user to push with, and none: a
// usage error saying how to add one.
func TestAuthNeedsAUser(t *testing.T) {
	w := newCLIWorld(t, platformtest.Options{})
	code, out, errOut := w.run("create", "--name", "dev", "--registry-port", fmt.Sprint(w.Port), "--registry-auth", "push",
		"--htpasswd", filepath.Join(t.TempDir(), "htpasswd"))
	assert.Equal(t, ExitUsage, code)
	assert.Contains(t, out, " ✗ The nodes' user (")
	assert.Contains(t, errOut, "`idpbuilder registry user add NAME --password-stdin` (--registry-auth=push needs it")
}

// TestTrustAndLoginFindTheCreatedPort: without HOST:PORT, trust and login
// mean the cluster's registry where it was created.
func TestTrustAndLoginFindTheCreatedPort(t *testing.T) {
	w := newCLIWorld(t, platformtest.Options{})
	dir := filepath.Join(w.StateDir, "clusters", "dev")
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "certs"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "registry.json"), []byte(`{"mode":"container","port":5431,"tls":true,"auth":"none"}`), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "certs", "ca.crt"), []byte("-----BEGIN CERTIFICATE-----\n"), 0o600))
	root := t.TempDir()
	code, out, errOut := w.run("registry", "trust", "--name", "dev", "--root", root)
	require.Equal(t, ExitOK, code, errOut)
	assert.Contains(t, out, filepath.Join(root, "etc", "containerd", "certs.d", "localhost:5431", "hosts.toml"))

	w.env["DOCKER_CONFIG"] = t.TempDir()
	cmdIn := strings.NewReader("secret-password-1\n")
	var stdout, stderr syncBuffer
	env := func(k string) (string, bool) { v, ok := w.env[k]; return v, ok }
	code = Run(context.Background(), []string{"registry", "login", "--name", "dev", "-u", "alice", "--password-stdin"},
		IO{In: cmdIn, Out: &stdout, Err: &stderr, Env: env, Exec: w.Rec})
	assert.Equal(t, ExitFailure, code)
	assert.Contains(t, stderr.String(), "localhost:5431", "login tried the created port")
}

// TestProgress: on a terminal the open step's line shows at once and is
// replaced by its end; other lines go below it; elsewhere one line per step.
func TestProgress(t *testing.T) {
	clock := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tick := func() time.Time { clock = clock.Add(1500 * time.Millisecond); return clock }

	var tty strings.Builder
	p := &progress{w: &tty, tty: true, now: tick}
	p.Start("Creating cluster")
	_, _ = p.Write([]byte(" ✓ Ensuring node image\n"))
	p.End(nil)
	p.Start("Starting the registry container")
	p.Start("Starting the registry process")
	p.End(fmt.Errorf("boom"))
	p.End(nil) // nothing open: nothing written
	assert.Equal(t, " • Creating cluster ...\n ✓ Ensuring node image\n \x1b[32m✓\x1b[0m Creating cluster (1.5s)\n"+
		" • Starting the registry container ...\r\x1b[K • Starting the registry process ...\r\x1b[K \x1b[31m✗\x1b[0m Starting the registry process (1.5s)\n", tty.String())

	var plain strings.Builder
	p = &progress{w: &plain, now: tick}
	p.Start("Wiring")
	p.End(nil)
	p.Start("Pull check")
	p.End(fmt.Errorf("boom"))
	assert.Equal(t, " ✓ Wiring (1.5s)\n ✗ Pull check (1.5s)\n", plain.String())

	assert.Equal(t, "0.0s", elapsed(0))
	assert.Equal(t, "59.9s", elapsed(59900*time.Millisecond))
	assert.Equal(t, "2m3s", elapsed(2*time.Minute+3400*time.Millisecond))
	assert.False(t, isTerminal(&plain))
	f, err := os.CreateTemp(t.TempDir(), "out")
	require.NoError(t, err)
	defer f.Close()
	assert.False(t, isTerminal(f), "a file is not a terminal")
}

func TestGiven(t *testing.T) {
	cfg, err := loadConfigFor(t, map[string]string{"IDPBUILDER_REGISTRY_PORT": "5431"}, "--registry-auth", "all")
	require.NoError(t, err)
	g := given(cfg)
	assert.True(t, g.Chosen.Port)
	assert.True(t, g.Chosen.Auth)
	assert.False(t, g.Chosen.TLS)
	assert.False(t, g.Chosen.Mode)
	assert.Equal(t, 5431, g.Port)
	assert.Equal(t, auth.PolicyAll, g.Auth)
	assert.Equal(t, "container", string(g.Mode), "the default mode")
}

// loadConfigFor loads the configuration create would, from env and flags.
func loadConfigFor(t *testing.T, env map[string]string, args ...string) (config.Config, error) {
	t.Helper()
	env["HOME"] = t.TempDir()
	cmd := newCreateCommand(IO{Env: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	cmd.PersistentFlags().String("config", "", "")
	require.NoError(t, cmd.ParseFlags(args))
	return loadConfig(cmd, IO{Env: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
}
