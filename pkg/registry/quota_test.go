package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/idpbuilder/idpbuilder/internal/units"
)

// served is a registry opened on dir and served by httptest over its Handler.
type served struct {
	t    testing.TB
	reg  *Registry
	srv  *httptest.Server
	dir  string
	host string
}

func serve(t testing.TB, dir string, opts Options) *served {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	opts.DataDir = dir
	opts.Logger = slog.New(slog.DiscardHandler)
	opts.RateLimit = RateLimit{Disabled: true}
	r := New(opts)
	require.NoError(t, r.Open(context.Background()))
	srv := httptest.NewServer(r.Handler())
	s := &served{t: t, reg: r, srv: srv, dir: dir, host: strings.TrimPrefix(srv.URL, "http://")}
	t.Cleanup(s.close)
	return s
}

// close stops serving and closes the registry (a restart opens a new one).
func (s *served) close() {
	s.srv.Close()
	_ = s.reg.Close()
}

func (s *served) ref(ref string) name.Reference {
	s.t.Helper()
	r, err := name.ParseReference(s.host+"/"+ref, name.Insecure)
	require.NoError(s.t, err)
	return r
}

// push pushes img with go-containerregistry, one blob at a time: a push
// refused half way then abandons no upload of its own (with several at a
// time the client drops the others, and what they sent stays until upload
// purging, as with any abandoned upload).
func (s *served) push(ref string, img v1.Image) error {
	return remote.Write(s.ref(ref), img, remote.WithJobs(1))
}

// pushConcurrently is push with the client's usual concurrency.
func (s *served) pushConcurrently(ref string, img v1.Image) error {
	return remote.Write(s.ref(ref), img)
}

func (s *served) status() (used int64, repos map[string]int64) {
	s.t.Helper()
	st, err := s.reg.QuotaStatus(context.Background())
	require.NoError(s.t, err)
	repos = map[string]int64{}
	for _, r := range st.Repositories {
		repos[r.Name] = r.Used
	}
	return st.Used, repos
}

// do sends one request to the served registry.
func (s *served) do(method, target string, body io.Reader, contentLength int64) (*http.Response, []byte) {
	s.t.Helper()
	req, err := http.NewRequest(method, s.srv.URL+target, body)
	require.NoError(s.t, err)
	req.ContentLength = contentLength
	if body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
		if strings.Contains(target, "/manifests/") {
			req.Header.Set("Content-Type", ocispec.MediaTypeImageManifest)
		}
	}
	resp, err := s.srv.Client().Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(s.t, err)
	return resp, b
}

// startUpload starts an upload in repo and returns its location (path and query).
func (s *served) startUpload(repo string) string {
	s.t.Helper()
	resp, body := s.do(http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil, 0)
	require.Equal(s.t, http.StatusAccepted, resp.StatusCode, string(body))
	loc, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(s.t, err)
	return loc.RequestURI()
}

// putBlob uploads content in one PUT.
func (s *served) putBlob(repo string, content []byte) (*http.Response, []byte) {
	s.t.Helper()
	loc := s.startUpload(repo)
	return s.do(http.MethodPut, loc+"&digest="+digest.FromBytes(content).String(), bytes.NewReader(content), int64(len(content)))
}

// imageBytes is what an image stores: manifest, config and layers.
func imageBytes(t testing.TB, img v1.Image) int64 {
	t.Helper()
	m, err := img.RawManifest()
	require.NoError(t, err)
	c, err := img.RawConfigFile()
	require.NoError(t, err)
	n := int64(len(m) + len(c))
	layers, err := img.Layers()
	require.NoError(t, err)
	for _, l := range layers {
		sz, err := l.Size()
		require.NoError(t, err)
		n += sz
	}
	return n
}

func quotaImage(t testing.TB, layerSize int64, layers int) v1.Image {
	t.Helper()
	img, err := random.Image(layerSize, int64(layers))
	require.NoError(t, err)
	return img
}

// requireDenied checks err is a 403 DENIED whose message has every part.
func requireDenied(t testing.TB, err error, parts ...string) {
	t.Helper()
	var terr *transport.Error
	require.True(t, errors.As(err, &terr), "want a registry error, got %v", err)
	assert.Equal(t, http.StatusForbidden, terr.StatusCode)
	require.Len(t, terr.Errors, 1)
	assert.Equal(t, transport.ErrorCode("DENIED"), terr.Errors[0].Code)
	for _, p := range parts {
		assert.Contains(t, terr.Errors[0].Message, p)
	}
}

