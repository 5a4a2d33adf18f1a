//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/v1/random"
)

// TestRegistryTrust: `registry trust` installs the CA where containerd and
// skopeo/podman look; both then verify the registry's certificate (no
// skip-verify), and fail without it.
func TestRegistryTrust(t *testing.T) {
	requireTool(t, "ctr")
	requireTool(t, "skopeo")
	sock := containerdSocket(t)
	home := t.TempDir()
	srv := startServerHome(t, home, "", "--tls")
	host := srv.Localhost()
	certDir := filepath.Join(home, ".local", "state", "idpbuilder", "certs")

	// Push over TLS, trusting nothing (setup only; the checks below verify).
	img, _ := random.Image(2048, 1)
	if err := crane.Push(img, srv.Addr+"/trust/app:v1", crane.Insecure); err != nil {
		t.Fatal(err)
	}
	ref := host + "/trust/app:v1"

	root := t.TempDir()
	out, errOut, code := runBinary(t, append(os.Environ(), "HOME="+home), "registry", "trust", host, "--root", root, "--cert-dir", certDir)
	if code != 0 {
		t.Fatalf("trust exited %d: %s", code, errOut)
	}
	for _, p := range []string{"etc/docker/certs.d", "etc/containers/certs.d", "etc/containerd/certs.d"} {
		if !strings.Contains(out, filepath.Join(root, p, host, "ca.crt")) {
			t.Fatalf("trust did not write %s:\n%s", p, out)
		}
	}

	ns := fmt.Sprintf("idpbuilder-e2e-trust-%d", time.Now().UnixNano())
	t.Cleanup(func() {
		_, _ = tryCmd(time.Minute, "ctr", "--address", sock, "--namespace", ns, "images", "rm", "--sync", ref)
		_, _ = tryCmd(time.Minute, "ctr", "--address", sock, "namespaces", "rm", ns)
	})
	// containerd verifies with the installed CA...
	runCmd(t, 2*time.Minute, "ctr", "--address", sock, "--namespace", ns, "images", "pull", "--hosts-dir", filepath.Join(root, "etc", "containerd", "certs.d"), ref)
	// ...and refuses without it.
	bare := t.TempDir()
	if err := os.MkdirAll(filepath.Join(bare, host), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bare, host, "hosts.toml"), []byte(fmt.Sprintf("server = \"https://%[1]s\"\n\n[host.\"https://%[1]s\"]\n  capabilities = [\"pull\", \"resolve\"]\n", host)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := tryCmd(time.Minute, "ctr", "--address", sock, "--namespace", ns+"-bare", "images", "pull", "--hosts-dir", bare, ref)
	if err == nil || !strings.Contains(err.Error(), "x509") {
		t.Fatalf("pull without the CA: %v (want an x509 error)", err)
	}

	// skopeo (like podman) with the containers certs.d dir verifies too.
	certsD := filepath.Join(root, "etc", "containers", "certs.d", host)
	runCmd(t, time.Minute, "skopeo", "--insecure-policy", "inspect", "--cert-dir", certsD, "docker://"+ref)
	if _, err := tryCmd(time.Minute, "skopeo", "--insecure-policy", "inspect", "--cert-dir", t.TempDir(), "docker://"+ref); err == nil || !strings.Contains(err.Error(), "x509") {
		t.Fatalf("skopeo without the CA: %v", err)
	}

	// A hosts.toml someone else wrote is kept.
	own := filepath.Join(root, "etc", "containerd", "certs.d", host, "hosts.toml")
	if err := os.WriteFile(own, []byte("server = \"https://mirror.example\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, code = runBinary(t, append(os.Environ(), "HOME="+home), "registry", "trust", host, "--root", root, "--cert-dir", certDir)
	if data, _ := os.ReadFile(own); code != 0 || !strings.Contains(string(data), "mirror.example") || !strings.Contains(errOut, "kept") {
		t.Fatalf("foreign hosts.toml overwritten (exit %d): %s", code, errOut)
	}
}
