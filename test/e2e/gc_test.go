//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/idpbuilder/idpbuilder/pkg/registryapi"
)

// pushedImage is an image a writer was told was pushed.
type pushedImage struct {
	ref    string // repo:tag
	digest v1.Hash
	index  bool
	blobs  []v1.Hash // config and layers (of every child, for an index)
}

// imageBlobs lists an image's config and layers.
func imageBlobs(img v1.Image) ([]v1.Hash, error) {
	cfg, err := img.ConfigName()
	if err != nil {
		return nil, err
	}
	out := []v1.Hash{cfg}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

func indexBlobs(idx v1.ImageIndex) ([]v1.Hash, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var out []v1.Hash
	for _, m := range im.Manifests {
		img, err := idx.Image(m.Digest)
		if err != nil {
			return nil, err
		}
		bs, err := imageBlobs(img)
		if err != nil {
			return nil, err
		}
		out = append(out, bs...)
	}
	return out, nil
}

// gcRun runs `idpbuilder registry gc` against the server and decodes its JSON.
func gcRun(t testing.TB, s *server, args ...string) registryapi.GCResult {
	t.Helper()
	out, errOut, code := runBinary(t, append(os.Environ(), "HOME="+t.TempDir()),
		append([]string{"registry", "gc", "--registry-addr", s.Addr, "-o", "json"}, args...)...)
	if code != 0 {
		t.Fatalf("registry gc %v exited %d\nstdout:\n%s\nstderr:\n%s", args, code, out, errOut)
	}
	var res registryapi.GCResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("registry gc output: %v\n%s", err, out)
	}
	if res.Error != "" {
		t.Fatalf("registry gc %v: %s", args, res.Error)
	}
	return res
}

// blobStoreSize is `du -sb` of the registry's blob store.
func blobStoreSize(t testing.TB, s *server) int64 {
	t.Helper()
	out := runCmd(t, time.Minute, "du", "-sb", filepath.Join(s.DataDir, "docker", "registry", "v2", "blobs"))
	n, err := strconv.ParseInt(strings.Fields(out)[0], 10, 64)
	if err != nil {
		t.Fatalf("du output %q: %v", out, err)
	}
	return n
}

func deleteByDigest(addr, repo string, d v1.Hash) error {
	req, err := http.NewRequest(http.MethodDelete, "http://"+addr+"/v2/"+repo+"/manifests/"+d.String(), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("DELETE %s@%s: %s", repo, d, resp.Status)
	}
	return nil
}

