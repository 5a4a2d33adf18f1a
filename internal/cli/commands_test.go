package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	kindlog "sigs.k8s.io/kind/pkg/log"

	"github.com/idpbuilder/idpbuilder/pkg/auth"
	"github.com/idpbuilder/idpbuilder/pkg/exec/exectest"
	"github.com/idpbuilder/idpbuilder/pkg/kind"
	"github.com/idpbuilder/idpbuilder/pkg/platform"
	"github.com/idpbuilder/idpbuilder/pkg/registry"
	"github.com/idpbuilder/idpbuilder/pkg/registryapi"
	"github.com/idpbuilder/idpbuilder/pkg/registryclient"
)

// TestPushAndList: a tarball and an image of the Docker engine pushed with
// `registry push`, then listed, as a table and as JSON.
func TestPushAndList(t *testing.T) {
	r := startTestRegistry(t, registry.Options{})
	img, err := random.Image(2048, 2)
	require.NoError(t, err)
	tag, err := name.NewTag("example.com/app:v1")
	require.NoError(t, err)
	tarPath := filepath.Join(t.TempDir(), "app.tar")
	require.NoError(t, tarball.WriteToFile(tarPath, tag, img))

	code, out, errOut := run(t, context.Background(), nil, "registry", "push", tarPath, "app:v1", "--registry-addr", r.Addr())
	require.Equal(t, ExitOK, code, errOut.String())
	d, _ := img.Digest()
	assert.Equal(t, "Pushed image "+r.Addr()+"/app@"+d.String()+"\n", out.String())
	assert.Contains(t, errOut.String(), "pushed ", "progress on stderr")

	// The Docker engine's image, through docker save (the recorder plays docker).
	var saved bytes.Buffer
	require.NoError(t, tarball.Write(mustTag(t, "app:dev"), img, &saved))
	rec := exectest.New()
	rec.On("docker", "version").Reply(exectest.OK("28.2.2 linux amd64"))
	rec.On("docker", "image", "inspect").Reply(exectest.OK("sha256:0123"))
	rec.On("docker", "save").Reply(exectest.OK(saved.String()))
	var o, e syncBuffer
	code = Run(context.Background(), []string{"registry", "push", "app:dev", "--registry-addr", r.Addr()},
		IO{In: strings.NewReader(""), Out: &o, Err: &e, Env: func(k string) (string, bool) { return t.TempDir(), k == "HOME" }, Exec: rec})
	require.Equal(t, ExitOK, code, e.String())
	assert.Contains(t, o.String(), "Pushed image "+r.Addr()+"/app@")

	code, out, errOut = run(t, context.Background(), nil, "registry", "list", "--registry-addr", r.Addr())
	require.Equal(t, ExitOK, code, errOut.String())
	assert.Regexp(t, `(?m)^REPOSITORY\s+TAG\s+DIGEST\s+SIZE\s+PLATFORMS\napp\s+dev\s+sha256:`, out.String())
	code, out, _ = run(t, context.Background(), nil, "registry", "list", "app", "-o", "json", "--registry-addr", r.Addr())
	require.Equal(t, ExitOK, code)
	var entries []registryclient.Entry
	require.NoError(t, json.Unmarshal([]byte(out.String()), &entries))
	assert.Len(t, entries, 2)

	rec.On("docker", "image", "inspect").Reply(exectest.Fail(1, "Error: No such image: nope"))
	code = Run(context.Background(), []string{"registry", "push", "nope", "--registry-addr", r.Addr()},
		IO{In: strings.NewReader(""), Out: &o, Err: &e, Env: func(k string) (string, bool) { return t.TempDir(), k == "HOME" }, Exec: rec})
	assert.Equal(t, ExitUsage, code)
	assert.Contains(t, e.String(), "nope is not a file, a directory, or an image in the local Docker engine")
	rec.On("docker", "version").Reply(exectest.Fail(1, "Cannot connect to the Docker daemon"))
	code = Run(context.Background(), []string{"registry", "push", "nope", "--registry-addr", r.Addr()},
		IO{In: strings.NewReader(""), Out: &o, Err: &e, Env: func(k string) (string, bool) { return t.TempDir(), k == "HOME" }, Exec: rec})
	assert.Equal(t, ExitFailure, code)
	assert.Contains(t, e.String(), "taken as a Docker image name")
	code, _, errOut = run(t, context.Background(), nil, "registry", "push", tarPath, "x:v1", "--platform", "linux/amd64", "--registry-addr", r.Addr())
	assert.Equal(t, ExitUsage, code)
	assert.Contains(t, errOut.String(), "--platform applies to OCI layouts only")
}

func mustTag(t *testing.T, s string) name.Tag {
	tag, err := name.NewTag(s)
	require.NoError(t, err)
	return tag
}

func TestCertCommands(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := run(t, context.Background(), nil, "registry", "cert", "show", "--cert-dir", dir, "--tls-names", "reg.test")
	require.Equal(t, ExitOK, code, errOut.String())
	assert.Regexp(t, `Names:\s+.*reg\.test`, out.String())
	code, out, _ = run(t, context.Background(), nil, "registry", "cert", "show", "--cert-dir", dir, "-o", "json")
	require.Equal(t, ExitOK, code)
	var info map[string]any
	require.NoError(t, json.Unmarshal([]byte(out.String()), &info))
	assert.Equal(t, filepath.Join(dir, "ca.crt"), info["ca"])

	code, out, _ = run(t, context.Background(), nil, "registry", "cert", "rotate", "--cert-dir", dir)
	require.Equal(t, ExitOK, code)
	assert.Contains(t, out.String(), "New certificate ")

	code, out, _ = run(t, context.Background(), nil, "registry", "cert", "export-ca", "--cert-dir", dir)
	require.Equal(t, ExitOK, code)
	assert.Contains(t, out.String(), "BEGIN CERTIFICATE")
	file := filepath.Join(t.TempDir(), "ca.pem")
	code, _, _ = run(t, context.Background(), nil, "registry", "cert", "export-ca", "--cert-dir", dir, "--output-file", file)
	require.Equal(t, ExitOK, code)
	assert.FileExists(t, file)
}

