package platform

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/idpbuilder/idpbuilder/internal/platformtest"
	"github.com/idpbuilder/idpbuilder/pkg/auth"
	"github.com/idpbuilder/idpbuilder/pkg/docker"
	"github.com/idpbuilder/idpbuilder/pkg/exec/exectest"
	"github.com/idpbuilder/idpbuilder/pkg/hoststoml"
	"github.com/idpbuilder/idpbuilder/pkg/kind"
	"github.com/idpbuilder/idpbuilder/pkg/platform/internal/steps"
	"github.com/idpbuilder/idpbuilder/pkg/registryapi"
	"github.com/idpbuilder/idpbuilder/pkg/registryruntime"
)

// recorded is a Status that keeps the steps' titles and outcomes.
type recorded struct{ lines []string }

func (r *recorded) Start(title string) { r.lines = append(r.lines, title) }
func (r *recorded) End(err error) {
	mark := "ok"
	if err != nil {
		mark = "failed"
	}
	r.lines[len(r.lines)-1] += ": " + mark
}

func newPlatform(w *platformtest.World) *Platform {
	return &Platform{StateDir: w.StateDir, Binary: w.Binary, Docker: &docker.Client{Exec: w.Rec}, GOOS: "linux",
		Credentials: auth.CredStore{Path: filepath.Join(w.StateDir, "auth", "credentials.json")}}
}

// defaults are what a command is given when the user chooses nothing.
func defaults() Given {
	return Given{Settings: Settings{Mode: registryruntime.ModeContainer, Port: 5001, Auth: auth.PolicyNone, InClusterName: "registry.local", Htpasswd: "/nowhere/htpasswd"}}
}

// withPort is defaults with the port chosen.
func withPort(port int) Given {
	g := defaults()
	g.Port, g.Chosen.Port = port, true
	return g
}

// wired makes the node and the cluster report the wiring create writes.
func wired(w *platformtest.World) {
	reg := kind.Registry{HostAddr: fmt.Sprintf("localhost:%d", w.Port), NodeURL: "http://dev-registry:5000", NodeHost: "dev-registry:5000",
		InClusterName: "registry.local", Help: steps.HelpURL}
	w.OnNode("cat").Reply(exectest.OK(hoststoml.File{Server: reg.NodeURL}.String()))
	w.OnNode("kubectl", "--kubeconfig=/etc/kubernetes/admin.conf", "-n", "kube-public", "get", "configmap", "local-registry-hosting").
		Reply(exectest.OK(reg.LocalRegistryHosting()))
}

// TestCreateThenStatusUsesTheRecordedPort: create records the port it was
// given; status, with no port chosen, finds the registry there and reports it
// healthy, not "connection refused" on the default port.
func TestCreateThenStatusUsesTheRecordedPort(t *testing.T) {
	w := platformtest.New(t, "dev", platformtest.Options{})
	p := newPlatform(w)
	ctx := context.Background()
	st := &recorded{}
	in, err := p.Create(ctx, "dev", withPort(w.Port), CreateOptions{}, st)
	require.NoError(t, err)
	assert.Len(t, st.lines, 5)
	for _, l := range st.lines {
		assert.Contains(t, l, ": ok")
	}
	assert.Equal(t, fmt.Sprintf("localhost:%d", w.Port), in.HostAddr)
	assert.Equal(t, "registry.local:5000", in.InClusterHost)

	wired(w)
	r, err := p.Status(ctx, "dev", defaults())
	require.NoError(t, err)
	assert.Equal(t, fmt.Sprintf("localhost:%d", w.Port), r.Address)
	assert.Equal(t, "ok", r.Health)
	assert.Equal(t, registryruntime.StatusRunning, r.State)
	assert.Equal(t, 1, r.RestartCount)
	assert.Equal(t, registryruntime.ModeContainer, r.Mode)
	require.NotNil(t, r.Checks)
	require.NotNil(t, r.Wiring, r.WiringError)
	assert.True(t, r.Healthy(), "%+v", r)

	info, err := p.Info("dev", defaults())
	require.NoError(t, err)
	assert.Equal(t, w.Port, info.Settings.Port)
}

func TestStatusOfAMissingOrStoppedRegistry(t *testing.T) {
	w := platformtest.New(t, "dev", platformtest.Options{})
	p := newPlatform(w)
	ctx := context.Background()
	w.Rec.On("docker", "container", "inspect").Reply(exectest.Fail(1, "Error: No such container: dev-registry"))
	r, err := p.Status(ctx, "dev", withPort(w.Port))
	require.NoError(t, err)
	assert.Equal(t, registryruntime.StatusMissing, r.State)
	assert.Equal(t, "no registry (run `idpbuilder create`)", r.Health)
	assert.False(t, r.Healthy())

	w.Rec.On("docker", "container", "inspect").Reply(w.Container(false))
	r, err = p.Status(ctx, "dev", withPort(w.Port))
	require.NoError(t, err)
	assert.Equal(t, "exited", r.State)
	assert.Contains(t, r.Health, "not running")
	assert.NotNil(t, r.Wiring)

	w.Rec.On("docker", "ps").Reply(exectest.OK(""))
	r, err = p.Status(ctx, "dev", withPort(w.Port))
	require.NoError(t, err)
	assert.Equal(t, `cluster "dev" does not exist`, r.WiringError)

	w.Rec.On("docker", "version").Reply(exectest.Fail(1, "Cannot connect to the Docker daemon"))
	_, err = p.Status(ctx, "dev", withPort(w.Port))
	assert.ErrorIs(t, err, docker.ErrNotRunning)
}

