package steps

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/idpbuilder/idpbuilder/internal/platformtest"
	"github.com/idpbuilder/idpbuilder/pkg/auth"
	"github.com/idpbuilder/idpbuilder/pkg/certs"
	"github.com/idpbuilder/idpbuilder/pkg/docker"
	"github.com/idpbuilder/idpbuilder/pkg/exec/exectest"
	"github.com/idpbuilder/idpbuilder/pkg/kind"
	"github.com/idpbuilder/idpbuilder/pkg/platform/internal/state"
	"github.com/idpbuilder/idpbuilder/pkg/registry"
	"github.com/idpbuilder/idpbuilder/pkg/registryruntime"
)

// lines records a Status as the lines a user would see, without times.
type lines struct{ got []string }

func (l *lines) Start(title string) {
	if n := len(l.got); n > 0 && strings.HasPrefix(l.got[n-1], "… ") {
		l.got[n-1] = "… " + title
		return
	}
	l.got = append(l.got, "… "+title)
}

func (l *lines) End(err error) {
	n := len(l.got) - 1
	mark := "✓ "
	if err != nil {
		mark = "✗ "
	}
	l.got[n] = mark + strings.TrimPrefix(l.got[n], "… ")
}

// newContext is the context of a step run against w, with settings s (the
// port is w's registry's).
func newContext(w *platformtest.World, s state.Settings) (*Context, *lines) {
	st := &lines{}
	d := &docker.Client{Exec: w.Rec}
	s.Port = w.Port
	if s.Mode == "" {
		s.Mode = registryruntime.ModeContainer
	}
	if s.InClusterName == "" {
		s.InClusterName = "registry.local"
	}
	if s.Auth == "" {
		s.Auth = auth.PolicyNone
	}
	return &Context{
		Status: st, Docker: d, Cluster: kind.New(w.Cluster, d, nil), Layout: state.NewLayout(w.StateDir, w.Cluster),
		Settings: s, Binary: w.Binary, GOOS: "linux",
	}, st
}

func createSteps(t *testing.T) []Step {
	cfg, err := kind.LoadConfig("")
	require.NoError(t, err)
	return []Step{Cluster{Config: cfg}, Certificates{}, Registry{}, Wire{}, Objects{}, PullCheck{}}
}

// TestCreateOnAnExistingCluster: every step of create against a cluster that
// exists: one line each, in order; the settings recorded; the nodes wired;
// each node pulled the check's image by every name, and it is gone again.
func TestCreateOnAnExistingCluster(t *testing.T) {
	w := platformtest.New(t, "dev", platformtest.Options{})
	c, st := newContext(w, state.Settings{})
	require.NoError(t, Run(context.Background(), c, createSteps(t)...))

	host := fmt.Sprintf("localhost:%d", w.Port)
	assert.Equal(t, []string{
		`✓ Using cluster "dev" (its nodes' containerd reads hosts.toml)`,
		fmt.Sprintf("✓ Starting the registry container on %s", host),
		fmt.Sprintf("✓ Wiring 1 node(s) to %s, registry.local:5000, dev-registry:5000", host),
		"✓ Publishing kube-public/local-registry-hosting and registry.local:5000 for pods",
		"✓ Checking that 1 node(s) pull from the registry",
	}, st.got)

	saved, found, err := state.Load(c.Layout.SettingsFile())
	require.NoError(t, err)
	require.True(t, found)
	assert.Equal(t, c.Settings, saved)
	assert.Equal(t, w.Port, saved.Port)

	img, err := PullCheckImage("amd64")
	require.NoError(t, err)
	tag, err := pullCheckTag(img)
	require.NoError(t, err)
	var pulls []string
	for _, l := range w.NodeCalls() {
		if strings.HasPrefix(l, "crictl ") {
			pulls = append(pulls, l)
		}
	}
	ref := "/" + PullCheckRepo + ":" + tag
	assert.Equal(t, []string{
		"crictl pull " + host + ref, "crictl pull registry.local:5000" + ref, "crictl pull dev-registry:5000" + ref,
		"crictl rmi " + host + ref,
	}, pulls)
	tags, err := remote.List(mustRepo(t, host+"/"+PullCheckRepo))
	require.NoError(t, err)
	assert.Empty(t, tags, "the check's image is removed from the registry")

	// Run again: the same steps, nothing to repair.
	st.got = nil
	require.NoError(t, Run(context.Background(), c, createSteps(t)...))
	assert.Len(t, st.got, 5)
}

