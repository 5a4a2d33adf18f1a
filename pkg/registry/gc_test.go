package registry

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	gv1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/opencontainers/go-digest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/idpbuilder/idpbuilder/pkg/auth"
	"github.com/idpbuilder/idpbuilder/pkg/registryapi"
)

// gcEnv is a registry served by httptest over its handler, pushed to with
// go-containerregistry.
type gcEnv struct {
	t    *testing.T
	reg  *Registry
	dir  string
	srv  *httptest.Server
	host string
	opts []remote.Option
}

func newGCEnv(t *testing.T, opts Options) *gcEnv {
	t.Helper()
	if opts.DataDir == "" {
		opts.DataDir = t.TempDir()
	}
	opts.Logger = slog.New(slog.DiscardHandler)
	opts.RateLimit = RateLimit{Disabled: true}
	r := New(opts)
	require.NoError(t, r.Open(context.Background()))
	srv := httptest.NewServer(r.Handler())
	t.Cleanup(func() {
		srv.Close()
		_ = r.Close()
	})
	return &gcEnv{t: t, reg: r, dir: opts.DataDir, srv: srv, host: strings.TrimPrefix(srv.URL, "http://")}
}

func (e *gcEnv) ref(s string) name.Reference {
	e.t.Helper()
	r, err := name.ParseReference(e.host+"/"+s, name.Insecure)
	require.NoError(e.t, err)
	return r
}

// push writes img as repo:tag, or by digest when tag is "".
func (e *gcEnv) push(repo, tag string, img gv1.Image) gv1.Hash {
	e.t.Helper()
	d, err := img.Digest()
	require.NoError(e.t, err)
	ref := repo + "@" + d.String()
	if tag != "" {
		ref = repo + ":" + tag
	}
	require.NoError(e.t, remote.Write(e.ref(ref), img, e.opts...))
	return d
}

func (e *gcEnv) pushIndex(repo, tag string, idx gv1.ImageIndex) gv1.Hash {
	e.t.Helper()
	require.NoError(e.t, remote.WriteIndex(e.ref(repo+":"+tag), idx, e.opts...))
	d, err := idx.Digest()
	require.NoError(e.t, err)
	return d
}

func (e *gcEnv) do(method, path string, body []byte, header ...string) (int, []byte, http.Header) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(body))
	require.NoError(e.t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := e.srv.Client().Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return resp.StatusCode, b, resp.Header
}

// gc runs garbage collection through the admin endpoint.
func (e *gcEnv) gc(req registryapi.GCRequest) registryapi.GCResult {
	e.t.Helper()
	body, err := json.Marshal(req)
	require.NoError(e.t, err)
	code, b, _ := e.do(http.MethodPost, registryapi.GCPath, body)
	require.Equal(e.t, http.StatusOK, code, string(b))
	var res registryapi.GCResult
	require.NoError(e.t, json.Unmarshal(b, &res))
	require.Empty(e.t, res.Error)
	return res
}

func grace(d time.Duration) *registryapi.Duration {
	g := registryapi.Duration(d)
	return &g
}

var allManifestTypes = strings.Join([]string{
	string(types.OCIManifestSchema1), string(types.OCIImageIndex), string(types.DockerManifestSchema2), string(types.DockerManifestList),
}, ",")

func (e *gcEnv) blobStatus(method, repo string, d gv1.Hash) int {
	e.t.Helper()
	code, _, _ := e.do(method, "/v2/"+repo+"/blobs/"+d.String(), nil)
	return code
}

func (e *gcEnv) manifestStatus(repo, ref string) int {
	e.t.Helper()
	code, _, _ := e.do(http.MethodHead, "/v2/"+repo+"/manifests/"+ref, nil, "Accept", allManifestTypes)
	return code
}

// blobStoreBytes is what `du -sb` of the blob store says: the apparent size of
// every file and directory in it.
func (e *gcEnv) blobStoreBytes() int64 {
	e.t.Helper()
	var n int64
	root := filepath.Join(e.dir, filepath.FromSlash(blobsRoot))
	require.NoError(e.t, filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		n += fi.Size()
		return nil
	}))
	return n
}

// imageParts is an image's manifest, config and layer digests.
type imageParts struct {
	manifest gv1.Hash
	blobs    []gv1.Hash // config, then layers
}

func partsOf(t *testing.T, img gv1.Image) imageParts {
	t.Helper()
	m, err := img.Digest()
	require.NoError(t, err)
	cfg, err := img.ConfigName()
	require.NoError(t, err)
	p := imageParts{manifest: m, blobs: []gv1.Hash{cfg}}
	layers, err := img.Layers()
	require.NoError(t, err)
	for _, l := range layers {
		d, err := l.Digest()
		require.NoError(t, err)
		p.blobs = append(p.blobs, d)
	}
	return p
}

