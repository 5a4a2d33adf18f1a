//go:build e2e

package e2e

import (
	"testing"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/v1/random"
)

// TestRestartKeepsImages stops a real `registry serve` with SIGTERM (it must exit 0)
// and starts a new one on the same data dir: every image is still there with the
// same digest, and the new process can pull all of its layers.
func TestRestartKeepsImages(t *testing.T) {
	dir := t.TempDir()
	first := startServer(t, dir)
	want := map[string]string{}
	for _, repo := range []string{"keep/a:v1", "keep/b:v1", "keep/b:v2"} {
		img, err := random.Image(8192, 2)
		if err != nil {
			t.Fatal(err)
		}
		if err := crane.Push(img, first.Addr+"/"+repo, crane.Insecure); err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		want[repo] = d.String()
	}
	first.Stop(t)

	second := startServer(t, dir)
	for repo, digest := range want {
		img, err := crane.Pull(second.Addr+"/"+repo, crane.Insecure)
		if err != nil {
			t.Fatalf("pull %s after restart: %v", repo, err)
		}
		got, _ := img.Digest()
		if got.String() != digest {
			t.Fatalf("%s: digest %s after restart, want %s", repo, got, digest)
		}
		layers, _ := img.Layers()
		for _, l := range layers {
			rc, err := l.Compressed()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := drain(rc); err != nil {
				t.Fatalf("%s: layer after restart: %v", repo, err)
			}
			rc.Close()
		}
	}
}
