package docker

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/idpbuilder/idpbuilder/pkg/exec"
	"github.com/idpbuilder/idpbuilder/pkg/exec/exectest"
)

// What docker prints for a name it does not know (docker 20.10 to 28).
const noSuchContainer = "Error: No such container: x"

func newClient() (*Client, *exectest.Recorder) {
	rec := exectest.New()
	return &Client{Exec: rec}, rec
}

func TestServer(t *testing.T) {
	tests := []struct {
		name       string
		resp       exectest.Response
		want       Server
		wantErr    string
		notRunning bool
	}{
		{name: "engine answers", resp: exectest.OK("28.2.2 linux amd64\n"), want: Server{Version: "28.2.2", OS: "linux", Arch: "amd64"}},
		{name: "no CLI", resp: exectest.Response{Err: exec.ErrNotFound}, wantErr: "the docker CLI is not installed", notRunning: true},
		{name: "no engine", resp: exectest.Fail(1, "Cannot connect to the Docker daemon at unix:///var/run/docker.sock"), wantErr: "not running or not reachable", notRunning: true},
		{name: "odd output", resp: exectest.OK("28.2.2\n"), wantErr: "unexpected `docker version` output"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, rec := newClient()
			rec.On("docker", "version").Reply(tt.resp)
			got, err := c.Server(context.Background())
			assert.Equal(t, []string{"docker version --format {{.Server.Version}} {{.Server.Os}} {{.Server.Arch}}"}, rec.Lines())
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				assert.Equal(t, tt.notRunning, errors.Is(err, ErrNotRunning))
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestCustomBinary(t *testing.T) {
	rec := exectest.New()
	c := &Client{Bin: "/opt/podman-docker", Exec: rec}
	require.NoError(t, c.Start(context.Background(), "x"))
	assert.Equal(t, []string{"/opt/podman-docker start x"}, rec.Lines())
}

func TestImageExists(t *testing.T) {
	tests := []struct {
		name    string
		resp    exectest.Response
		want    bool
		wantErr bool
	}{
		{name: "present", resp: exectest.OK("sha256:abc\n"), want: true},
		{name: "absent", resp: exectest.Fail(1, "Error response from daemon: No such image: a:b")},
		{name: "engine error", resp: exectest.Fail(1, "permission denied while trying to connect"), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, rec := newClient()
			rec.On("docker", "image", "inspect").Reply(tt.resp)
			got, err := c.ImageExists(context.Background(), "a:b")
			assert.Equal(t, []string{"docker image inspect --format {{.Id}} a:b"}, rec.Lines())
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.wantErr, err != nil, err)
		})
	}
}

func TestLoadAndSave(t *testing.T) {
	c, rec := newClient()
	require.NoError(t, c.Load(context.Background(), strings.NewReader("TARBALL")))
	calls := rec.Find("docker", "load")
	require.Len(t, calls, 1)
	assert.Equal(t, []string{"docker", "load", "--quiet"}, calls[0].Argv)
	assert.Equal(t, "TARBALL", string(calls[0].Stdin))

	rec.On("docker", "save").Reply(exectest.OK("SAVED"))
	var out bytes.Buffer
	require.NoError(t, c.Save(context.Background(), &out, "a:1", "b:2"))
	assert.Equal(t, "SAVED", out.String())
	assert.Equal(t, "docker save a:1 b:2", rec.Lines()[1])
}

func TestImageTagsAndRemove(t *testing.T) {
	c, rec := newClient()
	rec.On("docker", "image", "ls").Reply(exectest.OK("repo:aaa\nrepo:bbb\n"))
	tags, err := c.ImageTags(context.Background(), "repo", "label=k=v=w")
	require.NoError(t, err)
	assert.Equal(t, []string{"repo:aaa", "repo:bbb"}, tags)
	require.NoError(t, c.RemoveImage(context.Background(), "repo:aaa"))
	assert.Equal(t, []string{
		"docker image ls --format {{.Repository}}:{{.Tag}} --filter label=k=v=w repo",
		"docker image rm repo:aaa",
	}, rec.Lines())

	rec.On("docker", "image", "ls").Reply(exectest.Fail(1, "boom"))
	_, err = c.ImageTags(context.Background(), "repo")
	assert.ErrorContains(t, err, "boom")
}

// inspectJSON is trimmed `docker container inspect` output of a registry container.
const inspectJSON = `[{"Id":"0123abcd","Name":"/dev-registry","RestartCount":2,
 "Config":{"Image":"idpbuilder.local/registry:3f2a9c0d1e4b","Labels":{"io.idpbuilder.role":"registry"}},
 "State":{"Running":true,"Status":"running"},
 "NetworkSettings":{"Networks":{"kind":{"IPAddress":"172.18.0.3"},"bridge":{"IPAddress":"172.17.0.2"}}}}]`

func TestInspectContainer(t *testing.T) {
	tests := []struct {
		name    string
		resp    exectest.Response
		want    *Container
		wantErr string
	}{
		{name: "running", resp: exectest.OK(inspectJSON), want: &Container{
			ID: "0123abcd", Name: "dev-registry", Image: "idpbuilder.local/registry:3f2a9c0d1e4b", Running: true,
			Status: "running", RestartCount: 2, Labels: map[string]string{"io.idpbuilder.role": "registry"},
			Networks: map[string]string{"kind": "172.18.0.3", "bridge": "172.17.0.2"},
		}},
		{name: "none by that name", resp: exectest.Fail(1, noSuchContainer)},
		{name: "not JSON", resp: exectest.OK("{"), wantErr: "parse docker inspect of x"},
		{name: "two answers", resp: exectest.OK("[{},{}]"), wantErr: "returned 2 containers"},
		{name: "engine error", resp: exectest.Fail(1, "permission denied"), wantErr: "permission denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, rec := newClient()
			rec.On("docker", "container", "inspect").Reply(tt.resp)
			got, err := c.InspectContainer(context.Background(), "x")
			assert.Equal(t, []string{"docker container inspect x"}, rec.Lines())
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestContainerLifecycle(t *testing.T) {
	ctx := context.Background()
	c, rec := newClient()
	rec.On("docker", "run").Reply(exectest.OK("0123abcd\n"))
	id, err := c.Run(ctx, "--detach", "--name", "x", "img")
	require.NoError(t, err)
	assert.Equal(t, "0123abcd", id)
	require.NoError(t, c.Start(ctx, "x"))
	require.NoError(t, c.Stop(ctx, "x", 35))
	require.NoError(t, c.Remove(ctx, "x"))
	assert.Equal(t, []string{
		"docker run --detach --name x img",
		"docker start x",
		"docker stop --time 35 x",
		"docker rm -f --volumes x",
	}, rec.Lines())

	rec.On("docker", "rm").Reply(exectest.Fail(1, noSuchContainer))
	assert.NoError(t, c.Remove(ctx, "x"), "removing what is gone is done")
	rec.On("docker", "rm").Reply(exectest.Fail(1, "Error response from daemon: removal of container x is already in progress"))
	assert.Error(t, c.Remove(ctx, "x"))
}

func TestLogs(t *testing.T) {
	ctx := context.Background()
	c, rec := newClient()
	rec.On("docker", "logs").Reply(exectest.Response{Stdout: "out line\n", Stderr: `level=INFO msg="registry listening"` + "\n"})
	logs := c.Logs(ctx, "x", 20)
	assert.Contains(t, logs, "out line")
	assert.Contains(t, logs, "registry listening", "the registry logs to stderr: both streams are kept")
	assert.Equal(t, "docker logs --tail 20 x", rec.Lines()[0])

	rec.On("docker", "logs").Reply(exectest.Fail(1, noSuchContainer))
	assert.Equal(t, noSuchContainer, c.Logs(ctx, "x", 20))
	rec.On("docker", "logs").Reply(exectest.Response{Err: exec.ErrNotFound})
	assert.Contains(t, c.Logs(ctx, "x", 20), "docker logs --tail 20 x")
}

func TestNetworks(t *testing.T) {
	ctx := context.Background()
	c, rec := newClient()
	rec.On("docker", "network", "inspect", "--format", "{{range .IPAM.Config}}{{.Gateway}} {{end}}").
		Reply(exectest.OK("fc00:f853:ccd:e793::1 172.18.0.1 \n"), exectest.OK("fc00::1\n"), exectest.Fail(1, "Error: No such network: kind"))
	gw, err := c.NetworkGateway(ctx, "kind")
	require.NoError(t, err)
	assert.Equal(t, "172.18.0.1", gw, "the IPv4 gateway, not the IPv6 one")
	gw, err = c.NetworkGateway(ctx, "kind")
	require.NoError(t, err)
	assert.Empty(t, gw, "an IPv6-only network has no IPv4 gateway")
	_, err = c.NetworkGateway(ctx, "kind")
	assert.ErrorContains(t, err, "No such network")

	rec.On("docker", "network", "inspect", "--format", "{{.Name}}").
		Reply(exectest.OK("kind"), exectest.Fail(1, "Error: No such network: kind"), exectest.Fail(1, "Cannot connect to the Docker daemon"))
	for _, want := range []struct {
		ok, err bool
	}{{true, false}, {false, false}, {false, true}} {
		ok, err := c.NetworkExists(ctx, "kind")
		assert.Equal(t, want.ok, ok)
		assert.Equal(t, want.err, err != nil, err)
	}

	rec.On("docker", "network", "connect").Reply(
		exectest.OK(""),
		exectest.Fail(1, "Error response from daemon: endpoint with name x already exists in network kind"),
		exectest.Fail(1, "Error response from daemon: network kind not found"))
	require.NoError(t, c.ConnectNetwork(ctx, "kind", "x", "a1", "a2"))
	require.NoError(t, c.ConnectNetwork(ctx, "kind", "x"), "already connected is connected")
	require.Error(t, c.ConnectNetwork(ctx, "kind", "x"))
	assert.Equal(t, "docker network connect --alias a1 --alias a2 kind x", rec.Find("docker", "network", "connect")[0].String())
}

func TestContainersWithLabel(t *testing.T) {
	c, rec := newClient()
	rec.On("docker", "ps").Reply(exectest.OK("dev-worker\tworker\ndev-control-plane\tcontrol-plane\n\n"), exectest.OK(""), exectest.Fail(1, "Cannot connect"))
	got, err := c.ContainersWithLabel(context.Background(), "io.x-k8s.kind.cluster=dev", "io.x-k8s.kind.role")
	require.NoError(t, err)
	assert.Equal(t, []ListedContainer{{Name: "dev-control-plane", Label: "control-plane"}, {Name: "dev-worker", Label: "worker"}}, got)
	assert.Equal(t, `docker ps --all --filter label=io.x-k8s.kind.cluster=dev --format {{.Names}}\t{{.Label "io.x-k8s.kind.role"}}`, rec.Lines()[0])

	got, err = c.ContainersWithLabel(context.Background(), "x", "x")
	require.NoError(t, err)
	assert.Empty(t, got)
	_, err = c.ContainersWithLabel(context.Background(), "x", "x")
	assert.ErrorContains(t, err, "Cannot connect")
}

// TestIn: a command in a container is docker exec with the command's own
// stdin, environment and output; its failure names the command and where it ran.
func TestIn(t *testing.T) {
	c, rec := newClient()
	rec.On("docker", "exec", "--privileged", "dev-control-plane", "cat").Reply(exectest.OK("file content"))
	rec.On("docker", "exec", "--privileged", "dev-control-plane", "false").Reply(exectest.Fail(3, "it failed\n"))
	rec.On("docker", "exec", "--privileged", "dev-control-plane", "missing").Reply(exectest.Response{Err: exec.ErrNotFound})
	node := c.In("dev-control-plane", "node dev-control-plane")
	ctx := context.Background()

	out, err := exec.OutputString(node.Command(ctx, "cat", "/etc/hosts"))
	require.NoError(t, err)
	assert.Equal(t, "file content", out)

	require.NoError(t, node.Command(ctx, "sh", "-c", "cat > f").SetStdin(strings.NewReader("data")).SetEnv("A=1", "B=2").Run())
	calls := rec.Calls()
	assert.Equal(t, []string{"docker", "exec", "--privileged", "--interactive", "--env", "A=1", "--env", "B=2", "dev-control-plane", "sh", "-c", "cat > f"}, calls[1].Argv)
	assert.Equal(t, "data", string(calls[1].Stdin))

	var stderr bytes.Buffer
	err = node.Command(ctx, "false").SetStderr(&stderr).Run()
	var e *exec.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, "node dev-control-plane", e.Where)
	assert.Equal(t, []string{"false"}, e.Argv)
	assert.Equal(t, 3, e.ExitCode)
	assert.Equal(t, "it failed", e.Stderr)
	assert.Equal(t, "it failed\n", stderr.String())
	assert.Equal(t, "on node dev-control-plane: false: exit status 3: it failed", err.Error())

	err = node.Command(ctx, "missing").Run()
	require.ErrorAs(t, err, &e)
	assert.True(t, exec.NotFound(err))
	assert.Equal(t, -1, e.ExitCode)
}