// TestCorruptSettings: a settings file that cannot be read stops every
// command with an error naming it; delete --purge removes it with the rest.
func TestCorruptSettings(t *testing.T) {
	w := platformtest.New(t, "dev", platformtest.Options{NoCluster: true})
	p := newPlatform(w)
	ctx := context.Background()
	dir := filepath.Join(w.StateDir, "clusters", "dev")
	require.NoError(t, os.MkdirAll(dir, 0o700))
	file := filepath.Join(dir, "registry.json")
	require.NoError(t, os.WriteFile(file, []byte(`{"mode": "container", "port": `), 0o600))

	var ce *CorruptSettingsError
	_, err := p.Status(ctx, "dev", defaults())
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, file, ce.Path)
	_, err = p.Create(ctx, "dev", defaults(), CreateOptions{}, nil)
	assert.ErrorAs(t, err, &ce)
	_, _, err = p.Client(ClientOptions{Cluster: "dev", Given: defaults()})
	assert.ErrorAs(t, err, &ce)
	c, _, err := p.Client(ClientOptions{Cluster: "dev", Given: defaults(), Addr: "127.0.0.1:7000"})
	require.NoError(t, err, "another registry does not need the cluster's settings")
	assert.Equal(t, "127.0.0.1:7000", c.Registry)
	_, err = p.Delete(ctx, "dev", defaults(), false, nil)
	assert.ErrorAs(t, err, &ce, "without --purge the registry could not be found as created")

	d, err := p.Delete(ctx, "dev", defaults(), true, nil)
	require.NoError(t, err)
	assert.True(t, d.Purged)
	assert.False(t, d.ClusterExisted)
	assert.NoDirExists(t, dir)
}

func TestCreateFailsEarly(t *testing.T) {
	w := platformtest.New(t, "dev", platformtest.Options{})
	p := newPlatform(w)
	ctx := context.Background()
	g := withPort(w.Port)
	g.KindConfig = filepath.Join(t.TempDir(), "missing.yaml")
	_, err := p.Create(ctx, "dev", g, CreateOptions{}, nil)
	var ke *kind.ConfigError
	assert.ErrorAs(t, err, &ke)

	w.Rec.On("docker", "version").Reply(exectest.Fail(1, "Cannot connect to the Docker daemon"))
	_, err = p.Create(ctx, "dev", withPort(w.Port), CreateOptions{}, nil)
	assert.ErrorIs(t, err, docker.ErrNotRunning)
	assert.Empty(t, w.Rec.Find("docker", "ps"), "nothing else was asked")
}

func TestCreateWithoutRegistry(t *testing.T) {
	w := platformtest.New(t, "dev", platformtest.Options{})
	st := &recorded{}
	_, err := newPlatform(w).Create(context.Background(), "dev", withPort(w.Port), CreateOptions{NoRegistry: true}, st)
	require.NoError(t, err)
	assert.Equal(t, []string{`Using cluster "dev" (its nodes' containerd reads hosts.toml): ok`}, st.lines)
	assert.Empty(t, w.Rec.Find("docker", "run"))
}

func TestStartStopDelete(t *testing.T) {
	w := platformtest.New(t, "dev", platformtest.Options{})
	p := newPlatform(w)
	ctx := context.Background()

	w.Rec.On("docker", "network", "inspect", "--format", "{{.Name}}").Reply(exectest.Fail(1, "Error: No such network: kind"))
	_, err := p.Start(ctx, "dev", withPort(w.Port), nil)
	var nc *NoClusterError
	require.ErrorAs(t, err, &nc)
	assert.Equal(t, `cluster "dev" does not exist (the docker network "kind" is missing)`, err.Error())

	w.Rec.On("docker", "network", "inspect", "--format", "{{.Name}}").Reply(exectest.OK("kind"))
	st := &recorded{}
	started, err := p.Start(ctx, "dev", withPort(w.Port), st)
	require.NoError(t, err)
	assert.Equal(t, "dev-registry", started.Instance)
	assert.Len(t, st.lines, 4, "registry, wiring, objects, pull check")

	stopped, err := p.Stop(ctx, "dev", defaults())
	require.NoError(t, err)
	assert.Equal(t, "dev-registry", stopped.Instance)
	assert.Contains(t, w.Rec.Lines(), "docker stop --time 35 dev-registry")

	w.Rec.On("docker", "ps").Reply(exectest.OK(""))
	st = &recorded{}
	d, err := p.Delete(ctx, "dev", defaults(), false, st)
	require.NoError(t, err)
	assert.False(t, d.ClusterExisted)
	assert.False(t, d.Purged)
	assert.Equal(t, []string{"Removing the registry container (dev-registry): ok"}, st.lines)
	assert.DirExists(t, d.StateDir, "kept for the next create")
	assert.Equal(t, w.Port, d.Settings.Port)
}

