//go:build e2e

package e2e

import (
	"archive/tar"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

const helloMessage = "hello from an idpbuilder e2e image"

// helloTarball builds testdata/e2eapp (static) and packs it as /e2eapp in a
// tarball for `docker import`: no base image, nothing from Docker Hub.
var helloTarball = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "idpbuilder-e2e-app-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "e2eapp")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "./test/e2e/testdata/e2eapp")
	build.Dir = moduleRoot
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build e2eapp: %v\n%s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return "", err
	}
	tarPath := filepath.Join(dir, "e2eapp.tar")
	f, err := os.Create(tarPath)
	if err != nil {
		return "", err
	}
	tw := tar.NewWriter(f)
	if err := tw.WriteHeader(&tar.Header{Name: "e2eapp", Mode: 0o755, Size: int64(len(data)), ModTime: time.Unix(0, 0)}); err != nil {
		return "", err
	}
	if _, err := tw.Write(data); err != nil {
		return "", err
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	return tarPath, f.Close()
})

// importHello imports the e2eapp tarball into the Docker engine as tag.
func importHello(t *testing.T, tag string) {
	t.Helper()
	tarPath, err := helloTarball()
	if err != nil {
		t.Fatal(err)
	}
	runCmd(t, 2*time.Minute, "docker", "import", "--change", `ENTRYPOINT ["/e2eapp"]`, tarPath, tag)
	t.Cleanup(func() { _, _ = tryCmd(time.Minute, "docker", "rmi", "-f", tag) })
}

var pushDigestRE = regexp.MustCompile(`digest: (sha256:[0-9a-f]{64})`)
var pullDigestRE = regexp.MustCompile(`Digest: (sha256:[0-9a-f]{64})`)

// TestDockerPushPullRun: the product promise on the laptop side. An image built
// locally is pushed with the real docker CLI, removed, pulled back and run; the
// digest is the same at every step.
func TestDockerPushPullRun(t *testing.T) {
	requireTool(t, "docker")
	if _, err := tryCmd(30*time.Second, "docker", "info"); err != nil {
		t.Fatalf("Docker engine not reachable (hack/test-all.sh starts dockerd): %v", err)
	}
	srv := startServer(t, "")
	local := "idpbuilder-e2e/hello:v1"
	remote := srv.Localhost() + "/e2e/hello:v1"
	importHello(t, local)
	pushed := dockerPush(t, local, remote)
	if got := srv.manifestDigest(t, "e2e/hello", "v1"); got != pushed {
		t.Fatalf("registry serves %s, docker pushed %s", got, pushed)
	}

	// Remove every local copy so the pull really goes to the registry.
	runCmd(t, time.Minute, "docker", "rmi", "-f", remote, local)
	out := runCmd(t, 5*time.Minute, "docker", "pull", remote)
	m := pullDigestRE.FindStringSubmatch(out)
	if m == nil || m[1] != pushed {
		t.Fatalf("docker pull digest = %v, want %s\n%s", m, pushed, out)
	}
	repoDigests := runCmd(t, time.Minute, "docker", "image", "inspect", "--format", "{{json .RepoDigests}}", remote)
	if !strings.Contains(repoDigests, "e2e/hello@"+pushed) {
		t.Fatalf("RepoDigests %s lacks %s", repoDigests, pushed)
	}

	out = runCmd(t, 2*time.Minute, "docker", "run", "--rm", "--network", "none", remote)
	if strings.TrimSpace(out) != helloMessage {
		t.Fatalf("docker run printed %q, want %q", out, helloMessage)
	}
}