func randomImage(t *testing.T) gv1.Image {
	t.Helper()
	img, err := random.Image(512, 2)
	require.NoError(t, err)
	return img
}

// withSharedLayer is a new image over one layer of base and one of its own.
func withSharedLayer(t *testing.T, base gv1.Image) gv1.Image {
	t.Helper()
	layers, err := base.Layers()
	require.NoError(t, err)
	own, err := random.Layer(300, types.DockerLayer)
	require.NoError(t, err)
	img, err := mutate.AppendLayers(empty.Image, layers[0], own)
	require.NoError(t, err)
	img, err = mutate.Config(img, gv1.Config{Labels: map[string]string{"unique": rand.Text()}})
	require.NoError(t, err)
	return img
}

// signature is an OCI artifact whose subject is the given manifest.
func signature(t *testing.T, subject gv1.Image) gv1.Image {
	t.Helper()
	d, err := subject.Digest()
	require.NoError(t, err)
	size, err := subject.Size()
	require.NoError(t, err)
	mt, err := subject.MediaType()
	require.NoError(t, err)
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, "application/vnd.example.sig.config")
	img, err = mutate.Append(img, mutate.Addendum{Layer: static.NewLayer([]byte("signature "+rand.Text()), "application/vnd.example.sig")})
	require.NoError(t, err)
	return mutate.Subject(img, gv1.Descriptor{MediaType: mt, Digest: d, Size: size}).(gv1.Image)
}

// uploadOrphan uploads a blob that no manifest names.
func (e *gcEnv) uploadOrphan(repo string) gv1.Hash {
	e.t.Helper()
	content := []byte("orphan " + rand.Text())
	d := digest.FromBytes(content)
	code, b, h := e.do(http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil)
	require.Equal(e.t, http.StatusAccepted, code, string(b))
	loc, err := url.Parse(h.Get("Location"))
	require.NoError(e.t, err)
	q := loc.Query()
	q.Set("digest", d.String())
	code, b, _ = e.do(http.MethodPut, loc.Path+"?"+q.Encode(), content, "Content-Type", "application/octet-stream")
	require.Equal(e.t, http.StatusCreated, code, string(b))
	h2, err := gv1.NewHash(d.String())
	require.NoError(e.t, err)
	return h2
}

func (e *gcEnv) deleteManifest(repo string, d gv1.Hash) {
	e.t.Helper()
	code, b, _ := e.do(http.MethodDelete, "/v2/"+repo+"/manifests/"+d.String(), nil)
	require.Equal(e.t, http.StatusAccepted, code, string(b))
}

func (e *gcEnv) referrers(repo string, subject gv1.Hash) []string {
	e.t.Helper()
	code, b, _ := e.do(http.MethodGet, "/v2/"+repo+"/referrers/"+subject.String(), nil)
	require.Equal(e.t, http.StatusOK, code, string(b))
	var idx struct{ Manifests []struct{ Digest string } }
	require.NoError(e.t, json.Unmarshal(b, &idx))
	var out []string
	for _, m := range idx.Manifests {
		out = append(out, m.Digest)
	}
	return out
}

func hashes(hs ...gv1.Hash) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.String()
	}
	slices.Sort(out)
	return out
}

func manifestDigests(res registryapi.GCResult) []string {
	var out []string
	for _, m := range res.Manifests {
		out = append(out, m.Digest)
	}
	slices.Sort(out)
	return out
}

func blobDigests(res registryapi.GCResult) []string {
	var out []string
	for _, b := range res.Blobs {
		out = append(out, b.Digest)
	}
	slices.Sort(out)
	return out
}

func layerDigests(res registryapi.GCResult, repo string) []string {
	var out []string
	for _, l := range res.Layers {
		if l.Repository == repo {
			out = append(out, l.Digest)
		}
	}
	slices.Sort(out)
	return out
}

// gcFixture is one registry with a bit of everything, in repository "app":
// a tagged image, an untagged one, a deleted one sharing a layer with the
// tagged one, a tagged index over untagged children, signatures of each
// image, and an orphan blob.
type gcFixture struct {
	kept, untagged, deleted          imageParts
	sigKept, sigUntagged, sigDeleted imageParts
	index                            gv1.Hash
	children                         []imageParts
	orphan                           gv1.Hash
}