func TestCheckPull(t *testing.T) {
	w := platformtest.New(t, "dev", platformtest.Options{})
	p := newPlatform(w)
	ctx := context.Background()
	_, err := p.Create(ctx, "dev", withPort(w.Port), CreateOptions{}, nil)
	require.NoError(t, err)
	w.OnNode("crictl", "pull").Reply(exectest.Fail(1, "failed to resolve reference"))
	st := &recorded{}
	err = p.CheckPull(ctx, "dev", defaults(), st)
	var pe *PullCheckError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "dev-control-plane", pe.Node)
	assert.Equal(t, []string{"Checking that 1 node(s) pull from the registry: failed"}, st.lines)
}

// TestClient: a client for the cluster's registry on its recorded port, or
// for another registry; with stored logins, and as the nodes for reading a
// registry that needs a login for everything.
func TestClient(t *testing.T) {
	w := platformtest.New(t, "dev", platformtest.Options{NoCluster: true})
	p := newPlatform(w)
	p.ServeCertDir = t.TempDir()
	layout := filepath.Join(w.StateDir, "clusters", "dev")
	require.NoError(t, os.MkdirAll(layout, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(layout, "registry.json"), []byte(`{"mode":"container","port":5431,"tls":true,"auth":"all"}`), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(layout, "node-pull.secret"), []byte("0123456789abcdefghij"), 0o600))

	c, scheme, err := p.Client(ClientOptions{Cluster: "dev", Given: defaults()})
	require.NoError(t, err)
	assert.Equal(t, "localhost:5431", c.Registry)
	assert.Equal(t, "https", scheme)
	require.NotNil(t, c.Auth, "read as the nodes")
	a, err := c.Auth.Authorization()
	require.NoError(t, err)
	assert.Equal(t, "idpbuilder-nodes-dev", a.Username)

	c, _, err = p.Client(ClientOptions{Cluster: "dev", Given: defaults(), Write: true})
	require.NoError(t, err)
	assert.Nil(t, c.Auth, "pushes are never the nodes'")

	require.NoError(t, p.Credentials.Store(auth.Credentials{ServerURL: "localhost:5431", Username: "alice", Secret: "pw"}))
	c, _, err = p.Client(ClientOptions{Cluster: "dev", Given: defaults(), Write: true})
	require.NoError(t, err)
	a, err = c.Auth.Authorization()
	require.NoError(t, err)
	assert.Equal(t, "alice", a.Username)

	c, scheme, err = p.Client(ClientOptions{Cluster: "dev", Given: defaults(), Addr: "127.0.0.1:7000"})
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:7000", c.Registry)
	assert.Equal(t, "http", scheme)
	assert.Nil(t, c.Auth)

	c, _, err = p.Client(ClientOptions{Cluster: "dev", Given: withPort(6000)})
	require.NoError(t, err)
	assert.Equal(t, "localhost:6000", c.Registry, "a chosen port wins")
}

func TestReportHealthy(t *testing.T) {
	wiredOK := &kind.WiringStatus{LocalRegistryHosting: "ok", Nodes: []kind.NodeWiring{{Node: "n", HostsTOML: map[string]string{"localhost:5001": "ok"}}}}
	for _, tc := range []struct {
		name    string
		r       Report
		healthy bool
	}{
		{"a registry from before detailed health", Report{State: "running", Health: "ok", Wiring: wiredOK}, true},
		{"healthy", Report{State: "running", Health: "ok", Wiring: wiredOK, Checks: &registryapi.Health{Status: registryapi.Healthy}}, true},
		{"degraded is shown, not failed", Report{State: "running", Health: "ok", Wiring: wiredOK, Checks: &registryapi.Health{Status: registryapi.Degraded}}, true},
		{"unhealthy", Report{State: "running", Health: "ok", Wiring: wiredOK, Checks: &registryapi.Health{Status: registryapi.Unhealthy}}, false},
		{"not wired", Report{State: "running", Health: "ok"}, false},
		{"stopped", Report{State: "exited", Health: "ok", Wiring: wiredOK}, false},
	} {
		assert.Equal(t, tc.healthy, tc.r.Healthy(), tc.name)
	}
}

func TestPlatformFindsItsBinary(t *testing.T) {
	w := platformtest.New(t, "dev", platformtest.Options{NoCluster: true})
	p := newPlatform(w)
	p.Binary, p.Docker = "", nil
	in, err := p.Info("dev", defaults())
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(w.StateDir, "clusters", "dev"), in.StateDir)
	assert.False(t, errors.Is(err, os.ErrNotExist))
}