// ociError decodes an OCI error body: its one code and message.
func ociErrorOf(t testing.TB, body []byte) (code, message string) {
	t.Helper()
	var e struct {
		Errors []struct{ Code, Message string }
	}
	require.NoError(t, json.Unmarshal(body, &e), string(body))
	require.Len(t, e.Errors, 1, string(body))
	return e.Errors[0].Code, e.Errors[0].Message
}

// storedBytes is the size of every file under dir.
func storedBytes(t testing.TB, dir string) int64 {
	t.Helper()
	var n int64
	require.NoError(t, filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
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

// uploadsLeft lists what is in any repository's _uploads directory.
func uploadsLeft(t testing.TB, dir string) []string {
	t.Helper()
	var left []string
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if filepath.Base(filepath.Dir(p)) == "_uploads" {
			left = append(left, p)
		}
		return nil
	}))
	return left
}

// linkBytes is what linking one sha256 blob into a repository stores: its
// link file, naming the digest.
const linkBytes = int64(len("sha256:") + 64)

// acceptedBytes is what the blobs of img that repo holds store: their data
// and their links. A push refused half way may have had some accepted first.
func acceptedBytes(t testing.TB, s *served, repo string, img v1.Image) (n int64, blobs int) {
	t.Helper()
	cfg, err := img.ConfigName()
	require.NoError(t, err)
	hashes := []v1.Hash{cfg}
	layers, err := img.Layers()
	require.NoError(t, err)
	for _, l := range layers {
		h, err := l.Digest()
		require.NoError(t, err)
		hashes = append(hashes, h)
	}
	for _, h := range hashes {
		resp, _ := s.do(http.MethodHead, "/v2/"+repo+"/blobs/"+h.String(), nil, 0)
		if resp.StatusCode == http.StatusOK {
			n += resp.ContentLength + linkBytes
			blobs++
		}
	}
	return n, blobs
}

func TestQuotaRepositoryLimit(t *testing.T) {
	small, big := quotaImage(t, 64<<10, 1), quotaImage(t, 512<<10, 1)
	limit := imageBytes(t, small) + 256<<10
	s := serve(t, "", Options{RepoQuota: limit})

	require.NoError(t, s.push("team/app:small", small))
	used, repos := s.status()
	assert.Equal(t, imageBytes(t, small), used)
	assert.Equal(t, imageBytes(t, small), repos["team/app"])

	before := storedBytes(t, s.dir)
	err := s.push("team/app:big", big)
	requireDenied(t, err, `repository "team/app"`, " used, ", " requested, limit "+units.Bytes(limit))
	assert.Empty(t, uploadsLeft(t, s.dir), "a refused upload leaves nothing in _uploads")
	// The config blob may have been stored before the layer was refused (the
	// client uploads them concurrently): that, and only that, is new.
	accepted, _ := acceptedBytes(t, s, "team/app", big)
	assert.Equal(t, before+accepted, storedBytes(t, s.dir), "only what was accepted is on disk")

	// Another repository has a quota of its own.
	require.NoError(t, s.push("team/other:small", small))
	_, repos = s.status()
	assert.Equal(t, imageBytes(t, small), repos["team/other"])
}

func TestQuotaRegistryLimit(t *testing.T) {
	a, b := quotaImage(t, 128<<10, 2), quotaImage(t, 256<<10, 1)
	limit := imageBytes(t, a) + 128<<10
	s := serve(t, "", Options{Quota: limit})
	require.NoError(t, s.push("one:v1", a))

	before := storedBytes(t, s.dir)
	err := s.push("two:v1", b)
	requireDenied(t, err, "the registry's storage quota", "limit "+units.Bytes(limit), "requested")
	assert.Empty(t, uploadsLeft(t, s.dir))
	accepted, _ := acceptedBytes(t, s, "two", b)
	assert.Equal(t, before+accepted, storedBytes(t, s.dir))
	used, _ := s.status()
	assert.LessOrEqual(t, used, limit)
}

// TestQuotaMessage pins the message a client shows.
func TestQuotaMessage(t *testing.T) {
	e := &QuotaError{Repository: "team/app", Used: 18 << 30, Requested: 3 << 30, Limit: 20 << 30}
	assert.Equal(t, `this write would pass the storage quota of repository "team/app": 18 GiB used, 3 GiB requested, limit 20 GiB; delete images (and collect garbage) to make room`, e.Error())
	e = &QuotaError{Used: 1536, Requested: 1 << 20, AtLeast: true, Limit: 2 << 20}
	assert.Equal(t, `this write would pass the registry's storage quota: 1.5 KiB used, at least 1 MiB requested, limit 2 MiB; delete images (and collect garbage) to make room`, e.Error())
}