func mustRepo(t *testing.T, s string) name.Repository {
	r, err := name.NewRepository(s, name.Insecure)
	require.NoError(t, err)
	return r
}

// TestPullCheckBrokenWiring: a node that cannot pull through its wiring fails
// the step with ✗, naming the node and the name that failed; the image is
// removed from the registry all the same.
func TestPullCheckBrokenWiring(t *testing.T) {
	w := platformtest.New(t, "dev", platformtest.Options{})
	host := fmt.Sprintf("localhost:%d", w.Port)
	w.OnNode("crictl", "pull").Reply(exectest.Fail(1, "E0101 pulling image: failed to resolve reference: dial tcp 127.0.0.1:"+fmt.Sprint(w.Port)+": connect: connection refused"))
	c, st := newContext(w, state.Settings{})
	err := Run(context.Background(), c, Registry{}, PullCheck{})
	var pe *PullCheckError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "dev-control-plane", pe.Node)
	assert.Equal(t, "dev", pe.Cluster)
	assert.True(t, strings.HasPrefix(pe.Ref, host+"/"+PullCheckRepo+":"), pe.Ref)
	assert.Contains(t, err.Error(), "node dev-control-plane cannot pull "+host+"/")
	assert.Contains(t, err.Error(), "connection refused")
	assert.Equal(t, "✗ Checking that 1 node(s) pull from the registry", st.got[len(st.got)-1])
	tags, err := remote.List(mustRepo(t, host+"/"+PullCheckRepo))
	require.NoError(t, err)
	assert.Empty(t, tags)
}

func TestPullCheckImage(t *testing.T) {
	a, err := PullCheckImage("arm64")
	require.NoError(t, err)
	b, err := PullCheckImage("arm64")
	require.NoError(t, err)
	da, _ := a.Digest()
	db, _ := b.Digest()
	assert.Equal(t, da, db, "the same binary makes the same image")
	cf, err := a.ConfigFile()
	require.NoError(t, err)
	assert.Equal(t, "linux", cf.OS)
	assert.Equal(t, "arm64", cf.Architecture)
	layers, err := a.Layers()
	require.NoError(t, err)
	require.Len(t, layers, 1)
	size, err := layers[0].Size()
	require.NoError(t, err)
	assert.Less(t, size, int64(1024), "tiny")
}

func TestCertificates(t *testing.T) {
	w := platformtest.New(t, "dev", platformtest.Options{})
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")

	c, st := newContext(w, state.Settings{})
	require.NoError(t, Certificates{}.Execute(context.Background(), c))
	assert.Empty(t, st.got, "nothing to do: no line")

	c, st = newContext(w, state.Settings{TLS: true, Auth: auth.PolicyPush, Htpasswd: htpasswd})
	err := Certificates{}.Execute(context.Background(), c)
	var nu *NoUserError
	require.ErrorAs(t, err, &nu)
	assert.Equal(t, auth.PolicyPush, nu.Policy)
	assert.Equal(t, []string{"✗ Local CA, registry certificate and the nodes' user"}, st.got)

	require.NoError(t, auth.Htpasswd{Path: htpasswd}.Set("alice", "alice-password-1"))
	require.NoError(t, Certificates{}.Execute(context.Background(), c))
	assert.FileExists(t, c.Layout.CAFile())
	users, err := auth.Htpasswd{Path: htpasswd}.Users()
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"alice", "idpbuilder-nodes-dev"}, users)
	secret, err := state.NodeSecret(c.Layout)
	require.NoError(t, err)
	ok, err := auth.NewVerifier(auth.Htpasswd{Path: htpasswd}).Verify("idpbuilder-nodes-dev", secret)
	require.NoError(t, err)
	assert.True(t, ok)

	// Only the nodes' user is no user to push with.
	require.NoError(t, auth.Htpasswd{Path: htpasswd}.Remove("alice"))
	c, _ = newContext(w, state.Settings{Auth: auth.PolicyAll, Htpasswd: htpasswd})
	assert.ErrorAs(t, Certificates{}.Execute(context.Background(), c), &nu)
	assert.Equal(t, []string{"✗ The nodes' user"}, c.Status.(*lines).got)
}

