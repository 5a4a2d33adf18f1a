//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/idpbuilder/idpbuilder/pkg/docker"
	"github.com/idpbuilder/idpbuilder/pkg/registryruntime"
)

// freePort returns a loopback port that is free right now.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// testNetwork creates a docker network for the test and removes it afterwards.
func testNetwork(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("idpbuilder-e2e-%d", time.Now().UnixNano())
	runCmd(t, time.Minute, "docker", "network", "create", name)
	t.Cleanup(func() { _, _ = tryCmd(time.Minute, "docker", "network", "rm", name) })
	return name
}

// TestRegistryContainer runs the registry as a container built from the idpbuilder
// binary itself (no image pulled), published on 127.0.0.1 only; it is reused when
// right, survives a crash (restart policy) with its data, and keeps images across
// removal because storage is a bind mount.
func TestRegistryContainer(t *testing.T) {
	requireTool(t, "docker")
	ctx := context.Background()
	d := &docker.Client{}
	rt := &registryruntime.Container{Docker: d, Opts: registryruntime.Options{
		// The container is <cluster>-registry.
		Cluster:  fmt.Sprintf("idpbuilder-e2e-%d", time.Now().UnixNano()),
		Network:  testNetwork(t),
		HostPort: freePort(t),
		DataDir:  t.TempDir(),
		Binary:   binary,
	}}
	t.Cleanup(func() { _ = rt.Remove(context.Background()) })

	ep, err := rt.Ensure(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ct, err := d.InspectContainer(ctx, rt.Opts.ContainerName())
	if err != nil || ct == nil {
		t.Fatalf("inspect: %v", err)
	}
	if !strings.HasPrefix(ct.Image, registryruntime.ImageRepo+":") {
		t.Fatalf("container runs %s", ct.Image)
	}
	// Images of earlier builds of this binary (same path) are cleaned up, unless
	// a container still uses one; other binaries' images on the same engine
	// (a developer's build, another CI run) are theirs to clean.
	tags, err := d.ImageTags(ctx, registryruntime.ImageRepo)
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range tags {
		if tag == ct.Image {
			continue
		}
		path := strings.TrimSpace(runCmd(t, time.Minute, "docker", "image", "inspect", "--format",
			`{{index .Config.Labels "`+registryruntime.LabelBinaryPath+`"}}`, tag))
		if path != binary {
			continue
		}
		if users := runCmd(t, time.Minute, "docker", "ps", "-a", "-q", "--filter", "ancestor="+tag); strings.TrimSpace(users) == "" {
			t.Errorf("unused old registry image %s was left behind", tag)
		}
	}
	ports := runCmd(t, time.Minute, "docker", "port", rt.Opts.ContainerName())
	if !strings.Contains(ports, fmt.Sprintf("127.0.0.1:%d", rt.Opts.HostPort)) || strings.Contains(ports, "0.0.0.0") {
		t.Fatalf("registry must be published on 127.0.0.1 only, got:\n%s", ports)
	}
	if ep.ClusterIP == "" || ep.NodeHost != rt.Opts.ContainerName()+":5000" {
		t.Fatalf("endpoint %+v", ep)
	}

	ref := fmt.Sprintf("127.0.0.1:%d/e2e/in-container:v1", rt.Opts.HostPort)
	img, _ := random.Image(4096, 2)
	if err := crane.Push(img, ref, crane.Insecure); err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()

	// Ensure again: nothing to do, same container.
	if _, err := rt.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	again, _ := d.InspectContainer(ctx, rt.Opts.ContainerName())
	if again.ID != ct.ID {
		t.Fatalf("Ensure replaced a healthy container")
	}

	// A crash of the registry process: Docker restarts it, data intact.
	pid := strings.TrimSpace(runCmd(t, time.Minute, "docker", "inspect", "--format", "{{.State.Pid}}", rt.Opts.ContainerName()))
	runCmd(t, time.Minute, "kill", "-9", pid)
	waitRestarted(t, d, rt.Opts.ContainerName(), 0)
	if _, err := rt.Ensure(ctx); err != nil { // waits for readiness
		t.Fatal(err)
	}
	if got, err := crane.Digest(ref, crane.Insecure); err != nil || got != want.String() {
		t.Fatalf("after crash: %s, %v; want %s", got, err, want)
	}

	// Removed and recreated on the same data dir: the image is still there.
	if err := rt.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := crane.Digest(ref, crane.Insecure); err != nil || got != want.String() {
		t.Fatalf("after recreate: %s, %v; want %s", got, err, want)
	}
}

// waitRestarted waits until Docker has restarted the container more than before times.
func waitRestarted(t testing.TB, d *docker.Client, name string, before int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		ct, err := d.InspectContainer(context.Background(), name)
		if err == nil && ct != nil && ct.RestartCount > before && ct.Running {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	ct, _ := d.InspectContainer(context.Background(), name)
	t.Fatalf("container %s was not restarted by Docker: %+v", name, ct)
}

// TestRegistryContainerPortTaken: a busy port is explained, and no half-made
// container is left behind.
func TestRegistryContainerPortTaken(t *testing.T) {
	requireTool(t, "docker")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	d := &docker.Client{}
	rt := &registryruntime.Container{Docker: d, Opts: registryruntime.Options{
		Cluster:  fmt.Sprintf("idpbuilder-e2e-busy-%d", time.Now().UnixNano()),
		Network:  testNetwork(t),
		HostPort: busy.Addr().(*net.TCPAddr).Port,
		DataDir:  t.TempDir(),
		Binary:   binary,
	}}
	t.Cleanup(func() { _ = rt.Remove(context.Background()) })
	_, err = rt.Ensure(context.Background())
	var inUse *registryruntime.PortInUseError
	if !errors.As(err, &inUse) || !strings.Contains(err.Error(), "already in use") {
		t.Fatalf("Ensure on a busy port: %v", err)
	}
	if ct, _ := d.InspectContainer(context.Background(), rt.Opts.ContainerName()); ct != nil {
		t.Fatalf("a container was left behind: %+v", ct)
	}
}