// TestQuotaCountsBlobsOnce pushes one image to several repositories: the
// registry-wide usage counts its blobs once, each repository counts them.
func TestQuotaCountsBlobsOnce(t *testing.T) {
	img := quotaImage(t, 256<<10, 2)
	size := imageBytes(t, img)
	// Room for the image once and its blobs once more while they upload
	// (the client sends them again: it does not know they are stored), but
	// not for the image twice.
	s := serve(t, "", Options{Quota: 2*size - 1, RepoQuota: size})
	for _, repo := range []string{"a", "b", "c"} {
		require.NoError(t, s.push(repo+":v1", img), repo)
	}
	used, repos := s.status()
	assert.Equal(t, size, used)
	assert.Equal(t, map[string]int64{"a": size, "b": size, "c": size}, repos)

	// A second tag of the same manifest stores nothing new.
	require.NoError(t, s.push("a:v2", img))
	used, _ = s.status()
	assert.Equal(t, size, used)
}

// TestQuotaMount: a cross-repository mount adds nothing registry wide, and
// counts against the target repository's quota.
func TestQuotaMount(t *testing.T) {
	img := quotaImage(t, 256<<10, 1)
	size := imageBytes(t, img)
	s := serve(t, "", Options{Quota: size, RepoQuota: size - 1})
	// The registry-wide quota has room for exactly this image.
	err := s.push("src:v1", img)
	requireDenied(t, err, `repository "src"`) // one byte over the repository quota
	s.close()

	s = serve(t, "", Options{Quota: size, RepoQuota: size})
	require.NoError(t, s.push("src:v1", img))
	layers, err := img.Layers()
	require.NoError(t, err)
	layer, err := layers[0].Digest()
	require.NoError(t, err)
	layerSize, err := layers[0].Size()
	require.NoError(t, err)

	// The registry is full, yet a mount stores no new blob: it passes, and
	// counts in the target repository.
	resp, body := s.do(http.MethodPost, "/v2/dst/blobs/uploads/?mount="+layer.String()+"&from=src", nil, 0)
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	used, repos := s.status()
	assert.Equal(t, size, used)
	assert.Equal(t, layerSize, repos["dst"])

	// Copying the image with a client that mounts passes too.
	src, err := remote.Image(s.ref("src:v1"))
	require.NoError(t, err)
	require.NoError(t, s.push("copy:v1", src))
	used, _ = s.status()
	assert.Equal(t, size, used)

	// A mount into a repository whose quota is full is refused.
	s.close()
	s = serve(t, s.dir, Options{RepoQuota: layerSize + 10})
	filler := bytes.Repeat([]byte("f"), 20)
	resp, body = s.putBlob("full", filler)
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	resp, body = s.do(http.MethodPost, "/v2/full/blobs/uploads/?mount="+layer.String()+"&from=src", nil, 0)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	code, msg := ociErrorOf(t, body)
	assert.Equal(t, "DENIED", code)
	assert.Contains(t, msg, `repository "full": 20 B used, `+units.Bytes(layerSize)+" requested")
	resp, _ = s.do(http.MethodHead, "/v2/full/blobs/"+layer.String(), nil, 0)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "the refused mount linked nothing")
}