// TestRegistryFallsBackToAProcess: a container that cannot run this binary
// becomes a process, unless the user chose the mode.
func TestRegistryFallsBackToAProcess(t *testing.T) {
	w := platformtest.New(t, "dev", platformtest.Options{})
	w.Rec.On("docker", "version").Reply(exectest.OK("28.2.2 windows amd64"))
	c, st := newContext(w, state.Settings{})
	err := Registry{}.Execute(context.Background(), c)
	// The process cannot have the port: the registry standing in for the container has it.
	var pe *registryruntime.PortInUseError
	require.ErrorAs(t, err, &pe)
	require.Len(t, st.got, 1)
	assert.Contains(t, st.got[0], "✗ Starting the registry process on localhost:")
	assert.Contains(t, st.got[0], "(no container: no static Linux idpbuilder binary for the Docker engine: the Docker engine runs windows containers)")

	c, st = newContext(w, state.Settings{})
	c.ModeChosen = true
	err = Registry{}.Execute(context.Background(), c)
	assert.ErrorIs(t, err, registryruntime.ErrNoLinuxBinary)
	assert.Contains(t, st.got[0], "✗ Starting the registry container")
}

// TestRegistryRemovesTheOtherMode: a process left from before the cluster was
// switched to a container is removed.
func TestRegistryRemovesTheOtherMode(t *testing.T) {
	w := platformtest.New(t, "dev", platformtest.Options{})
	c, _ := newContext(w, state.Settings{})
	require.NoError(t, os.MkdirAll(c.Layout.Dir, 0o700))
	pidFile := filepath.Join(c.Layout.Dir, "registry.pid")
	require.NoError(t, os.WriteFile(pidFile, []byte("999999999\n"), 0o600))
	require.NoError(t, Registry{}.Execute(context.Background(), c))
	assert.NoFileExists(t, pidFile)
	assert.Equal(t, registryruntime.ModeContainer, c.Runtime.Mode())
}

func TestClusterStep(t *testing.T) {
	w := platformtest.New(t, "dev", platformtest.Options{})
	w.OnNode("containerd", "config", "dump").Reply(exectest.OK("version = 2\n"))
	w.OnNode("containerd", "--version").Reply(exectest.OK("containerd containerd.io 1.6.20 0123\n"))
	c, st := newContext(w, state.Settings{})
	err := Cluster{}.Execute(context.Background(), c)
	var fe *kind.ForeignClusterError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, []string{`✗ Using cluster "dev" (its nodes' containerd reads hosts.toml)`}, st.got)

	w.Rec.On("docker", "ps").Reply(exectest.Fail(1, "Cannot connect to the Docker daemon"))
	assert.ErrorContains(t, Cluster{}.Execute(context.Background(), c), "list kind clusters")
	assert.ErrorContains(t, DeleteCluster{}.Execute(context.Background(), c), "list kind clusters")
}

// TestDeleteSteps: a cluster that is not there is not deleted (kind is not
// asked); the registry's instance and the data go.
func TestDeleteSteps(t *testing.T) {
	w := platformtest.New(t, "dev", platformtest.Options{NoCluster: true})
	c, st := newContext(w, state.Settings{})
	require.NoError(t, os.MkdirAll(c.Layout.DataDir(), 0o700))
	require.NoError(t, Run(context.Background(), c, DeleteCluster{}, RemoveRegistry{}, Purge{}))
	assert.Equal(t, []string{
		"✓ Removing the registry container (dev-registry)",
		"✓ Removing the registry's data " + c.Layout.Dir,
	}, st.got)
	assert.Contains(t, w.Rec.Lines(), "docker rm -f --volumes dev-registry")
	assert.NoDirExists(t, c.Layout.Dir)
}

func TestClusterRegistry(t *testing.T) {
	w := platformtest.New(t, "dev", platformtest.Options{})
	c, _ := newContext(w, state.Settings{TLS: true, Auth: auth.PolicyAll})
	ep := &registryruntime.Endpoint{HostAddr: "localhost:5001", NodeURL: "https://dev-registry:5000", NodeHost: "dev-registry:5000", ClusterIP: "172.18.0.3", ClusterPort: 5000}
	_, err := c.ClusterRegistry(ep)
	assert.ErrorContains(t, err, "registry CA")
	require.NoError(t, os.MkdirAll(c.Layout.CertDir(), 0o700))
	require.NoError(t, os.WriteFile(c.Layout.CAFile(), []byte("-----BEGIN CERTIFICATE-----"), 0o600))
	_, err = c.ClusterRegistry(ep)
	assert.ErrorContains(t, err, "nodes' pull credentials")
	secret, err := state.EnsureNodeSecret(c.Layout)
	require.NoError(t, err)
	reg, err := c.ClusterRegistry(ep)
	require.NoError(t, err)
	assert.Equal(t, basicAuth("idpbuilder-nodes-dev", secret), reg.Authorization)
	assert.Equal(t, []byte("-----BEGIN CERTIFICATE-----"), reg.CAPEM)
	assert.Equal(t, HelpURL, reg.Help)
	assert.Equal(t, "registry.local", reg.InClusterName)
}

