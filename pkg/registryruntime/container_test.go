package registryruntime

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/idpbuilder/idpbuilder/pkg/auth"
	"github.com/idpbuilder/idpbuilder/pkg/docker"
	"github.com/idpbuilder/idpbuilder/pkg/exec/exectest"
	"github.com/idpbuilder/idpbuilder/pkg/registryclient"
)

var (
	tinyOnce sync.Once
	tinyPath string
	tinyErr  error
)

// tinyBinary is a static Linux program built once per test run: BuildImage
// only needs a real static ELF file, not the real registry.
func tinyBinary(t *testing.T) string {
	t.Helper()
	tinyOnce.Do(func() {
		dir, err := os.MkdirTemp("", "idpbuilder-tiny-")
		if err != nil {
			tinyErr = err
			return
		}
		tinyPath, tinyErr = buildStatic(dir)
	})
	require.NoError(t, tinyErr)
	return tinyPath
}

// readyServer answers /readyz like the registry does, over TLS when tls is set,
// and returns its port and (for TLS) a cert dir holding its CA as ca.crt.
func readyServer(t *testing.T, tls bool, status int) (port int, certDir string) {
	t.Helper()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
	})
	srv := httptest.NewUnstartedServer(h)
	// Probes that do not trust it are expected here: not worth a log line.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	if tls {
		srv.StartTLS()
		certDir = t.TempDir()
		ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
		require.NoError(t, os.WriteFile(filepath.Join(certDir, "ca.crt"), ca, 0o600))
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().(*net.TCPAddr).Port, certDir
}

// inspect is `docker container inspect` output for the registry container.
func inspect(t *testing.T, c *Container, running bool, labels map[string]string) exectest.Response {
	t.Helper()
	status := "running"
	if !running {
		status = "exited"
	}
	b, err := json.Marshal([]map[string]any{{
		"Id": "0123abcd", "Name": "/" + c.Opts.ContainerName(), "RestartCount": 0,
		"Config":          map[string]any{"Image": "idpbuilder.local/registry:x", "Labels": labels},
		"State":           map[string]any{"Running": running, "Status": status},
		"NetworkSettings": map[string]any{"Networks": map[string]any{"kind": map[string]string{"IPAddress": "172.18.0.3"}}},
	}})
	require.NoError(t, err)
	return exectest.OK(string(b))
}

const noSuchContainer = "Error response from daemon: No such container: dev-registry"

func newContainer(t *testing.T, port int, certDir string) (*Container, *exectest.Recorder) {
	rec := exectest.New()
	rec.On("docker", "version").Reply(exectest.OK("28.2.2 linux " + runtime.GOARCH))
	c := &Container{
		Docker: &docker.Client{Exec: rec},
		Opts: Options{
			Cluster: "dev", Network: "kind", HostPort: port,
			DataDir: filepath.Join(t.TempDir(), "data"), Binary: tinyBinary(t), CertDir: certDir,
		},
		Ready: 5 * time.Second,
	}
	return c, rec
}

// ourLabels are the labels Ensure gives the container it runs.
func ourLabels(t *testing.T, c *Container) map[string]string {
	img, err := BuildImage(c.Opts.Binary, runtime.GOARCH)
	require.NoError(t, err)
	args, err := c.serveArgs()
	require.NoError(t, err)
	return map[string]string{LabelRole: "registry", LabelBinaryDigest: img.Digest, LabelConfig: configDigest(args)}
}

