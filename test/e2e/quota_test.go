//go:build e2e

package e2e

import (
	"errors"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// TestQuotaOnline runs a real `registry serve --quota 3MiB --repo-quota 2MiB`
// and pushes with real clients: a push over the repository quota and one
// over the registry quota are refused with 403 DENIED saying usage, request
// and limit; `du -sb` of the data dir shows they left nothing but what the
// registry accepted in requests of their own; copies within the registry
// are counted once; and after the images are deleted (and the registry
// restarted, which reads usage from the store) the refused pushes pass.
func TestQuotaOnline(t *testing.T) {
	dir := t.TempDir()
	args := []string{"--quota", "3MiB", "--repo-quota", "2MiB"}
	srv := startServer(t, dir, args...)

	a := randomImage(t, 1<<20)
	push(t, srv, "team/a:v1", a)

	// Over the repository quota: 1 MiB stored + 1.5 MiB > 2 MiB.
	b := randomImage(t, 3<<19)
	before := snapshot(t, dir)
	err := crane.Push(b, srv.Addr+"/team/a:v2", crane.Insecure)
	requireDenied(t, err, `storage quota of repository "team/a": 1 MiB used`, "limit 2 MiB")
	requireOnlyAccepted(t, srv, dir, before, "team/a", b, err)

	// Over the registry quota: 2.5 MiB stored + 1 MiB > 3 MiB.
	c := randomImage(t, 3<<19)
	push(t, srv, "team/c:v1", c)
	d := randomImage(t, 1<<20)
	before = snapshot(t, dir)
	err = crane.Push(d, srv.Addr+"/team/d:v1", crane.Insecure)
	requireDenied(t, err, "the registry's storage quota: 2.5 MiB used", "limit 3 MiB")
	requireOnlyAccepted(t, srv, dir, before, "team/d", d, err)

	// A copy within the registry mounts the blobs it has: stored once, it
	// passes although the registry is nearly full.
	before = snapshot(t, dir)
	if err := crane.Copy(srv.Addr+"/team/a:v1", srv.Addr+"/team/e:v1", crane.Insecure); err != nil {
		t.Fatalf("copy within the registry: %v", err)
	}
	if grown := sum(snapshot(t, dir)) - sum(before); grown > 64<<10 {
		t.Fatalf("the copy grew the data dir by %d bytes: its blobs were stored again", grown)
	}
	pullValidate(t, srv, "team/e:v1")

	// Other clients show the refusal too.
	requireTool(t, "oras")
	blob := filepath.Join(t.TempDir(), "big.bin")
	if err := os.WriteFile(blob, make([]byte, 3<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("oras", "push", "--plain-http", srv.Addr+"/team/oras:v1", "big.bin")
	cmd.Env, cmd.Dir = toolEnv(t), filepath.Dir(blob)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "denied: this write would pass the registry's storage quota: 2.5 MiB used, 3 MiB requested, limit 3 MiB") {
		t.Fatalf("oras push over the quota: %v\n%s", err, out)
	}
	t.Logf("oras shows:\n%s", out)

	// Delete what is in the way (GC would also free the blob data; the
	// quota is freed by the delete).
	deleteImage(t, srv, "team/c", "v1", c)
	deleteImage(t, srv, "team/a", "v1", a)
	deleteImage(t, srv, "team/e", "v1", a)
	// A restart reads the usage from the store.
	srv.Stop(t)
	srv = startServer(t, dir, args...)
	push(t, srv, "team/d:v1", d)
	push(t, srv, "team/a:v2", b)
	for _, ref := range []string{"team/d:v1", "team/a:v2"} {
		pullValidate(t, srv, ref)
	}
}

func randomImage(t testing.TB, layerSize int64) v1.Image {
	t.Helper()
	img, err := random.Image(layerSize, 1)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func push(t testing.TB, srv *server, ref string, img v1.Image) {
	t.Helper()
	if err := crane.Push(img, srv.Addr+"/"+ref, crane.Insecure); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}

func pullValidate(t testing.TB, srv *server, ref string) {
	t.Helper()
	img, err := crane.Pull(srv.Addr+"/"+ref, crane.Insecure)
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatalf("%s does not validate: %v", ref, err)
	}
}

// requireDenied checks a push failed with 403 DENIED and a message with
// every part.
func requireDenied(t testing.TB, err error, parts ...string) {
	t.Helper()
	var terr *transport.Error
	if !errors.As(err, &terr) {
		t.Fatalf("want a registry error, got %v", err)
	}
	if terr.StatusCode != http.StatusForbidden || len(terr.Errors) != 1 || terr.Errors[0].Code != "DENIED" {
		t.Fatalf("want 403 DENIED, got %v", err)
	}
	for _, p := range parts {
		if !strings.Contains(terr.Errors[0].Message, p) {
			t.Errorf("message %q does not say %q", terr.Errors[0].Message, p)
		}
	}
}

// snapshot is every path under dir with its apparent size (what `du -b`
// adds up: files and directories).
func snapshot(t testing.TB, dir string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		out[p] = fi.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sum(snap map[string]int64) int64 {
	var n int64
	for _, s := range snap {
		n += s
	}
	return n
}

// settled is the snapshot of dir once the registry has finished with it:
// requests a client abandoned may still be running on the server when the
// client returns. It is taken when two walks with `du -sb` between them
// agree, and du agrees with them.
func settled(t testing.TB, dir string) map[string]int64 {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		first := snapshot(t, dir)
		du := duBytes(t, dir)
		second := snapshot(t, dir)
		if maps.Equal(first, second) && du == sum(second) {
			return second
		}
		if time.Now().After(deadline) {
			t.Fatalf("the data dir did not settle: du -sb %d bytes, walks %d and %d", du, sum(first), sum(second))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// duBytes is `du -sb dir`.
func duBytes(t testing.TB, dir string) int64 {
	t.Helper()
	out := runCmd(t, time.Minute, "du", "-sb", dir)
	n, err := strconv.ParseInt(strings.Fields(out)[0], 10, 64)
	if err != nil {
		t.Fatalf("du -sb: %q: %v", out, err)
	}
	return n
}

// requireOnlyAccepted checks what a refused push left in the data dir: `du
// -sb` grew by exactly the new paths, and each of them is
//   - a blob of the image the registry accepted before the refusal (the
//     client sends the config and layers concurrently; the small config may
//     be stored before the layer is refused) with its link in repo,
//   - a directory the accepted upload start created (the repository's
//     directories, empty),
//   - or an upload the client abandoned when the push failed (accepted
//     chunks; upload purging deletes those).
//
// The refused upload itself is gone.
func requireOnlyAccepted(t testing.TB, srv *server, dir string, before map[string]int64, repo string, img v1.Image, refused error) {
	t.Helper()
	after := settled(t, dir)
	accepted := map[string]bool{}
	blobs, err := imageBlobs(img)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range blobs {
		resp, _ := registryDo(t, http.MethodHead, "http://"+srv.Addr+"/v2/"+repo+"/blobs/"+h.String(), "", nil)
		if resp.StatusCode == http.StatusOK {
			accepted[h.Hex] = true
		}
	}
	var terr *transport.Error
	if !errors.As(refused, &terr) || terr.Request == nil {
		t.Fatalf("no request in %v", refused)
	}
	refusedID := path.Base(terr.Request.URL.Path)
	repoDir := filepath.Join(dir, "docker/registry/v2/repositories", filepath.FromSlash(repo))
	if _, err := os.Stat(filepath.Join(repoDir, "_uploads", refusedID)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the refused upload %s is still there (%v)", refusedID, err)
	}
	for p, size := range after {
		old, existed := before[p]
		if existed {
			if fi, err := os.Stat(p); err == nil && !fi.IsDir() && size != old {
				t.Errorf("%s changed size from %d to %d", p, old, size)
			}
			continue
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case acceptedPath(rel, repo, accepted):
		case p == repoDir || strings.HasPrefix(repoDir, p+string(filepath.Separator)) || p == filepath.Join(repoDir, "_uploads"):
			if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
				t.Errorf("%s: new, and not a directory", rel)
			}
		case strings.HasPrefix(p, filepath.Join(repoDir, "_uploads")+string(filepath.Separator)):
			t.Logf("%s (%d bytes): an upload the client abandoned when the push failed", rel, size)
		default:
			t.Errorf("%s (%d bytes) was left behind by the refused push", rel, size)
		}
	}
	t.Logf("du -sb: %d bytes before the refused push, %d after; %d of its blobs were accepted first", sum(before), sum(after), len(accepted))
}

// acceptedPath reports whether rel is part of an accepted blob: its data in
// the blob store or its link in repo.
func acceptedPath(rel, repo string, accepted map[string]bool) bool {
	parts := strings.Split(filepath.ToSlash(rel), "/")
	// docker/registry/v2/blobs/sha256/xx/<hex>[/data]
	if len(parts) >= 6 && parts[3] == "blobs" {
		if len(parts) == 6 {
			return true // the two-letter fan-out directory
		}
		return accepted[parts[6]]
	}
	// docker/registry/v2/repositories/<repo>/_layers/sha256/<hex>[/link]
	prefix := "docker/registry/v2/repositories/" + repo + "/_layers/"
	if r, ok := strings.CutPrefix(filepath.ToSlash(rel), prefix); ok {
		ps := strings.Split(r, "/")
		return len(ps) == 1 || accepted[ps[1]]
	}
	return filepath.ToSlash(rel) == "docker/registry/v2/repositories/"+repo+"/_layers"
}

// deleteImage deletes a tagged image's manifest and unlinks its blobs from
// the repository, through the registry API.
func deleteImage(t testing.TB, srv *server, repo, tag string, img v1.Image) {
	t.Helper()
	d := srv.manifestDigest(t, repo, tag)
	if resp, body := registryDo(t, http.MethodDelete, "http://"+srv.Addr+"/v2/"+repo+"/manifests/"+d, "", nil); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("delete %s@%s: %s %s", repo, d, resp.Status, body)
	}
	blobs, err := imageBlobs(img)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range blobs {
		if resp, body := registryDo(t, http.MethodDelete, "http://"+srv.Addr+"/v2/"+repo+"/blobs/"+h.String(), "", nil); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("delete blob %s of %s: %s %s", h, repo, resp.Status, body)
		}
	}
}