func (e *gcEnv) fixture() gcFixture {
	t := e.t
	var f gcFixture
	kept := randomImage(t)
	e.push("app", "v1", kept)
	f.kept = partsOf(t, kept)

	untagged := randomImage(t)
	e.push("app", "", untagged)
	f.untagged = partsOf(t, untagged)

	deleted := withSharedLayer(t, kept)
	e.push("app", "old", deleted)
	f.deleted = partsOf(t, deleted)

	for _, s := range []struct {
		subject gv1.Image
		into    *imageParts
	}{{kept, &f.sigKept}, {untagged, &f.sigUntagged}, {deleted, &f.sigDeleted}} {
		sig := signature(t, s.subject)
		e.push("app", "", sig)
		*s.into = partsOf(t, sig)
	}
	e.deleteManifest("app", f.deleted.manifest)

	idx, err := random.Index(256, 1, 2)
	require.NoError(t, err)
	f.index = e.pushIndex("app", "multi", idx)
	im, err := idx.IndexManifest()
	require.NoError(t, err)
	for _, m := range im.Manifests {
		child, err := idx.Image(m.Digest)
		require.NoError(t, err)
		f.children = append(f.children, partsOf(t, child))
	}

	f.orphan = e.uploadOrphan("app")
	return f
}

func TestGCDefaultKeepsUntaggedAndSweepsTheUnreferenced(t *testing.T) {
	e := newGCEnv(t, Options{})
	f := e.fixture()
	before := e.blobStoreBytes()

	res := e.gc(registryapi.GCRequest{Grace: grace(0)})

	// Only the signature of the deleted image goes among manifests.
	assert.Equal(t, hashes(f.sigDeleted.manifest), manifestDigests(res))
	// Blobs: the deleted image's own config and layer (not the layer it
	// shares with the tagged image), the deleted signature's layer (its
	// config is the one every signature has), the deleted manifests
	// themselves, and the orphan.
	wantBlobs := hashes(f.deleted.manifest, f.deleted.blobs[0], f.deleted.blobs[2], f.sigDeleted.manifest, f.sigDeleted.blobs[1], f.orphan)
	assert.Equal(t, wantBlobs, blobDigests(res))
	assert.Equal(t, hashes(f.deleted.blobs[0], f.deleted.blobs[2], f.sigDeleted.blobs[1], f.orphan), layerDigests(res, "app"))
	assert.Empty(t, res.Tags)
	assert.Empty(t, res.Repositories)
	assert.Equal(t, before-e.blobStoreBytes(), res.BytesFreed, "bytes freed must be what the blob store shrank by")

	for _, d := range []gv1.Hash{f.deleted.blobs[0], f.deleted.blobs[2], f.sigDeleted.blobs[1], f.orphan} {
		assert.Equal(t, http.StatusNotFound, e.blobStatus(http.MethodHead, "app", d), d)
		assert.Equal(t, http.StatusNotFound, e.blobStatus(http.MethodGet, "app", d), d)
	}
	assert.Equal(t, http.StatusNotFound, e.manifestStatus("app", f.sigDeleted.manifest.String()))
	for _, p := range []imageParts{f.kept, f.untagged, f.sigKept, f.sigUntagged} {
		assert.Equal(t, http.StatusOK, e.manifestStatus("app", p.manifest.String()))
		for _, d := range p.blobs {
			assert.Equal(t, http.StatusOK, e.blobStatus(http.MethodGet, "app", d), d)
		}
	}
	assert.Equal(t, http.StatusOK, e.blobStatus(http.MethodHead, "app", f.deleted.blobs[1]), "the shared layer stays")
	e.validate("app:v1")
	e.validateIndex("app:multi")
	assert.Equal(t, []string{f.sigKept.manifest.String()}, e.referrers("app", f.kept.manifest))
	assert.Equal(t, []string{f.sigUntagged.manifest.String()}, e.referrers("app", f.untagged.manifest))
	assert.Empty(t, e.referrers("app", f.deleted.manifest), "the deleted subject's signature left the referrers index")

	// Nothing is left to collect.
	again := e.gc(registryapi.GCRequest{Grace: grace(0)})
	assert.Empty(t, again.Manifests)
	assert.Empty(t, again.Blobs)
	assert.Zero(t, again.BytesFreed)
}

