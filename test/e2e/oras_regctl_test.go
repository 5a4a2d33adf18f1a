//go:build e2e

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/v1/random"
)

// toolEnv isolates a client's own config (regctl keeps it under HOME, oras reads
// Docker's) in temporary directories.
func toolEnv(t *testing.T) []string {
	return append(os.Environ(), "HOME="+t.TempDir(), "DOCKER_CONFIG="+t.TempDir())
}

func runTool(t *testing.T, env []string, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env, cmd.Dir = env, dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestOras pushes and pulls an OCI artifact with the oras CLI.
func TestOras(t *testing.T) {
	requireTool(t, "oras")
	srv := startServer(t, "")
	env := toolEnv(t)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "notes.txt"), []byte("release notes for v1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ref := srv.Addr + "/artifacts/notes:v1"
	out := runTool(t, env, src, "oras", "push", "--plain-http", "--artifact-type", "application/vnd.idpbuilder.notes", ref, "notes.txt:text/plain")
	if !strings.Contains(out, "Digest: sha256:") {
		t.Fatalf("oras push output:\n%s", out)
	}
	dst := t.TempDir()
	runTool(t, env, dst, "oras", "pull", "--plain-http", ref)
	got, err := os.ReadFile(filepath.Join(dst, "notes.txt"))
	if err != nil || string(got) != "release notes for v1\n" {
		t.Fatalf("pulled %q, %v", got, err)
	}
	manifest := runTool(t, env, "", "oras", "manifest", "fetch", "--plain-http", ref)
	if !strings.Contains(manifest, "application/vnd.idpbuilder.notes") {
		t.Fatalf("artifactType lost: %s", manifest)
	}
}

// TestRegctl copies, lists and inspects images with regclient's regctl.
func TestRegctl(t *testing.T) {
	requireTool(t, "regctl")
	srv := startServer(t, "")
	env := toolEnv(t)
	img, _ := random.Image(4096, 2)
	if err := crane.Push(img, srv.Addr+"/regctl/src:v1", crane.Insecure); err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	runTool(t, env, "", "regctl", "registry", "set", "--tls", "disabled", srv.Addr)
	if got := strings.TrimSpace(runTool(t, env, "", "regctl", "image", "digest", srv.Addr+"/regctl/src:v1")); got != want.String() {
		t.Fatalf("regctl digest %s, want %s", got, want)
	}
	runTool(t, env, "", "regctl", "image", "copy", srv.Addr+"/regctl/src:v1", srv.Addr+"/regctl/dst:copied")
	if got := strings.TrimSpace(runTool(t, env, "", "regctl", "tag", "ls", srv.Addr+"/regctl/dst")); got != "copied" {
		t.Fatalf("regctl tag ls: %q", got)
	}
	if got, err := crane.Digest(srv.Addr+"/regctl/dst:copied", crane.Insecure); err != nil || got != want.String() {
		t.Fatalf("copied digest %s (%v), want %s", got, err, want)
	}
	runTool(t, env, "", "regctl", "tag", "delete", srv.Addr+"/regctl/dst:copied")
	if out := strings.TrimSpace(runTool(t, env, "", "regctl", "tag", "ls", srv.Addr+"/regctl/dst")); out != "" {
		t.Fatalf("tag still listed after delete: %q", out)
	}
}