// TestContainerEnsureFresh: nothing there yet. The image is loaded, the
// container run with what the registry needs, older images of the same binary
// path removed, the network joined, and the registry waited for.
func TestContainerEnsureFresh(t *testing.T) {
	port, _ := readyServer(t, false, http.StatusOK)
	c, rec := newContainer(t, port, "")
	img, err := BuildImage(c.Opts.Binary, runtime.GOARCH)
	require.NoError(t, err)
	rec.On("docker", "image", "inspect").Reply(exectest.Fail(1, "Error response from daemon: No such image: "+img.Tag))
	rec.On("docker", "container", "inspect").Reply(exectest.Fail(1, noSuchContainer), inspect(t, c, true, ourLabels(t, c)))
	rec.On("docker", "image", "ls").Reply(exectest.OK(ImageRepo + ":0ld0ld0ld0ld\n" + img.Tag + "\n"))

	ep, err := c.Ensure(context.Background())
	require.NoError(t, err)
	assert.Equal(t, &Endpoint{
		Mode: ModeContainer, HostAddr: fmt.Sprintf("localhost:%d", port), NodeURL: "http://dev-registry:5000",
		NodeHost: "dev-registry:5000", ClusterIP: "172.18.0.3", ClusterPort: 5000,
	}, ep)

	run := fmt.Sprintf("docker run --detach --name dev-registry --restart unless-stopped --network kind "+
		"--publish 127.0.0.1:%d:5000 --volume %s:/var/lib/registry --user %d:%d "+
		"--label io.idpbuilder.role=registry --label io.idpbuilder.cluster=dev "+
		"--label io.idpbuilder.binary-digest=%s --label io.idpbuilder.config=%s "+
		"%s --addr 0.0.0.0:5000 --data-dir /var/lib/registry --rate-limit 0",
		port, c.Opts.DataDir, os.Getuid(), os.Getgid(), img.Digest, ourLabels(t, c)[LabelConfig], img.Tag)
	assert.Equal(t, []string{
		"docker version --format {{.Server.Version}} {{.Server.Os}} {{.Server.Arch}}",
		"docker image inspect --format {{.Id}} " + img.Tag,
		"docker load --quiet",
		"docker container inspect dev-registry",
		run,
		"docker image ls --format {{.Repository}}:{{.Tag}} --filter label=io.idpbuilder.binary-path=" + img.Path + " " + ImageRepo,
		"docker image rm " + ImageRepo + ":0ld0ld0ld0ld",
		"docker network connect kind dev-registry",
		"docker container inspect dev-registry",
	}, rec.Lines())
	assert.DirExists(t, c.Opts.DataDir)

	// What docker load got is an image tarball of our image, under its tag.
	loaded := rec.Find("docker", "load")[0].Stdin
	tag, err := name.NewTag(img.Tag)
	require.NoError(t, err)
	got, err := tarball.Image(func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(string(loaded))), nil }, &tag)
	require.NoError(t, err)
	// The config (which names the layers by their content) is the same: the
	// manifest itself is rewritten by every tarball round trip.
	gotConfig, err := got.ConfigName()
	require.NoError(t, err)
	wantConfig, err := img.Image.ConfigName()
	require.NoError(t, err)
	assert.Equal(t, wantConfig, gotConfig)
}

func TestContainerEnsureReuses(t *testing.T) {
	port, _ := readyServer(t, false, http.StatusOK)
	tests := []struct {
		name    string
		running bool
		want    string // the docker call that differs
	}{
		{name: "running: left alone", running: true},
		{name: "stopped: started", running: false, want: "docker start dev-registry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, rec := newContainer(t, port, "")
			rec.On("docker", "container", "inspect").Reply(inspect(t, c, tt.running, ourLabels(t, c)))
			_, err := c.Ensure(context.Background())
			require.NoError(t, err)
			assert.Empty(t, rec.Find("docker", "load"), "the image is there")
			assert.Empty(t, rec.Find("docker", "run"))
			assert.Empty(t, rec.Find("docker", "rm"))
			if tt.want != "" {
				assert.Contains(t, rec.Lines(), tt.want)
			} else {
				assert.Empty(t, rec.Find("docker", "start"))
			}
		})
	}
}

// TestContainerEnsureReplaces: a container of another binary or other settings
// is replaced; one idpbuilder did not make is left alone with an error.
func TestContainerEnsureReplaces(t *testing.T) {
	port, _ := readyServer(t, false, http.StatusOK)
	c, rec := newContainer(t, port, "")
	old := ourLabels(t, c)
	old[LabelBinaryDigest] = "an-older-binary"
	rec.On("docker", "container", "inspect").Reply(inspect(t, c, true, old), inspect(t, c, true, ourLabels(t, c)))
	_, err := c.Ensure(context.Background())
	require.NoError(t, err)
	assert.Len(t, rec.Find("docker", "rm", "-f", "--volumes", "dev-registry"), 1)
	assert.Len(t, rec.Find("docker", "run"), 1)

	c, rec = newContainer(t, port, "")
	rec.On("docker", "container", "inspect").Reply(inspect(t, c, true, map[string]string{"maintainer": "someone"}))
	_, err = c.Ensure(context.Background())
	assert.ErrorContains(t, err, "a container named dev-registry exists and was not made by idpbuilder")
	assert.Empty(t, rec.Find("docker", "rm"))
}