func TestGCUntaggedSweepsWhatNoTagReaches(t *testing.T) {
	e := newGCEnv(t, Options{})
	f := e.fixture()

	res := e.gc(registryapi.GCRequest{Untagged: true, Grace: grace(0)})

	assert.Equal(t, hashes(f.untagged.manifest, f.sigUntagged.manifest, f.sigDeleted.manifest), manifestDigests(res))
	want := []gv1.Hash{f.deleted.manifest, f.deleted.blobs[0], f.deleted.blobs[2], f.sigDeleted.manifest, f.sigDeleted.blobs[1], f.orphan,
		f.untagged.manifest, f.sigUntagged.manifest, f.sigUntagged.blobs[1]}
	want = append(want, f.untagged.blobs...)
	assert.Equal(t, hashes(want...), blobDigests(res))
	for _, p := range []imageParts{f.untagged, f.sigUntagged} {
		assert.Equal(t, http.StatusNotFound, e.manifestStatus("app", p.manifest.String()))
	}
	for _, d := range f.untagged.blobs {
		assert.Equal(t, http.StatusNotFound, e.blobStatus(http.MethodGet, "app", d))
	}
	// What a tag reaches stays: the image and its signature, the index and
	// its untagged children.
	e.validate("app:v1")
	e.validateIndex("app:multi")
	assert.Equal(t, http.StatusOK, e.manifestStatus("app", f.sigKept.manifest.String()))
	for _, c := range f.children {
		assert.Equal(t, http.StatusOK, e.manifestStatus("app", c.manifest.String()))
	}
	assert.Equal(t, []string{f.sigKept.manifest.String()}, e.referrers("app", f.kept.manifest))
	assert.Empty(t, e.referrers("app", f.untagged.manifest))
}

func (e *gcEnv) validate(ref string) {
	e.t.Helper()
	img, err := remote.Image(e.ref(ref), e.opts...)
	require.NoError(e.t, err)
	require.NoError(e.t, validate.Image(img), ref)
}

func (e *gcEnv) validateIndex(ref string) {
	e.t.Helper()
	idx, err := remote.Index(e.ref(ref), e.opts...)
	require.NoError(e.t, err)
	require.NoError(e.t, validate.Index(idx), ref)
}

func TestGCDryRunReportsExactlyWhatTheRunDeletes(t *testing.T) {
	for _, untagged := range []bool{false, true} {
		e := newGCEnv(t, Options{})
		e.fixture()
		before := e.blobStoreBytes()
		dry := e.gc(registryapi.GCRequest{DryRun: true, Untagged: untagged, Grace: grace(0)})
		assert.True(t, dry.DryRun)
		assert.Equal(t, before, e.blobStoreBytes(), "a dry run deletes nothing")
		assert.Nil(t, e.reg.LastGC(), "a dry run is not the last GC")
		real := e.gc(registryapi.GCRequest{Untagged: untagged, Grace: grace(0)})
		require.NotEmpty(t, real.Blobs)
		assert.Equal(t, dry.Tags, real.Tags)
		assert.Equal(t, dry.Manifests, real.Manifests)
		assert.Equal(t, dry.Layers, real.Layers)
		assert.Equal(t, dry.Blobs, real.Blobs)
		assert.Equal(t, dry.Repositories, real.Repositories)
		assert.Equal(t, dry.BytesFreed, real.BytesFreed)
		last := e.reg.LastGC()
		require.NotNil(t, last)
		assert.Equal(t, real.Blobs, last.Blobs)
	}
}

func TestGCGracePeriod(t *testing.T) {
	e := newGCEnv(t, Options{})
	img := randomImage(t)
	e.push("app", "", img)
	p := partsOf(t, img)
	orphan := e.uploadOrphan("app")

	// Everything is younger than the default hour: nothing goes.
	res := e.gc(registryapi.GCRequest{Untagged: true})
	assert.Equal(t, registryapi.Duration(time.Hour), res.Grace)
	assert.Empty(t, res.Manifests)
	assert.Empty(t, res.Blobs)

	// Two hours later (the files say), it all goes.
	old := time.Now().Add(-2 * time.Hour)
	require.NoError(t, filepath.WalkDir(e.dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, old, old)
	}))
	res = e.gc(registryapi.GCRequest{Untagged: true})
	assert.Equal(t, hashes(p.manifest), manifestDigests(res))
	assert.Equal(t, hashes(append(p.blobs, p.manifest, orphan)...), blobDigests(res))
	assert.Equal(t, []string{"app"}, res.Repositories, "nothing is left in the repository")
	code, b, _ := e.do(http.MethodGet, "/v2/_catalog", nil)
	assert.Equal(t, http.StatusOK, code)
	assert.NotContains(t, string(b), `"app"`)
}