func TestNewRuntime(t *testing.T) {
	w := platformtest.New(t, "dev", platformtest.Options{})
	c, _ := newContext(w, state.Settings{TLS: true, Auth: auth.PolicyPush, Htpasswd: "/h"})
	ctx := context.Background()
	rt, err := c.NewRuntime(ctx, registryruntime.ModeProcess)
	require.NoError(t, err)
	ep, err := rt.Endpoint(ctx)
	require.NoError(t, err)
	assert.Equal(t, fmt.Sprintf("https://172.18.0.1:%d", w.Port), ep.NodeURL, "nodes reach the process at the kind gateway")

	c.GOOS = "darwin"
	rt, err = c.NewRuntime(ctx, registryruntime.ModeProcess)
	require.NoError(t, err)
	ep, err = rt.Endpoint(ctx)
	require.NoError(t, err)
	assert.Equal(t, fmt.Sprintf("https://host.docker.internal:%d", w.Port), ep.NodeURL)

	rt, err = c.NewRuntime(ctx, registryruntime.ModeContainer)
	require.NoError(t, err)
	assert.Equal(t, "dev-registry", rt.Describe())
	_, err = c.NewRuntime(ctx, "vm")
	assert.Error(t, err)
}

func TestServerIsAskedOnce(t *testing.T) {
	w := platformtest.New(t, "dev", platformtest.Options{})
	c, _ := newContext(w, state.Settings{})
	for range 3 {
		srv, err := c.Server(context.Background())
		require.NoError(t, err)
		assert.Equal(t, "linux", srv.OS)
	}
	assert.Len(t, w.Rec.Find("docker", "version"), 1)

	w.Rec.On("docker", "version").Reply(exectest.Fail(1, "Cannot connect"))
	c, _ = newContext(w, state.Settings{})
	_, err := c.Server(context.Background())
	assert.True(t, errors.Is(err, docker.ErrNotRunning))
}

func TestExplainCreate(t *testing.T) {
	w := platformtest.New(t, "dev", platformtest.Options{NoCluster: true})
	ctx := context.Background()
	c, _ := newContext(w, state.Settings{NodeImage: "kind-offline/node:v0"})
	boom := errors.New("create kind cluster: command docker run failed")
	assert.NoError(t, explainCreate(ctx, c, nil))
	assert.Equal(t, boom, explainCreate(ctx, c, boom), "the image is there: kind's error as is")
	w.Rec.On("docker", "image", "inspect").Reply(exectest.Fail(1, "Error: No such image: kind-offline/node:v0"))
	err := explainCreate(ctx, c, boom)
	var ie *NodeImageError
	require.ErrorAs(t, err, &ie)
	assert.Equal(t, "kind-offline/node:v0", ie.Image)
	assert.ErrorIs(t, err, boom)
	assert.Contains(t, err.Error(), "node image kind-offline/node:v0 is not in the Docker engine and could not be pulled")
	c.Settings.NodeImage = ""
	assert.Equal(t, boom, explainCreate(ctx, c, boom), "kind's default image: nothing to add")
}

