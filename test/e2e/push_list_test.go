//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// idpbuilder runs the binary with a fresh HOME.
func idpbuilder(t testing.TB, args ...string) (string, string, int) {
	t.Helper()
	return runBinary(t, append(os.Environ(), "HOME="+t.TempDir()), args...)
}

type listEntry struct {
	Repository string   `json:"repository"`
	Tag        string   `json:"tag"`
	Digest     string   `json:"digest"`
	Size       int64    `json:"size"`
	Platforms  []string `json:"platforms"`
}

func listJSON(t testing.TB, addr string, repo ...string) []listEntry {
	t.Helper()
	out, errOut, code := idpbuilder(t, append([]string{"registry", "list", "--registry-addr", addr, "-o", "json"}, repo...)...)
	if code != 0 {
		t.Fatalf("registry list exited %d: %s", code, errOut)
	}
	var entries []listEntry
	if err := json.Unmarshal([]byte(out), &entries); err != nil {
		t.Fatalf("list output: %v\n%s", err, out)
	}
	return entries
}

// TestRegistryPushAndList: `registry push` of a two-platform OCI layout keeps the
// index whole (list shows both platforms), --platform pushes one image, and image
// tarballs and local Docker images push under their own names.
func TestRegistryPushAndList(t *testing.T) {
	srv := startServer(t, "")
	dir, idx := multiArchLayout(t)
	want, _ := idx.Digest()

	out, errOut, code := idpbuilder(t, "registry", "push", "--registry-addr", srv.Addr, dir, "multi/app:v1")
	if code != 0 {
		t.Fatalf("push layout exited %d: %s", code, errOut)
	}
	if !strings.Contains(out, "multi-platform index") || !strings.Contains(out, want.String()) {
		t.Fatalf("push output: %s", out)
	}
	if !strings.Contains(errOut, "pushed ") {
		t.Fatalf("no progress lines on stderr (not a terminal): %q", errOut)
	}
	entries := listJSON(t, srv.Addr, "multi/app")
	if len(entries) != 1 || entries[0].Digest != want.String() {
		t.Fatalf("list: %+v", entries)
	}
	slices.Sort(entries[0].Platforms)
	if !slices.Equal(entries[0].Platforms, []string{"linux/amd64", "linux/arm64"}) || entries[0].Size <= 0 {
		t.Fatalf("platforms/size: %+v", entries[0])
	}

	// One platform only.
	if _, errOut, code := idpbuilder(t, "registry", "push", "--registry-addr", srv.Addr, "--platform", "linux/arm64", dir, "multi/app:arm64"); code != 0 {
		t.Fatalf("push --platform exited %d: %s", code, errOut)
	}
	im, _ := idx.IndexManifest()
	entries = listJSON(t, srv.Addr, "multi/app")
	if len(entries) != 2 || entries[0].Tag != "arm64" || entries[0].Digest != im.Manifests[1].Digest.String() ||
		!slices.Equal(entries[0].Platforms, []string{"linux/arm64"}) {
		t.Fatalf("after --platform push: %+v", entries)
	}
	// A platform the index lacks is a clear error.
	if _, errOut, code := idpbuilder(t, "registry", "push", "--registry-addr", srv.Addr, "--platform", "linux/s390x", dir, "multi/app:x"); code == 0 || !strings.Contains(errOut, "linux/amd64, linux/arm64") {
		t.Fatalf("missing platform: exit %d, %s", code, errOut)
	}

	// An image tarball, under the name it carries.
	img, _ := random.Image(2048, 2)
	tarPath := filepath.Join(t.TempDir(), "img.tar")
	tag, _ := name.NewTag("example.com/team/tarred:v3")
	if err := tarball.WriteToFile(tarPath, tag, img); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := idpbuilder(t, "registry", "push", "--registry-addr", srv.Addr, tarPath); code != 0 {
		t.Fatalf("push tarball exited %d: %s", code, errOut)
	}
	d, _ := img.Digest()
	if got := srv.manifestDigest(t, "team/tarred", "v3"); got != d.String() {
		t.Fatalf("tarball pushed as %s, want %s", got, d)
	}

	// A local Docker image, by name.
	requireTool(t, "docker")
	importHello(t, "idpbuilder-e2e/pushme:v1")
	out, errOut, code = idpbuilder(t, "registry", "push", "--registry-addr", srv.Addr, "idpbuilder-e2e/pushme:v1")
	if code != 0 {
		t.Fatalf("push docker image exited %d: %s", code, errOut)
	}
	entries = listJSON(t, srv.Addr, "idpbuilder-e2e/pushme")
	if len(entries) != 1 || entries[0].Tag != "v1" || !slices.Equal(entries[0].Platforms, []string{"linux/amd64"}) {
		t.Fatalf("docker image push: %+v (%s)", entries, out)
	}
	// docker pull of what was pushed yields the same content.
	ref := srv.Localhost() + "/idpbuilder-e2e/pushme:v1"
	runCmd(t, 2*time.Minute, "docker", "pull", ref)
	t.Cleanup(func() { _, _ = tryCmd(time.Minute, "docker", "rmi", "-f", ref) })
	if got := strings.TrimSpace(runCmd(t, 2*time.Minute, "docker", "run", "--rm", "--network", "none", ref)); got != helloMessage {
		t.Fatalf("pushed image runs and prints %q", got)
	}

	// Bad sources are usage errors (exit 2) that say what was wrong.
	if _, errOut, code := idpbuilder(t, "registry", "push", "--registry-addr", srv.Addr, "no/such-image:anywhere"); code != 2 || !strings.Contains(errOut, "not a file, a directory, or an image") {
		t.Fatalf("missing source: exit %d: %s", code, errOut)
	}
	if _, errOut, code := idpbuilder(t, "registry", "push", "--registry-addr", srv.Addr, t.TempDir()); code != 2 || !strings.Contains(errOut, "not an OCI image layout") {
		t.Fatalf("plain dir: exit %d: %s", code, errOut)
	}
}