func TestGCRescuesWhatIsTouchedBetweenMarkAndSweep(t *testing.T) {
	e := newGCEnv(t, Options{})
	ctx := context.Background()

	// A push in flight: its blobs are uploaded before the run, its manifest
	// arrives during the mark.
	inflight := randomImage(t)
	for _, l := range mustLayers(t, inflight) {
		require.NoError(t, remote.WriteLayer(e.ref("app").Context(), l, e.opts...))
	}
	cfg, err := inflight.RawConfigFile()
	require.NoError(t, err)
	require.NoError(t, remote.WriteLayer(e.ref("app").Context(), static.NewLayer(cfg, types.DockerConfigJSON), e.opts...))

	// Untagged children that an index pushed during the mark adopts.
	idx, err := random.Index(256, 1, 2)
	require.NoError(t, err)
	im, err := idx.IndexManifest()
	require.NoError(t, err)
	var children []imageParts
	for _, m := range im.Manifests {
		child, err := idx.Image(m.Digest)
		require.NoError(t, err)
		e.push("app", "", child)
		children = append(children, partsOf(t, child))
	}

	// A blob a client HEADs during the mark (and then names in a manifest),
	// one that is mounted into another repository during the mark, and one
	// nobody touches.
	headed, mounted, untouched := e.uploadOrphan("app"), e.uploadOrphan("app"), e.uploadOrphan("app")

	var hooked bool
	e.reg.gc.hook = func(stage string) {
		if stage != "marked" {
			return
		}
		hooked = true
		require.NoError(t, remote.Write(e.ref("app:inflight"), inflight, e.opts...))
		require.NoError(t, remote.Put(e.ref("app:multi"), idx, e.opts...))
		assert.Equal(t, http.StatusOK, e.blobStatus(http.MethodHead, "app", headed))
		code, b, _ := e.do(http.MethodPost, "/v2/other/blobs/uploads/?mount="+mounted.String()+"&from=app", nil)
		require.Equal(t, http.StatusCreated, code, string(b))
	}
	res, err := e.reg.GC(ctx, registryapi.GCRequest{Untagged: true, Grace: grace(0)})
	require.NoError(t, err)
	require.True(t, hooked)

	assert.Equal(t, hashes(untouched), blobDigests(res), "only the untouched blob goes")
	e.validate("app:inflight")
	e.validateIndex("app:multi")
	for _, c := range children {
		for _, d := range c.blobs {
			assert.Equal(t, http.StatusOK, e.blobStatus(http.MethodGet, "app", d))
		}
	}
	assert.Equal(t, http.StatusOK, e.blobStatus(http.MethodGet, "app", headed))
	assert.Equal(t, http.StatusOK, e.blobStatus(http.MethodGet, "other", mounted))
	assert.Equal(t, http.StatusNotFound, e.blobStatus(http.MethodGet, "app", untouched))
}

func mustLayers(t *testing.T, img gv1.Image) []gv1.Layer {
	t.Helper()
	ls, err := img.Layers()
	require.NoError(t, err)
	return ls
}

func TestGCSweepAnswers404ForWhatItDeletesAndLetsOtherReadsThrough(t *testing.T) {
	e := newGCEnv(t, Options{})
	kept := randomImage(t)
	e.push("app", "v1", kept)
	doomed := e.uploadOrphan("app")
	e.reg.gc.hook = func(stage string) {
		if stage != "published" {
			return
		}
		// The gate is closed: reads still answer, at once.
		assert.Equal(t, http.StatusNotFound, e.blobStatus(http.MethodHead, "app", doomed))
		assert.Equal(t, http.StatusNotFound, e.blobStatus(http.MethodGet, "app", doomed))
		assert.Equal(t, http.StatusOK, e.blobStatus(http.MethodGet, "app", partsOf(t, kept).blobs[1]))
		assert.Equal(t, http.StatusOK, e.manifestStatus("app", "v1"))
	}
	res, err := e.reg.GC(context.Background(), registryapi.GCRequest{Grace: grace(0)})
	require.NoError(t, err)
	assert.Equal(t, hashes(doomed), blobDigests(res))
}