// TestLoginAndCredentialHelper: login checks the password against the
// registry, stores it and points Docker at the helper; the helper, run as
// docker-credential-idpbuilder, hands it to Docker.
func TestLoginAndCredentialHelper(t *testing.T) {
	h := auth.Htpasswd{Path: filepath.Join(t.TempDir(), "htpasswd")}
	require.NoError(t, h.Set("alice", "alice-password-1"))
	r := startTestRegistry(t, registry.Options{Auth: &registry.AuthOptions{Policy: auth.PolicyPush, Verifier: auth.NewVerifier(h)}})
	env := map[string]string{"HOME": t.TempDir(), "DOCKER_CONFIG": t.TempDir(), "PATH": os.Getenv("PATH")}
	getenv := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	login := func(password string) (int, string, string) {
		var o, e syncBuffer
		code := Run(context.Background(), []string{"registry", "login", r.Addr(), "-u", "alice", "--password-stdin"},
			IO{In: strings.NewReader(password + "\n"), Out: &o, Err: &e, Env: getenv})
		return code, o.String(), e.String()
	}
	code, _, errOut := login("wrong-password")
	assert.Equal(t, ExitFailure, code)
	assert.Contains(t, errOut, "invalid username or password")

	code, out, errOut := login("alice-password-1")
	require.Equal(t, ExitOK, code, errOut)
	assert.Contains(t, out, "Login succeeded")
	cfg, err := os.ReadFile(filepath.Join(env["DOCKER_CONFIG"], "config.json"))
	require.NoError(t, err)
	assert.Contains(t, string(cfg), `"`+r.Addr()+`": "idpbuilder"`)

	var o, e syncBuffer
	code = Main(context.Background(), []string{"/usr/local/bin/docker-credential-idpbuilder", "get"},
		IO{In: strings.NewReader(r.Addr()), Out: &o, Err: &e, Env: getenv})
	require.Equal(t, ExitOK, code, e.String())
	assert.Contains(t, o.String(), `"Username":"alice"`)
	code = Main(context.Background(), []string{"docker-credential-idpbuilder"}, IO{In: strings.NewReader(""), Out: &o, Err: &e, Env: getenv})
	assert.Equal(t, ExitUsage, code)
	code, _, _ = run(t, context.Background(), env, "credential-helper", "bogus")
	assert.Equal(t, ExitFailure, code)
	assert.Equal(t, filepath.Join(env["DOCKER_CONFIG"], "config.json"), dockerConfigPath(getenv))
	assert.Equal(t, filepath.Join("/home/u", ".docker", "config.json"), dockerConfigPath(func(k string) (string, bool) { return "/home/u", k == "HOME" }))
}

func TestKindLogger(t *testing.T) {
	var buf bytes.Buffer
	var l kindlog.Logger = &kindLogger{w: &buf}
	l.V(0).Info(" ✓ Ensuring node image\n")
	l.V(0).Infof("Creating cluster %q ...", "dev")
	l.V(1).Info("debug chatter")
	l.V(0).Info("   \n")
	l.Warnf("disk %d%% full", 90)
	l.Errorf("failed: %s", "x")
	assert.True(t, l.V(0).Enabled())
	assert.False(t, l.V(2).Enabled())
	assert.Equal(t, " ✓ Ensuring node image\nCreating cluster \"dev\" ...\nWARNING: disk 90% full\nERROR: failed: x\n", buf.String())
}

func TestRendering(t *testing.T) {
	var buf bytes.Buffer
	in := platform.Info{Cluster: "dev", HostAddr: "localhost:5431", InClusterHost: "registry.local:5000", CAFile: "/s/ca.crt",
		Settings: platform.Settings{TLS: true, Auth: auth.PolicyAll}}
	printCreated(&buf, in, false)
	assert.Contains(t, buf.String(), "TLS:                     local CA /s/ca.crt (sudo idpbuilder registry trust localhost:5431 --name dev)")
	assert.Contains(t, buf.String(), "login (--auth=all):      idpbuilder registry login localhost:5431 -u USER --password-stdin")
	buf.Reset()
	printCreated(&buf, in, true)
	assert.Equal(t, "Cluster \"dev\" is ready (no registry: --registry=false).\n", buf.String())

	unhealthy := platform.Report{State: "running", Health: "ok", Checks: &registryapi.Health{Status: registryapi.Unhealthy,
		Checks: []registryapi.HealthCheck{{Name: "disk", Status: registryapi.Unhealthy, Message: "10 MiB free"}}}}
	assert.EqualError(t, statusError(unhealthy), "the registry is unhealthy: disk: 10 MiB free")
	assert.ErrorContains(t, statusError(platform.Report{State: "exited"}), "`idpbuilder create` repairs it")
	healthy := platform.Report{State: "running", Health: "ok", Wiring: &kind.WiringStatus{LocalRegistryHosting: "ok",
		Nodes: []kind.NodeWiring{{Node: "n", HostsTOML: map[string]string{"localhost:5001": "ok"}}}}}
	assert.NoError(t, statusError(healthy))
}

func TestUsageIsNilSafe(t *testing.T) {
	assert.NoError(t, Usage(nil))
	assert.True(t, errors.As(Usage(errors.New("x")), new(usageError)))
}
