//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// TestSkopeoCopyInspect copies a two-platform OCI layout into the registry with
// skopeo, inspects it, and copies it back out; digests survive every hop.
func TestSkopeoCopyInspect(t *testing.T) {
	requireTool(t, "skopeo")
	srv := startServer(t, "")
	idx := multiArchIndex(t)
	want, _ := idx.Digest()

	// An OCI layout whose index.json names the multi-arch index "v1", as skopeo expects.
	p := writeLayout(t, idx, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "v1"}))
	dest := "docker://" + srv.Addr + "/skopeo/multi:v1"
	runCmd(t, 5*time.Minute, "skopeo", "--insecure-policy", "copy", "--all", "--preserve-digests",
		"--dest-tls-verify=false", "oci:"+p+":v1", dest)

	var insp struct {
		Digest       string // of what the reference names: the index
		Architecture string // of the image selected for --override-arch
		Layers       []string
	}
	out := runCmd(t, time.Minute, "skopeo", "--insecure-policy", "inspect", "--tls-verify=false", "--override-arch", "arm64", dest)
	if err := json.Unmarshal([]byte(out), &insp); err != nil {
		t.Fatalf("inspect output: %v\n%s", err, out)
	}
	raw := runCmd(t, time.Minute, "skopeo", "--insecure-policy", "inspect", "--raw", "--tls-verify=false", dest)
	wantRaw, _ := idx.RawManifest()
	if raw != string(wantRaw) {
		t.Fatalf("raw index differs from what was pushed:\n got %s\nwant %s", raw, wantRaw)
	}
	if got := srv.manifestDigest(t, "skopeo/multi", "v1"); got != want.String() {
		t.Fatalf("registry digest %s, want %s", got, want)
	}
	if insp.Digest != want.String() || insp.Architecture != "arm64" {
		t.Fatalf("skopeo inspect: digest %s arch %s; want %s arm64", insp.Digest, insp.Architecture, want)
	}
	im, _ := idx.IndexManifest()
	armImg, _ := idx.Image(im.Manifests[1].Digest)
	armLayers, _ := armImg.Layers()
	if len(insp.Layers) != len(armLayers) {
		t.Fatalf("skopeo inspect shows %d layers, arm64 image has %d", len(insp.Layers), len(armLayers))
	}
	for i, l := range armLayers {
		d, _ := l.Digest()
		if insp.Layers[i] != d.String() {
			t.Fatalf("layer %d: %s, want %s", i, insp.Layers[i], d)
		}
	}

	back := filepath.Join(t.TempDir(), "back")
	runCmd(t, 5*time.Minute, "skopeo", "--insecure-policy", "copy", "--all", "--preserve-digests",
		"--src-tls-verify=false", dest, "oci:"+back+":v1")
	lp, err := layout.FromPath(back)
	if err != nil {
		t.Fatal(err)
	}
	outer, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	om, _ := outer.IndexManifest()
	if len(om.Manifests) != 1 || om.Manifests[0].Digest != want {
		t.Fatalf("copied-back layout index = %+v, want one entry %s", om.Manifests, want)
	}
}

// TestContainerdPullWithHostsDir pulls an image pushed by Docker with containerd's
// ctr through a hosts.toml that maps localhost:<port> to the registry: the same
// mechanism Kind nodes use (config_path + /etc/containerd/certs.d).
func TestContainerdPullWithHostsDir(t *testing.T) {
	requireTool(t, "ctr")
	requireTool(t, "docker")
	sock := containerdSocket(t)
	srv := startServer(t, "")

	local := "idpbuilder-e2e/hello:ctr"
	remote := srv.Localhost() + "/e2e/ctr:v1"
	importHello(t, local)
	pushed := dockerPush(t, local, remote)

	hosts := t.TempDir()
	hostDir := filepath.Join(hosts, srv.Localhost())
	if err := os.MkdirAll(hostDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// With a hosts dir, containerd no longer assumes plain HTTP for localhost:
	// the host entry must say http explicitly.
	toml := fmt.Sprintf("server = \"http://%[1]s\"\n\n[host.\"http://%[1]s\"]\n  capabilities = [\"pull\", \"resolve\"]\n", srv.Localhost())
	if err := os.WriteFile(filepath.Join(hostDir, "hosts.toml"), []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}

	ns := fmt.Sprintf("idpbuilder-e2e-%d", time.Now().UnixNano())
	ctr := func(args ...string) string {
		return runCmd(t, 5*time.Minute, "ctr", append([]string{"--address", sock, "--namespace", ns}, args...)...)
	}
	t.Cleanup(func() {
		_, _ = tryCmd(time.Minute, "ctr", "--address", sock, "--namespace", ns, "images", "rm", "--sync", remote)
		_, _ = tryCmd(time.Minute, "ctr", "--address", sock, "namespaces", "rm", ns)
	})
	ctr("images", "pull", "--hosts-dir", hosts, remote)
	list := ctr("images", "ls", "name=="+remote)
	if !strings.Contains(list, pushed) {
		t.Fatalf("ctr images ls does not show %s:\n%s", pushed, list)
	}
	// The content verifies and the layer unpacked for this platform.
	check := ctr("images", "check", "name=="+remote)
	if !strings.Contains(check, "complete") {
		t.Fatalf("ctr images check:\n%s", check)
	}
}

// containerdSocket finds a running containerd: $CONTAINERD_ADDRESS, the system
// socket, or the one dockerd manages itself.
func containerdSocket(t testing.TB) string {
	t.Helper()
	cands := []string{os.Getenv("CONTAINERD_ADDRESS"), "/run/containerd/containerd.sock", "/var/run/docker/containerd/containerd.sock"}
	for _, c := range cands {
		if c == "" {
			continue
		}
		if _, err := os.Stat(c); err == nil {
			if _, err := tryCmd(30*time.Second, "ctr", "--address", c, "version"); err == nil {
				return c
			}
		}
	}
	t.Fatalf("no running containerd found (tried %v): hack/test-all.sh starts one", cands[1:])
	return ""
}