// TestQuotaChunkedUpload: PATCH bodies of unknown length are counted as they
// arrive and cut where the quota ends; the upload is deleted.
func TestQuotaChunkedUpload(t *testing.T) {
	const limit = 1 << 20
	s := serve(t, "", Options{RepoQuota: limit})
	before := storedBytes(t, s.dir)

	loc := s.startUpload("chunky")
	// A first chunk of known length fits.
	first := bytes.Repeat([]byte("a"), 600<<10)
	resp, body := s.do(http.MethodPatch, loc, bytes.NewReader(first), int64(len(first)))
	require.Equal(t, http.StatusAccepted, resp.StatusCode, string(body))
	next, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)

	// The second, streamed without a length, would pass the quota.
	resp, body = s.do(http.MethodPatch, next.RequestURI(), io.LimitReader(zeros{}, 2<<20), -1)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	code, msg := ociErrorOf(t, body)
	assert.Equal(t, "DENIED", code)
	assert.Contains(t, msg, `repository "chunky": 0 B used, at least `)
	assert.Contains(t, msg, "limit 1 MiB")
	assert.Empty(t, uploadsLeft(t, s.dir), "the refused upload, first chunk included, is deleted")
	assert.Equal(t, before, storedBytes(t, s.dir))

	// The upload is gone for the client too.
	resp, _ = s.do(http.MethodGet, next.RequestURI(), nil, 0)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)

	// A chunk of known length that would pass the quota is refused before
	// it is read.
	loc = s.startUpload("chunky")
	resp, body = s.do(http.MethodPatch, loc, bytes.NewReader(make([]byte, limit+1)), limit+1)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, string(body))
	assert.Empty(t, uploadsLeft(t, s.dir))

	// A blob that fits, streamed, passes.
	content := bytes.Repeat([]byte("b"), 300<<10)
	loc = s.startUpload("chunky")
	resp, body = s.do(http.MethodPatch, loc, io.MultiReader(bytes.NewReader(content)), -1)
	require.Equal(t, http.StatusAccepted, resp.StatusCode, string(body))
	next, err = url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	resp, body = s.do(http.MethodPut, next.RequestURI()+"&digest="+digest.FromBytes(content).String(), nil, 0)
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	_, repos := s.status()
	assert.Equal(t, int64(len(content)), repos["chunky"])
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestQuotaManifestPut: a manifest is a blob too, and the PUT that would pass
// the quota is refused without storing it.
func TestQuotaManifestPut(t *testing.T) {
	cfg := []byte(`{"architecture":"amd64","os":"linux"}`)
	small := image(v1Descriptor(cfg), "", nil, nil)
	s := serve(t, "", Options{RepoQuota: int64(len(cfg) + len(small))})
	resp, body := s.putBlob("m", cfg)
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	manifest := image(v1Descriptor(cfg), "", nil, map[string]string{"pad": strings.Repeat("x", 200)})
	resp, body = s.do(http.MethodPut, "/v2/m/manifests/v1", bytes.NewReader(manifest), int64(len(manifest)))
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	code, msg := ociErrorOf(t, body)
	assert.Equal(t, "DENIED", code)
	assert.Contains(t, msg, fmt.Sprintf(`repository "m": %d B used, %d B requested`, len(cfg), len(manifest)))
	resp, _ = s.do(http.MethodHead, "/v2/m/manifests/v1", nil, 0)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	_, err := os.Stat(filepath.Join(s.dir, filepath.FromSlash(blobDataPath(digest.FromBytes(manifest)))))
	assert.ErrorIs(t, err, fs.ErrNotExist, "the refused manifest is not stored")

	resp, body = s.do(http.MethodPut, "/v2/m/manifests/v1", bytes.NewReader(small), int64(len(small)))
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	_, repos := s.status()
	assert.Equal(t, int64(len(cfg)+len(small)), repos["m"])
}

// TestQuotaDeletesFreeSpace: deleting a repository's manifest and blobs
// frees its quota at once.
func TestQuotaDeletesFreeSpace(t *testing.T) {
	a, b := quotaImage(t, 256<<10, 1), quotaImage(t, 256<<10, 1)
	limit := imageBytes(t, a) + 1024
	s := serve(t, "", Options{Quota: limit, RepoQuota: limit})
	require.NoError(t, s.push("app:a", a))
	requireDenied(t, s.push("app:b", b), "quota")

	d, err := a.Digest()
	require.NoError(t, err)
	resp, body := s.do(http.MethodDelete, "/v2/app/manifests/"+d.String(), nil, 0)
	require.Equal(t, http.StatusAccepted, resp.StatusCode, string(body))
	accepted, blobs := acceptedBytes(t, s, "app", b)
	used, _ := s.status()
	assert.Equal(t, imageBytes(t, a)-int64(len(mustRawManifest(t, a)))+accepted-int64(blobs)*linkBytes, used,
		"the manifest no longer counts; the blobs are still linked")

	cfg, err := a.ConfigName()
	require.NoError(t, err)
	layers, err := a.Layers()
	require.NoError(t, err)
	ld, err := layers[0].Digest()
	require.NoError(t, err)
	for _, h := range []v1.Hash{cfg, ld} {
		resp, body := s.do(http.MethodDelete, "/v2/app/blobs/"+h.String(), nil, 0)
		require.Equal(t, http.StatusAccepted, resp.StatusCode, string(body))
	}
	// What is left is what the refused push had stored before it was
	// refused (its config, if the client sent that first).
	used, repos := s.status()
	assert.Equal(t, accepted-int64(blobs)*linkBytes, used)
	if blobs == 0 {
		assert.Empty(t, repos)
	}
	require.NoError(t, s.push("app:b", b))
}

func mustRawManifest(t testing.TB, img v1.Image) []byte {
	t.Helper()
	m, err := img.RawManifest()
	require.NoError(t, err)
	return m
}

func v1Descriptor(cfg []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: "application/vnd.oci.image.config.v1+json", Digest: digest.FromBytes(cfg), Size: int64(len(cfg))}
}