func TestGCSlowUploadDoesNotHoldTheSweep(t *testing.T) {
	e := newGCEnv(t, Options{})
	content := []byte("uploaded slowly")
	d := digest.FromBytes(content)
	code, b, h := e.do(http.MethodPost, "/v2/app/blobs/uploads/", nil)
	require.Equal(t, http.StatusAccepted, code, string(b))
	loc, err := url.Parse(h.Get("Location"))
	require.NoError(t, err)
	q := loc.Query()
	q.Set("digest", d.String())

	pr, pw := io.Pipe()
	req, err := http.NewRequest(http.MethodPut, e.srv.URL+loc.Path+"?"+q.Encode(), pr)
	require.NoError(t, err)
	req.ContentLength = int64(len(content))
	done := make(chan int, 1)
	go func() {
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	_, err = pw.Write(content[:4]) // the body has begun and stalls
	require.NoError(t, err)

	gcDone := make(chan error, 1)
	go func() {
		_, err := e.reg.GC(context.Background(), registryapi.GCRequest{Grace: grace(0)})
		gcDone <- err
	}()
	select {
	case err := <-gcDone:
		require.NoError(t, err)
	case <-time.After(time.Minute):
		t.Fatal("garbage collection waited for a stalled upload body")
	}
	_, err = pw.Write(content[4:])
	require.NoError(t, err)
	require.NoError(t, pw.Close())
	assert.Equal(t, http.StatusCreated, <-done)
	assert.Equal(t, http.StatusOK, e.blobStatus(http.MethodGet, "app", gv1.Hash{Algorithm: "sha256", Hex: d.Encoded()}))
}

func TestGCRetention(t *testing.T) {
	e := newGCEnv(t, Options{})
	imgs := map[string]gv1.Image{}
	pushAt := func(repo, tag string, img gv1.Image, age time.Duration) {
		e.push(repo, tag, img)
		imgs[repo+":"+tag] = img
		// The push order, as the tag links' times tell it.
		at := time.Now().Add(-age)
		require.NoError(t, os.Chtimes(filepath.Join(e.dir, filepath.FromSlash(repositoriesRoot), repo, "_manifests", "tags", tag, "current", "link"), at, at))
	}
	shared := randomImage(t)
	for _, repo := range []string{"ci/app", "ci/app/deep", "team/x/y", "other"} {
		pushAt(repo, "b1", randomImage(t), 5*time.Hour)
		pushAt(repo, "b2", shared, 4*time.Hour) // the newest tag has this digest too
		pushAt(repo, "b3", randomImage(t), 3*time.Hour)
		pushAt(repo, "b4", randomImage(t), 2*time.Hour)
		pushAt(repo, "b5", shared, 1*time.Hour)
	}
	tagsOf := func(res registryapi.GCResult) []string {
		var out []string
		for _, tg := range res.Tags {
			out = append(out, tg.Repository+":"+tg.Tag)
		}
		return out
	}

	// keep 2 of ci/*: b5 and b4 stay, b2 shares b5's digest, b1 and b3 go.
	// ci/app/deep is not matched by ci/* (one component), nor other.
	dry := e.gc(registryapi.GCRequest{DryRun: true, KeepTags: 2, Repo: "ci/*", Grace: grace(0)})
	assert.Equal(t, []string{"ci/app:b1", "ci/app:b3"}, tagsOf(dry))
	res := e.gc(registryapi.GCRequest{KeepTags: 2, Repo: "ci/*", Grace: grace(0)})
	assert.Equal(t, tagsOf(dry), tagsOf(res))
	assert.Equal(t, dry.Blobs, res.Blobs)
	// Their images lose their only tags, so they go too (also without
	// Untagged).
	assert.Equal(t, hashes(partsOf(t, imgs["ci/app:b1"]).manifest, partsOf(t, imgs["ci/app:b3"]).manifest), manifestDigests(res))
	for _, tag := range []string{"b1", "b3"} {
		assert.Equal(t, http.StatusNotFound, e.manifestStatus("ci/app", tag))
		for _, d := range partsOf(t, imgs["ci/app:"+tag]).blobs {
			assert.Equal(t, http.StatusNotFound, e.blobStatus(http.MethodGet, "ci/app", d))
		}
	}
	for _, tag := range []string{"b2", "b4", "b5"} {
		e.validate("ci/app:" + tag)
	}

	// team/** reaches any depth; a tag pushed again since the scan stays.
	repushed := randomImage(t)
	e.reg.gc.hook = func(stage string) {
		if stage == "marked" {
			e.push("team/x/y", "b1", repushed)
		}
	}
	res = e.gc(registryapi.GCRequest{KeepTags: 2, Repo: "team/**", Grace: grace(0)})
	e.reg.gc.hook = nil
	assert.Equal(t, []string{"team/x/y:b3"}, tagsOf(res))
	e.validate("team/x/y:b1")
	got, err := remote.Head(e.ref("team/x/y:b1"))
	require.NoError(t, err)
	assert.Equal(t, partsOf(t, repushed).manifest, got.Digest)
	// The image b1 pointed at before is untagged now, and not collected
	// (without Untagged) since retention did not untag it.
	assert.Equal(t, http.StatusOK, e.manifestStatus("team/x/y", partsOf(t, imgs["team/x/y:b1"]).manifest.String()))

	// No glob: every repository.
	res = e.gc(registryapi.GCRequest{KeepTags: 1, Grace: grace(0)})
	assert.ElementsMatch(t, []string{"ci/app:b4", "ci/app/deep:b1", "ci/app/deep:b3", "ci/app/deep:b4", "team/x/y:b5", "team/x/y:b2", "team/x/y:b4", "other:b1", "other:b3", "other:b4"}, tagsOf(res))
	for _, repo := range []string{"ci/app", "ci/app/deep", "other"} {
		e.validate(repo + ":b5")
		e.validate(repo + ":b2")
	}
	e.validate("team/x/y:b1") // pushed last
}

func TestGCSHA512Aliases(t *testing.T) {
	tr := &testRegistry{t: t}
	e := newGCEnv(t, Options{})
	tr.reg, tr.dir = e.reg, e.dir
	layer := []byte("a layer addressed by sha512")
	cfgBody := []byte(`{"os":"linux"}`)
	ld := tr.pushBlob("s", layer, digest.SHA512)
	cd := tr.pushBlob("s", cfgBody, digest.SHA512)
	man := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` +
		cd.String() + `","size":14},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"` + ld.String() + `","size":27}]}`)
	md := digest.SHA512.FromBytes(man)
	rec := tr.putManifest("s", md.String(), man, "application/vnd.oci.image.manifest.v1+json")
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())

	// Untagged but younger than no grace: with Untagged it goes, under
	// both of its digests, with its blobs under both of theirs.
	res := e.gc(registryapi.GCRequest{Grace: grace(0)})
	assert.Empty(t, res.Manifests, "without Untagged an untagged image stays")
	res = e.gc(registryapi.GCRequest{Untagged: true, Grace: grace(0)})
	require.Len(t, res.Manifests, 1)
	assert.Equal(t, digest.FromBytes(man).String(), res.Manifests[0].Digest)
	assert.Equal(t, []string{md.String()}, res.Manifests[0].Aliases)
	for _, d := range []digest.Digest{md, digest.FromBytes(man)} {
		assert.Equal(t, http.StatusNotFound, e.manifestStatus("s", d.String()))
	}
	for _, d := range []digest.Digest{ld, cd, digest.FromBytes(layer), digest.FromBytes(cfgBody)} {
		code, _, _ := e.do(http.MethodHead, "/v2/s/blobs/"+d.String(), nil)
		assert.Equal(t, http.StatusNotFound, code, d)
	}
	assert.ElementsMatch(t, []string{digest.FromBytes(layer).String(), digest.FromBytes(cfgBody).String(), digest.FromBytes(man).String()}, blobDigests(res))
}