// TestSecureRegistry: with TLS and a login for everything, the registry is
// reached trusting the cluster's CA, the nodes get the CA and their login in
// hosts.toml, and the pull check pushes and deletes as the nodes' user.
func TestSecureRegistry(t *testing.T) {
	stateDir := t.TempDir()
	layout := state.NewLayout(stateDir, "dev")
	m := &certs.Manager{Dir: layout.CertDir(), Names: []string{"dev-registry", "registry.local"}}
	_, err := m.Ensure()
	require.NoError(t, err)
	htpasswd := auth.Htpasswd{Path: filepath.Join(t.TempDir(), "htpasswd")}
	require.NoError(t, htpasswd.Set("alice", "alice-password-1"))
	w := platformtest.New(t, "dev", platformtest.Options{StateDir: stateDir, Registry: registry.Options{
		GetCertificate: m.GetCertificate,
		Auth:           &registry.AuthOptions{Policy: auth.PolicyAll, Verifier: auth.NewVerifier(htpasswd)},
	}})
	c, st := newContext(w, state.Settings{TLS: true, Auth: auth.PolicyAll, Htpasswd: htpasswd.Path})
	require.NoError(t, Run(context.Background(), c, createSteps(t)...))
	assert.Equal(t, "✓ Local CA, registry certificate and the nodes' user", st.got[1])

	var wrote []exectest.Call
	for _, call := range w.Rec.Calls() {
		if len(call.Argv) > 6 && call.Argv[5] == "sh" && strings.HasSuffix(call.Argv[len(call.Argv)-1], "hosts.toml") {
			wrote = append(wrote, call)
		}
	}
	require.Len(t, wrote, 3)
	assert.Contains(t, string(wrote[0].Stdin), `ca = "/etc/containerd/certs.d/`)
	assert.Contains(t, string(wrote[0].Stdin), `Authorization = ["Basic `)
	assert.Contains(t, string(wrote[0].Stdin), `server = "https://dev-registry:5000"`)

	// Run on its own, the pull check finds the registry by itself.
	c, st = newContext(w, c.Settings)
	require.NoError(t, PullCheck{}.Execute(context.Background(), c))
	assert.Equal(t, []string{"✓ Checking that 1 node(s) pull from the registry"}, st.got)
	require.NoError(t, Wire{}.Execute(context.Background(), c))
}

// TestStepFailures: what each step says when what it drives fails.
func TestStepFailures(t *testing.T) {
	ctx := context.Background()
	w := platformtest.New(t, "dev", platformtest.Options{})

	// A registry container that cannot be inspected: the other mode's check fails first for a process.
	c, st := newContext(w, state.Settings{Mode: registryruntime.ModeProcess})
	w.Rec.On("docker", "container", "inspect", "dev-registry").Reply(exectest.Fail(1, "permission denied"))
	assert.ErrorContains(t, Registry{}.Execute(ctx, c), "permission denied")
	assert.Equal(t, []string{fmt.Sprintf("✗ Starting the registry process on localhost:%d", w.Port)}, st.got)

	// Wiring and objects without a registry to wire to.
	c, _ = newContext(w, state.Settings{})
	assert.ErrorContains(t, Wire{}.Execute(ctx, c), "permission denied")
	assert.ErrorContains(t, Objects{}.Execute(ctx, c), "permission denied")
	assert.ErrorContains(t, PullCheck{}.Execute(ctx, c), "permission denied")

	// The node refuses the wiring.
	w.Rec.On("docker", "container", "inspect", "dev-registry").Reply(w.Container(true))
	w.OnNode("sh").Reply(exectest.Fail(1, "read-only file system"))
	c, st = newContext(w, state.Settings{})
	err := Wire{}.Execute(ctx, c)
	assert.ErrorContains(t, err, "read-only file system")
	assert.True(t, strings.HasPrefix(st.got[0], "✗ Wiring 1 node(s)"))

	// The removal from the node fails after the pulls worked.
	w.OnNode("crictl", "rmi").Reply(exectest.Fail(1, "no such image"))
	c, _ = newContext(w, state.Settings{})
	assert.ErrorContains(t, PullCheck{}.Execute(ctx, c), "remove the pull check's image from node dev-control-plane")

	// A pull that fails without a word on stderr keeps the program's own error.
	w.OnNode("crictl", "pull").Reply(exectest.Response{Err: errors.New("crictl: not found")})
	c, _ = newContext(w, state.Settings{})
	err = PullCheck{}.Execute(ctx, c)
	var pe *PullCheckError
	require.ErrorAs(t, err, &pe)
	assert.ErrorContains(t, errors.Unwrap(pe), "crictl: not found")

	// Removing data that cannot be removed.
	c, st = newContext(w, state.Settings{})
	c.Layout.Dir = "/proc/self/idpbuilder-cannot-remove"
	require.NoError(t, Purge{}.Execute(ctx, c), "nothing there: nothing to remove")
	assert.Len(t, st.got, 1)

	assert.Equal(t, `the registry's auth policy "push" needs a user to push with, and /h has none`,
		(&NoUserError{Policy: auth.PolicyPush, Htpasswd: "/h"}).Error())
	assert.Equal(t, "The nodes' user", certificatesTitle(state.Settings{Auth: auth.PolicyPush}))
	assert.Equal(t, "Local CA and registry certificate", certificatesTitle(state.Settings{TLS: true}))
	assert.NotEmpty(t, (&Context{}).goos())
}