// TestQuotaSurvivesRestart: usage is read from the store by a new registry.
func TestQuotaSurvivesRestart(t *testing.T) {
	a, b := quotaImage(t, 128<<10, 2), quotaImage(t, 64<<10, 1)
	limit := imageBytes(t, a) + imageBytes(t, b) + 1024
	s := serve(t, "", Options{Quota: limit})
	require.NoError(t, s.push("x/one:v1", a))
	require.NoError(t, s.push("x/two:v1", b))
	// A client that copies within the registry mounts: nothing is sent again.
	src, err := remote.Image(s.ref("x/one:v1"))
	require.NoError(t, err)
	require.NoError(t, s.push("x/three:v1", src))
	used, _ := s.status()
	dir := s.dir
	s.close()

	s = serve(t, dir, Options{Quota: limit, RepoQuota: limit})
	got, repos := s.status()
	assert.Equal(t, used, got)
	assert.Equal(t, imageBytes(t, a)+imageBytes(t, b), got)
	assert.Equal(t, map[string]int64{"x/one": imageBytes(t, a), "x/two": imageBytes(t, b), "x/three": imageBytes(t, a)}, repos)
	requireDenied(t, s.push("x/four:v1", quotaImage(t, 8<<10, 1)), units.Bytes(used)+" used")
}

// TestQuotaReload: after GC removed links and blobs behind the registry's
// back, reload counts what is left.
func TestQuotaReload(t *testing.T) {
	a := quotaImage(t, 64<<10, 1)
	s := serve(t, "", Options{Quota: 10 << 20})
	require.NoError(t, s.push("gone:v1", a))
	require.NoError(t, s.push("kept:v1", a))
	used, _ := s.status()
	require.Equal(t, imageBytes(t, a), used)

	// What distribution's GC does to a repository it empties.
	require.NoError(t, os.RemoveAll(filepath.Join(s.dir, filepath.FromSlash(repositoriesRoot), "kept")))
	used, _ = s.status()
	assert.Equal(t, imageBytes(t, a), used, "no request told the registry yet")
	require.NoError(t, s.reg.quota.reload(context.Background()))
	used, _ = s.status()
	assert.Equal(t, imageBytes(t, a), used, "the blobs are still linked in gone")
	require.NoError(t, os.RemoveAll(filepath.Join(s.dir, filepath.FromSlash(repositoriesRoot), "gone")))
	require.NoError(t, s.reg.quota.reload(context.Background()))
	used, _ = s.status()
	assert.Zero(t, used)
}

// TestQuotaConcurrentPushesStayUnder: concurrent pushes cannot pass the
// limit together, and every refusal is a DENIED.
func TestQuotaConcurrentPushesStayUnder(t *testing.T) {
	imgs := make([]v1.Image, 12)
	for i := range imgs {
		imgs[i] = quotaImage(t, 96<<10, 1)
	}
	limit := 5*imageBytes(t, imgs[0]) + 2048
	s := serve(t, "", Options{Quota: limit})
	var wg sync.WaitGroup
	errs := make([]error, len(imgs))
	for i, img := range imgs {
		wg.Go(func() { errs[i] = s.pushConcurrently(fmt.Sprintf("c%d:v1", i), img) })
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
			continue
		}
		requireDenied(t, err, "the registry's storage quota")
		// The refused upload is gone (the client may have abandoned others
		// when it gave up: those were accepted, and wait for upload purging).
		var terr *transport.Error
		require.True(t, errors.As(err, &terr))
		id := path.Base(terr.Request.URL.Path)
		repo := strings.TrimPrefix(strings.TrimSuffix(terr.Request.URL.Path, "/blobs/uploads/"+id), "/v2/")
		assert.NoDirExists(t, filepath.Join(s.dir, filepath.FromSlash(uploadDirPath(repo, id))))
	}
	assert.GreaterOrEqual(t, ok, 1)
	assert.LessOrEqual(t, ok, 5)
	used, _ := s.status()
	assert.LessOrEqual(t, used, limit)
	s.close()
	// What was counted is what is stored.
	s = serve(t, s.dir, Options{Quota: limit})
	again, _ := s.status()
	assert.Equal(t, used, again)
}

func TestQuotaStatusWithoutQuota(t *testing.T) {
	s := serve(t, "", Options{})
	st, err := s.reg.QuotaStatus(context.Background())
	require.NoError(t, err)
	assert.False(t, st.Enabled)
	assert.Positive(t, st.Disk.Total)
	assert.Positive(t, st.Disk.Free)
	assert.Equal(t, min(int64(DefaultDiskReserve), st.Disk.Total/16), st.Disk.Reserve)
	assert.False(t, st.Disk.Full)
}