func httpStatus(t testing.TB, method, url string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = drain(resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestGCOnline: a real `registry serve`, three writers pushing distinct images
// (and deleting some of them again) in a loop while `registry gc --grace 0s`
// runs five times back to back. Afterwards every image a writer was told was
// pushed pulls and validates; the blobs of deleted images answer 404 to HEAD
// and GET and are gone from disk; a dry run reports exactly what the real run
// then deletes, whose freed bytes are what `du -sb` of the blob store drops
// by; a signature oras attached to a kept image survives, that of a deleted
// image goes.
func TestGCOnline(t *testing.T) {
	requireTool(t, "oras")
	requireTool(t, "du")
	s := startServer(t, "")
	opts := []name.Option{name.Insecure}

	// A kept image and a deleted one, each signed with oras.
	push := func(ref string, img v1.Image) v1.Hash {
		t.Helper()
		r, err := name.ParseReference(s.Addr+"/"+ref, opts...)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(r, img); err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	kept, err := random.Image(2048, 2)
	if err != nil {
		t.Fatal(err)
	}
	gone, err := random.Image(2048, 2)
	if err != nil {
		t.Fatal(err)
	}
	keptDigest := push("keep/app:v1", kept)
	goneDigest := push("gone/app:v1", gone)
	env := toolEnv(t)
	src := t.TempDir()
	attach := func(ref, content string) string {
		t.Helper()
		file := fmt.Sprintf("sig-%d.txt", time.Now().UnixNano())
		if err := os.WriteFile(filepath.Join(src, file), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		out := runTool(t, env, src, "oras", "attach", "--plain-http", "--artifact-type", "application/vnd.example.signature",
			"--format", "json", s.Addr+"/"+ref, file+":text/plain")
		var d struct{ Digest string }
		if err := json.Unmarshal([]byte(out), &d); err != nil || d.Digest == "" {
			t.Fatalf("oras attach output: %v\n%s", err, out)
		}
		return d.Digest
	}
	keptSig := attach("keep/app:v1", "signature of the kept image")
	goneSig := attach("gone/app:v1", "signature of the deleted image")
	if err := deleteByDigest(s.Addr, "gone/app", goneDigest); err != nil {
		t.Fatal(err)
	}
	goneBlobs, err := imageBlobs(gone)
	if err != nil {
		t.Fatal(err)
	}
	var collected []pushedImage // deleted, so to be collected
	collected = append(collected, pushedImage{ref: "gone/app:v1", digest: goneDigest, blobs: goneBlobs})

	// A store with some content, so that each run's mark takes a while.
	var pushed []pushedImage
	var baseWG sync.WaitGroup
	var baseMu sync.Mutex
	for w := range 4 {
		baseWG.Go(func() {
			for n := w; n < 60; n += 4 {
				p, err := writerPush(s.Addr, 10+w, n)
				if err != nil {
					t.Error(err)
					return
				}
				baseMu.Lock()
				pushed = append(pushed, p)
				baseMu.Unlock()
			}
		})
	}
	baseWG.Wait()
	if t.Failed() {
		t.FailNow()
	}

	// Three writers push until the five runs are over.
	var (
		stop     atomic.Bool
		mu       sync.Mutex
		failures []string
		during   atomic.Int64 // pushes that finished while collections ran
		gcActive atomic.Bool
		wg       sync.WaitGroup
	)
	first := make(chan struct{})
	var firstOnce sync.Once
	for w := range 3 {
		wg.Go(func() {
			for n := 0; !stop.Load(); n++ {
				p, err := writerPush(s.Addr, w, n)
				// A refused push succeeds when pushed again (its blobs are
				// uploaded anew).
				for try := 0; err != nil && try < 3; try++ {
					mu.Lock()
					failures = append(failures, p.ref+": "+err.Error())
					mu.Unlock()
					p, err = writerPush(s.Addr, w, n)
				}
				if err != nil {
					t.Errorf("%s: pushed four times, refused every time: %v", p.ref, err)
					return
				}
				if gcActive.Load() {
					during.Add(1)
				}
				deleted := !p.index && n%4 == 3
				if deleted {
					// Deleted again: it is garbage now.
					if err := deleteByDigest(s.Addr, fmt.Sprintf("w%d/img", w), p.digest); err != nil {
						t.Error(err)
						return
					}
				}
				mu.Lock()
				if deleted {
					collected = append(collected, p)
				} else {
					pushed = append(pushed, p)
				}
				mu.Unlock()
				firstOnce.Do(func() { close(first) })
			}
		})
	}

	// Five collections back to back while they push.
	<-first
	gcActive.Store(true)
	var runs []registryapi.GCResult
	for i := range 5 {
		args := []string{"--grace", "0s"}
		if i%2 == 1 {
			args = append(args, "--untagged")
		}
		runs = append(runs, gcRun(t, s, args...))
	}
	gcActive.Store(false)
	stop.Store(true)
	wg.Wait()
	for i, r := range runs {
		t.Logf("run %d: %d manifests, %d blobs, %d bytes in %d ms (sweep %d ms)", i+1, len(r.Manifests), len(r.Blobs), r.BytesFreed, r.DurationMS, r.SweepMS)
	}
	t.Logf("%d images pushed (%d while collecting), %d deleted; %d pushes refused", len(pushed), during.Load(), len(collected), len(failures))
	if during.Load() == 0 {
		t.Fatal("no push finished while the collections ran: the test proves nothing")
	}
	// A push whose blobs were uploaded before a run began (no grace) and
	// whose manifest came after its sweep is refused cleanly, never stored
	// half: BLOB_UNKNOWN, and the writer was not told it was pushed.
	for _, f := range failures {
		t.Logf("refused: %s", f)
		if !strings.Contains(f, "BLOB_UNKNOWN") {
			t.Errorf("a push failed other than cleanly: %s", f)
		}
	}

	// Every image a writer was told was pushed pulls and validates.
	for _, p := range pushed {
		r, err := name.ParseReference(s.Addr+"/"+p.ref, opts...)
		if err != nil {
			t.Fatal(err)
		}
		if p.index {
			idx, err := remote.Index(r)
			if err != nil {
				t.Fatalf("%s: %v", p.ref, err)
			}
			if err := validate.Index(idx); err != nil {
				t.Fatalf("%s: %v", p.ref, err)
			}
			continue
		}
		img, err := remote.Image(r)
		if err != nil {
			t.Fatalf("%s: %v", p.ref, err)
		}
		if err := validate.Image(img); err != nil {
			t.Fatalf("%s: %v", p.ref, err)
		}
	}

	// Quiet now: delete a few more, then a dry run and the real run.
	for _, p := range pushed[:3] {
		if p.index {
			continue
		}
		repo := p.ref[:strings.LastIndex(p.ref, ":")]
		if err := deleteByDigest(s.Addr, repo, p.digest); err != nil {
			t.Fatal(err)
		}
		collected = append(collected, p)
	}
	dry := gcRun(t, s, "--grace", "0s", "--dry-run")
	before := blobStoreSize(t, s)
	real := gcRun(t, s, "--grace", "0s")
	after := blobStoreSize(t, s)
	if len(real.Blobs) == 0 {
		t.Fatal("the final run collected nothing: the comparison proves nothing")
	}
	if !slices.Equal(dry.Blobs, real.Blobs) || !slices.EqualFunc(dry.Manifests, real.Manifests, func(a, b registryapi.GCManifest) bool {
		return a.Repository == b.Repository && a.Digest == b.Digest && a.Size == b.Size
	}) || !slices.Equal(dry.Layers, real.Layers) || !slices.Equal(dry.Tags, real.Tags) ||
		!slices.Equal(dry.Repositories, real.Repositories) || dry.BytesFreed != real.BytesFreed {
		t.Fatalf("the dry run differs from the real run:\ndry:  %+v\nreal: %+v", dry, real)
	}
	if before-after != real.BytesFreed {
		t.Fatalf("du -sb of the blob store dropped by %d bytes, the run says it freed %d", before-after, real.BytesFreed)
	}
	t.Logf("final run: %d blobs, %d bytes freed (du agrees)", len(real.Blobs), real.BytesFreed)

	// Deleted images' blobs are gone: 404 on HEAD and GET, and from disk.
	for _, p := range collected {
		repo := p.ref[:strings.LastIndex(p.ref, ":")]
		for _, d := range append([]v1.Hash{p.digest}, p.blobs...) {
			for _, m := range []string{http.MethodHead, http.MethodGet} {
				if code := httpStatus(t, m, "http://"+s.Addr+"/v2/"+repo+"/blobs/"+d.String()); code != http.StatusNotFound {
					t.Errorf("%s %s blob %s of a deleted image: %d, want 404", m, repo, d, code)
				}
			}
			if _, err := os.Stat(filepath.Join(s.DataDir, "docker", "registry", "v2", "blobs", "sha256", d.Hex[:2], d.Hex)); err == nil {
				t.Errorf("blob %s of a deleted image is still on disk", d)
			}
		}
	}

	// The kept image's signature survives, the deleted image's is gone.
	if code := httpStatus(t, http.MethodHead, "http://"+s.Addr+"/v2/keep/app/manifests/"+keptSig); code != http.StatusOK {
		t.Errorf("signature of the kept image: %d", code)
	}
	if code := httpStatus(t, http.MethodHead, "http://"+s.Addr+"/v2/gone/app/manifests/"+goneSig); code != http.StatusNotFound {
		t.Errorf("signature of the deleted image: %d, want 404", code)
	}
	out := runTool(t, env, "", "oras", "discover", "--plain-http", "--format", "json", s.Addr+"/keep/app@"+keptDigest.String())
	if !strings.Contains(out, keptSig) {
		t.Errorf("oras discover lost the kept image's signature:\n%s", out)
	}
	if img, err := remote.Image(mustRef(t, s.Addr+"/keep/app:v1")); err != nil {
		t.Error(err)
	} else if err := validate.Image(img); err != nil {
		t.Error(err)
	}
	resp, err := http.Get("http://" + s.Addr + "/v2/gone/app/referrers/" + goneDigest.String())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var refs struct{ Manifests []json.RawMessage }
	if err := json.NewDecoder(resp.Body).Decode(&refs); err != nil || len(refs.Manifests) != 0 {
		t.Errorf("referrers of the deleted image: %v, %d left", err, len(refs.Manifests))
	}
}

// writerPush pushes writer w's n-th image: a random image, or every third
// one of writer 2 a two-image index (its children untagged).
func writerPush(addr string, w, n int) (pushedImage, error) {
	p := pushedImage{ref: fmt.Sprintf("w%d/img:%d", w, n)}
	r, err := name.ParseReference(addr+"/"+p.ref, name.Insecure)
	if err != nil {
		return p, err
	}
	if w == 2 && n%3 == 0 {
		idx, err := random.Index(1024, 1, 2)
		if err != nil {
			return p, err
		}
		if err := remote.WriteIndex(r, idx); err != nil {
			return p, err
		}
		p.index = true
		if p.digest, err = idx.Digest(); err != nil {
			return p, err
		}
		p.blobs, err = indexBlobs(idx)
		return p, err
	}
	img, err := random.Image(1024, 2)
	if err != nil {
		return p, err
	}
	if err := remote.Write(r, img); err != nil {
		return p, err
	}
	if p.digest, err = img.Digest(); err != nil {
		return p, err
	}
	p.blobs, err = imageBlobs(img)
	return p, err
}

func mustRef(t testing.TB, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