func TestGCOneRunAtATime(t *testing.T) {
	e := newGCEnv(t, Options{})
	e.push("app", "v1", randomImage(t))
	inMark, release := make(chan struct{}), make(chan struct{})
	e.reg.gc.hook = func(stage string) {
		if stage == "marked" {
			close(inMark)
			<-release
		}
	}
	first := make(chan error, 1)
	go func() {
		_, err := e.reg.GC(context.Background(), registryapi.GCRequest{})
		first <- err
	}()
	<-inMark
	code, b, _ := e.do(http.MethodPost, registryapi.GCPath, []byte(`{"dry_run":true}`))
	assert.Equal(t, http.StatusConflict, code)
	assert.Contains(t, string(b), registryapi.CodeGCRunning)
	_, err := e.reg.GC(context.Background(), registryapi.GCRequest{})
	assert.ErrorIs(t, err, ErrGCRunning)
	close(release)
	require.NoError(t, <-first)
	e.reg.gc.hook = nil
	e.gc(registryapi.GCRequest{})
}

func TestGCAPIRefusesBadRequests(t *testing.T) {
	e := newGCEnv(t, Options{})
	for _, tt := range []struct {
		method, body string
		code         int
		want         string
	}{
		{http.MethodGet, "", http.StatusMethodNotAllowed, "POST"},
		{http.MethodPost, "{", http.StatusBadRequest, registryapi.CodeInvalidRequest},
		{http.MethodPost, `{"dry_run":"yes"}`, http.StatusBadRequest, registryapi.CodeInvalidRequest},
		{http.MethodPost, `{"bogus":1}`, http.StatusBadRequest, "bogus"},
		{http.MethodPost, `{"grace":"-1h"}`, http.StatusBadRequest, "negative"},
		{http.MethodPost, `{"grace":"soon"}`, http.StatusBadRequest, "not a duration"},
		{http.MethodPost, `{"repo":"ci/*"}`, http.StatusBadRequest, "keep_tags"},
		{http.MethodPost, `{"keep_tags":2,"repo":"ci/["}`, http.StatusBadRequest, "syntax error"},
		{http.MethodPost, `{"keep_tags":-1}`, http.StatusBadRequest, "negative"},
	} {
		code, b, _ := e.do(tt.method, registryapi.GCPath, []byte(tt.body))
		assert.Equal(t, tt.code, code, tt.body)
		assert.Contains(t, string(b), tt.want, tt.body)
		assert.Contains(t, string(b), `"errors"`, "OCI error body")
	}
	// An empty body is a default run.
	code, b, _ := e.do(http.MethodPost, registryapi.GCPath, nil)
	assert.Equal(t, http.StatusOK, code, string(b))
}