func TestContainerEnsureFailures(t *testing.T) {
	port, _ := readyServer(t, false, http.StatusOK)
	notReady, _ := readyServer(t, false, http.StatusServiceUnavailable)
	tests := []struct {
		name    string
		port    int
		script  func(*exectest.Recorder, *Container)
		check   func(*testing.T, error)
		wantErr string
	}{
		{name: "no docker", script: func(r *exectest.Recorder, _ *Container) {
			r.On("docker", "version").Reply(exectest.Fail(1, "Cannot connect to the Docker daemon"))
		}, check: func(t *testing.T, err error) { assert.ErrorIs(t, err, docker.ErrNotRunning) }},
		{name: "windows engine", script: func(r *exectest.Recorder, _ *Container) {
			r.On("docker", "version").Reply(exectest.OK("28.2.2 windows amd64"))
		}, check: func(t *testing.T, err error) { assert.ErrorIs(t, err, ErrNoLinuxBinary) }},
		{name: "load fails", script: func(r *exectest.Recorder, _ *Container) {
			r.On("docker", "image", "inspect").Reply(exectest.Fail(1, "No such image"))
			r.On("docker", "load").Reply(exectest.Fail(1, "no space left on device"))
		}, wantErr: "load registry image"},
		{name: "port taken", script: func(r *exectest.Recorder, _ *Container) {
			r.On("docker", "container", "inspect").Reply(exectest.Fail(1, noSuchContainer))
			r.On("docker", "run").Reply(exectest.Fail(125, "docker: Error response from daemon: driver failed programming external connectivity: Bind for 127.0.0.1:5001 failed: port is already allocated."))
		}, check: func(t *testing.T, err error) {
			var pe *PortInUseError
			require.ErrorAs(t, err, &pe)
			assert.Equal(t, port, pe.Port)
			assert.NotContains(t, err.Error(), "--registry-port", "pkg errors name no flags")
		}},
		{name: "run fails", script: func(r *exectest.Recorder, _ *Container) {
			r.On("docker", "container", "inspect").Reply(exectest.Fail(1, noSuchContainer))
			r.On("docker", "run").Reply(exectest.Fail(125, "invalid mount config"))
		}, wantErr: "run registry container"},
		{name: "network gone", script: func(r *exectest.Recorder, c *Container) {
			r.On("docker", "container", "inspect").Reply(inspect(t, c, true, ourLabels(t, c)))
			r.On("docker", "network", "connect").Reply(exectest.Fail(1, "network kind not found"))
		}, wantErr: "connect registry to network kind"},
		{name: "start fails", script: func(r *exectest.Recorder, c *Container) {
			r.On("docker", "container", "inspect").Reply(inspect(t, c, false, ourLabels(t, c)))
			r.On("docker", "start").Reply(exectest.Fail(1, "OCI runtime error"))
		}, wantErr: "start registry container"},
		{name: "not answering", port: notReady, script: func(r *exectest.Recorder, c *Container) {
			r.On("docker", "container", "inspect").Reply(inspect(t, c, true, ourLabels(t, c)))
			r.On("docker", "logs").Reply(exectest.Response{Stderr: "level=ERROR msg=\"storage broken\""})
		}, check: func(t *testing.T, err error) {
			assert.ErrorContains(t, err, "registry container dev-registry is not answering")
			assert.ErrorContains(t, err, "storage broken", "its logs explain why")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := port
			if tt.port != 0 {
				p = tt.port
			}
			c, rec := newContainer(t, p, "")
			c.Ready = 300 * time.Millisecond
			tt.script(rec, c)
			_, err := c.Ensure(context.Background())
			require.Error(t, err)
			if tt.check != nil {
				tt.check(t, err)
			}
			if tt.wantErr != "" {
				assert.ErrorContains(t, err, tt.wantErr)
			}
		})
	}
}