func TestGCNeedsALoginUnderAuth(t *testing.T) {
	dir := t.TempDir()
	h := auth.Htpasswd{Path: filepath.Join(dir, "htpasswd")}
	require.NoError(t, h.Set("alice", testPassword))
	for _, policy := range []auth.Policy{auth.PolicyPush, auth.PolicyAll} {
		e := newGCEnv(t, Options{DataDir: filepath.Join(dir, string(policy)), Auth: &AuthOptions{Policy: policy, Verifier: auth.NewVerifier(h)}})
		code, b, hdr := e.do(http.MethodPost, registryapi.GCPath, []byte(`{}`))
		assert.Equal(t, http.StatusUnauthorized, code, policy)
		assert.Contains(t, string(b), codeUnauthorized)
		assert.NotEmpty(t, hdr.Get("WWW-Authenticate"))
		code, _, _ = e.do(http.MethodPost, registryapi.GCPath, []byte(`{}`), "Authorization", basic("alice", "wrong password"))
		assert.Equal(t, http.StatusUnauthorized, code)
		code, b, _ = e.do(http.MethodPost, registryapi.GCPath, []byte(`{}`), "Authorization", basic("alice", testPassword))
		assert.Equal(t, http.StatusOK, code, string(b))
		// The caller check itself, in case a layer above lets an anonymous
		// request through.
		rec := httptest.NewRecorder()
		e.reg.serveGC(rec, httptest.NewRequest(http.MethodPost, registryapi.GCPath, strings.NewReader(`{}`)))
		assert.Equal(t, http.StatusUnauthorized, rec.Code)
	}
	e := newGCEnv(t, Options{DataDir: filepath.Join(dir, "none"), Auth: &AuthOptions{Policy: auth.PolicyNone, Verifier: auth.NewVerifier(h)}})
	code, b, _ := e.do(http.MethodPost, registryapi.GCPath, []byte(`{}`))
	assert.Equal(t, http.StatusOK, code, string(b))
}

func TestGCMarkStopsOnUnreadableContent(t *testing.T) {
	e := newGCEnv(t, Options{})
	img := randomImage(t)
	e.push("app", "v1", img)
	orphan := e.uploadOrphan("app")
	m := partsOf(t, img).manifest
	// Damage the stored manifest: what it references is unknown now.
	data := filepath.Join(e.dir, filepath.FromSlash(blobDataPath(digest.Digest(m.String()))))
	require.NoError(t, os.WriteFile(data, []byte(`{"schemaVersion":2}`), 0o644))

	code, b, _ := e.do(http.MethodPost, registryapi.GCPath, []byte(`{"grace":"0s"}`))
	assert.Equal(t, http.StatusInternalServerError, code)
	var res registryapi.GCResult
	require.NoError(t, json.Unmarshal(b, &res))
	assert.Contains(t, res.Error, m.String())
	assert.NotContains(t, res.Error, e.dir, "no machine path in the answer")
	assert.Empty(t, res.Blobs)
	assert.Equal(t, http.StatusOK, e.blobStatus(http.MethodHead, "app", orphan), "nothing was deleted")
	last := e.reg.LastGC()
	require.NotNil(t, last)
	assert.NotEmpty(t, last.Error)
}

func TestGCListenersAndScheduler(t *testing.T) {
	e := newGCEnv(t, Options{})
	var mu sync.Mutex
	var runs []registryapi.GCResult
	got := make(chan struct{}, 10)
	e.reg.OnGC(func(res registryapi.GCResult) {
		mu.Lock()
		runs = append(runs, res)
		mu.Unlock()
		got <- struct{}{}
	})
	assert.Nil(t, e.reg.LastGC())
	orphan := e.uploadOrphan("app")

	s := &GCScheduler{Registry: e.reg, Interval: 10 * time.Millisecond, Request: registryapi.GCRequest{Grace: grace(0)}, Logger: slog.New(slog.DiscardHandler)}
	require.NoError(t, s.Start(context.Background()))
	<-got
	<-got
	require.NoError(t, s.Stop(context.Background()))
	mu.Lock()
	defer mu.Unlock()
	require.GreaterOrEqual(t, len(runs), 2)
	assert.Equal(t, hashes(orphan), blobDigests(runs[0]), "the first scheduled run collects")
	assert.Empty(t, runs[1].Blobs)
	require.NotNil(t, e.reg.LastGC())
}