// TestContainerTLS: with a cert dir the container gets it mounted and TLS
// arguments, nodes are told https, and readiness is probed trusting only ca.crt.
func TestContainerTLS(t *testing.T) {
	port, certDir := readyServer(t, true, http.StatusOK)
	c, rec := newContainer(t, port, certDir)
	c.Opts.TLSNames = []string{"dev-registry", "registry.local"}
	c.Opts.Htpasswd, c.Opts.Auth = "/home/u/.config/idpbuilder/htpasswd", auth.PolicyAll
	rec.On("docker", "container", "inspect").Reply(exectest.Fail(1, noSuchContainer), inspect(t, c, true, ourLabels(t, c)))
	ep, err := c.Ensure(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "https://dev-registry:5000", ep.NodeURL)
	run := strings.Join(rec.Find("docker", "run")[0].Argv, " ")
	assert.Contains(t, run, "--volume "+certDir+":/var/lib/idpbuilder/certs --volume /home/u/.config/idpbuilder/htpasswd:/etc/idpbuilder/htpasswd:ro ")
	assert.Contains(t, run, "--tls --cert-dir /var/lib/idpbuilder/certs --cert-check-interval 5s --tls-names dev-registry,registry.local --htpasswd /etc/idpbuilder/htpasswd --auth all")

	// The same server, without its CA: not trusted.
	c.Opts.CertDir = t.TempDir()
	base := fmt.Sprintf("https://127.0.0.1:%d", port)
	assert.ErrorContains(t, registryclient.Ready(context.Background(), registryclient.TrustingCAs(filepath.Join(c.Opts.CertDir, "ca.crt")), base), "certificate")
}

func TestContainerStateStopRemove(t *testing.T) {
	ctx := context.Background()
	c, rec := newContainer(t, 5001, "")
	assert.Equal(t, ModeContainer, c.Mode())
	assert.Equal(t, "dev-registry", c.Describe())

	rec.On("docker", "container", "inspect").Reply(exectest.Fail(1, noSuchContainer))
	state, err := c.State(ctx)
	require.NoError(t, err)
	assert.Equal(t, State{Status: StatusMissing}, state)
	assert.ErrorContains(t, c.Stop(ctx), "no registry container dev-registry")
	_, err = c.Endpoint(ctx)
	assert.ErrorContains(t, err, "registry container dev-registry does not exist")

	rec.On("docker", "container", "inspect").Reply(inspect(t, c, false, nil))
	state, err = c.State(ctx)
	require.NoError(t, err)
	assert.Equal(t, "exited", state.Status)
	require.NoError(t, c.Stop(ctx))
	require.NoError(t, c.Remove(ctx))
	assert.Contains(t, rec.Lines(), "docker stop --time 35 dev-registry", "time for the graceful shutdown")
	assert.Contains(t, rec.Lines(), "docker rm -f --volumes dev-registry")

	rec.On("docker", "container", "inspect").Reply(exectest.Fail(1, "permission denied"))
	_, err = c.State(ctx)
	assert.Error(t, err)
	assert.Error(t, c.Stop(ctx))
	_, err = c.Endpoint(ctx)
	assert.Error(t, err)

	// On another network only: no address the nodes can use.
	c.Opts.Network = "elsewhere"
	rec.On("docker", "container", "inspect").Reply(inspect(t, c, true, nil))
	_, err = c.Endpoint(ctx)
	assert.ErrorContains(t, err, "has no address on network elsewhere")
}

// TestWaitReadyStopsWithContext: a cancelled caller is not kept waiting.
func TestWaitReadyStopsWithContext(t *testing.T) {
	port, _ := readyServer(t, false, http.StatusServiceUnavailable)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := waitReady(ctx, Options{HostPort: port}, time.Minute)
	assert.True(t, errors.Is(err, context.Canceled), err)
}
