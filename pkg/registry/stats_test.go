package registry

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/idpbuilder/idpbuilder/pkg/registryapi"
)

// imageManifest is an OCI image manifest over a config and layers.
func imageManifest(config v1.Descriptor, layers ...v1.Descriptor) []byte {
	if layers == nil {
		layers = []v1.Descriptor{}
	}
	b, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": v1.MediaTypeImageManifest, "config": config, "layers": layers})
	return b
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

// fetchStats reads GET /api/v1/stats?fresh=true.
func (s *opsServer) fetchStats(t testing.TB) registryapi.Stats {
	t.Helper()
	resp, body := s.get(t, "/api/v1/stats?fresh=true", "", "")
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var st registryapi.Stats
	require.NoError(t, json.Unmarshal(body, &st), string(body))
	return st
}

func TestStatsCountWhatWasPushedAndDeleted(t *testing.T) {
	dir := t.TempDir()
	s := newOpsServer(t, Options{DataDir: dir})
	tr := &testRegistry{t: t, reg: s.reg, dir: dir}

	empty := s.fetchStats(t)
	assert.Zero(t, empty.Repositories)
	assert.Zero(t, empty.UniqueBytes)
	assert.NotNil(t, empty.Largest, "an empty list, not null")

	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	l1, l2 := randomBytes(t, 3000), randomBytes(t, 5000)
	push := func(repo string, blobs ...[]byte) []v1.Descriptor {
		var ds []v1.Descriptor
		for _, b := range blobs {
			ds = append(ds, v1.Descriptor{MediaType: v1.MediaTypeImageLayerGzip, Digest: tr.pushBlob(repo, b, digest.SHA256), Size: int64(len(b))})
		}
		return ds
	}
	put := func(repo, ref string, body []byte) {
		rec := tr.putManifest(repo, ref, body, v1.MediaTypeImageManifest)
		require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	}

	// stats/a: image m (config + l1), tag v1.
	ds := push("stats/a", cfg, l1)
	config := ds[0]
	config.MediaType = v1.MediaTypeImageConfig
	m := imageManifest(config, ds[1])
	put("stats/a", "v1", m)
	// stats/b: the same image under v1 and v2, and image m2 (config + l1 + l2) as v3.
	ds = push("stats/b", cfg, l1, l2)
	m2 := imageManifest(config, ds[1], ds[2])
	put("stats/b", "v1", m)
	put("stats/b", "v2", m)
	put("stats/b", "v3", m2)
	rec := tr.do(http.MethodGet, "/v2/stats/a/manifests/v1", nil, "Accept", v1.MediaTypeImageManifest)
	require.Equal(t, http.StatusOK, rec.Code)

	c, n1, n2, mm, mm2 := int64(len(cfg)), int64(len(l1)), int64(len(l2)), int64(len(m)), int64(len(m2))
	st := s.fetchStats(t)
	assert.False(t, st.Pending)
	assert.Equal(t, 2, st.Repositories)
	assert.Equal(t, 4, st.Tags)
	assert.Equal(t, 3, st.Manifests)
	assert.Equal(t, 5, st.Blobs, "config, two layers and two manifests, each stored once")
	assert.Equal(t, c+n1+n2+mm+mm2, st.UniqueBytes)
	aBytes, bBytes := c+n1+mm, c+n1+n2+mm+mm2
	assert.Equal(t, aBytes+bBytes, st.LogicalBytes)
	assert.Equal(t, []registryapi.RepositoryStats{
		{Name: "stats/b", Tags: 3, Manifests: 2, Bytes: bBytes},
		{Name: "stats/a", Tags: 1, Manifests: 1, Bytes: aBytes},
	}, st.Largest)
	assert.Equal(t, int64(4), st.Pushes)
	assert.Equal(t, int64(1), st.Pulls)
	assert.Equal(t, int64(5), st.BlobUploads)
	assert.False(t, st.StartedAt.IsZero())
	assert.False(t, st.UpdatedAt.Before(st.StartedAt))

	// Delete tag v2, and m2 by digest (which takes tag v3 with it).
	rec = tr.do(http.MethodDelete, "/v2/stats/b/manifests/v2", nil)
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	rec = tr.do(http.MethodDelete, "/v2/stats/b/manifests/"+digest.FromBytes(m2).String(), nil)
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())

	st = s.fetchStats(t)
	assert.Equal(t, 2, st.Repositories)
	assert.Equal(t, 2, st.Tags)
	assert.Equal(t, 2, st.Manifests)
	assert.Equal(t, 5, st.Blobs, "deleted content stays until garbage collection")
	assert.Equal(t, c+n1+n2+mm+mm2, st.UniqueBytes)
	assert.Equal(t, 2*aBytes, st.LogicalBytes, "stats/b now holds what stats/a holds")
	assert.Equal(t, []registryapi.RepositoryStats{
		{Name: "stats/a", Tags: 1, Manifests: 1, Bytes: aBytes},
		{Name: "stats/b", Tags: 1, Manifests: 1, Bytes: aBytes},
	}, st.Largest, "ties are ordered by name")

	// A restart computes the same numbers from storage; the counters start over.
	require.NoError(t, s.reg.Close())
	s2 := newOpsServer(t, Options{DataDir: dir})
	again := s2.fetchStats(t)
	assert.Equal(t, st.Tags, again.Tags)
	assert.Equal(t, st.Blobs, again.Blobs)
	assert.Equal(t, st.UniqueBytes, again.UniqueBytes)
	assert.Equal(t, st.LogicalBytes, again.LogicalBytes)
	assert.Equal(t, st.Largest, again.Largest)
	assert.Zero(t, again.Pushes)
}

func TestStatsRequestsNeverWalkTheStorage(t *testing.T) {
	// A debounce longer than the test: only the walk at open ever runs.
	s := newOpsServer(t, Options{statsQuiet: time.Hour})
	tr := &testRegistry{t: t, reg: s.reg, dir: s.reg.opts.DataDir}
	first := s.fetchStats(t)
	assert.False(t, first.Pending)
	walks := s.reg.stats.walks.Load()
	require.Equal(t, int64(1), walks)

	tr.fixture("lazy/app")
	for range 20 {
		resp, body := s.get(t, "/api/v1/stats", "", "")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var st registryapi.Stats
		require.NoError(t, json.Unmarshal(body, &st))
		assert.True(t, st.Pending, "the push is not counted yet, and the answer says so")
		assert.Zero(t, st.Repositories)
		assert.Equal(t, int64(1), st.Pushes, "request counters are current at once")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.reg.Stats(ctx, true)
	assert.NoError(t, err, "a fresh request that cannot wait gets the last numbers")
	assert.Equal(t, walks, s.reg.stats.walks.Load(), "no request walked the storage")
}

func TestStatsBeforeOpen(t *testing.T) {
	r := New(Options{DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	_, err := r.Stats(context.Background(), false)
	assert.Error(t, err)
}

// BenchmarkStatsRefresh: one walk of the storage for the usage statistics
// over 1,000 images (5,000 blobs: config, three layers and the manifest of
// each), in 100 repositories. "cold" parses every manifest (the first walk
// after a start); "warm" is every later walk, with manifests remembered.
func BenchmarkStatsRefresh(b *testing.B) {
	s := newOpsServer(b, Options{statsQuiet: time.Hour})
	tr := &testRegistry{t: b, reg: s.reg, dir: s.reg.opts.DataDir}
	for i := range 1000 {
		repo := fmt.Sprintf("bench/repo%d", i%100)
		var layers []v1.Descriptor
		for range 3 {
			l := randomBytes(b, 256)
			layers = append(layers, v1.Descriptor{MediaType: v1.MediaTypeImageLayerGzip, Digest: tr.pushBlob(repo, l, digest.SHA256), Size: int64(len(l))})
		}
		cfg := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","created":"%d"}`, i))
		config := v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: tr.pushBlob(repo, cfg, digest.SHA256), Size: int64(len(cfg))}
		rec := tr.putManifest(repo, fmt.Sprintf("v%d", i), imageManifest(config, layers...), v1.MediaTypeImageManifest)
		require.Equal(b, http.StatusCreated, rec.Code, rec.Body.String())
	}
	// The loop's own walk must not run beside the measured ones.
	s.reg.stats.close()
	keeper := s.reg.stats
	ctx := context.Background()
	for _, cold := range []bool{true, false} {
		name := map[bool]string{true: "cold", false: "warm"}[cold]
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if cold {
					keeper.sizes, keeper.refs = map[digest.Digest]int64{}, map[digest.Digest]manifestRefs{}
				}
				u, err := keeper.walk(ctx)
				if err != nil || u.blobs != 5000 || u.manifests != 1000 {
					b.Fatalf("walk: %v, %d blobs, %d manifests", err, u.blobs, u.manifests)
				}
			}
		})
	}
}

func TestStatsUnavailableUntilTheStorageCanBeRead(t *testing.T) {
	dir := t.TempDir()
	// A file where the content store's directory belongs: the walk fails.
	blobs := filepath.Join(dir, "docker", "registry", "v2", "blobs")
	require.NoError(t, os.MkdirAll(filepath.Dir(blobs), 0o755))
	require.NoError(t, os.WriteFile(blobs, []byte("x"), 0o600))
	s := newOpsServer(t, Options{DataDir: dir})

	resp, body := s.get(t, "/api/v1/stats?fresh=true", "", "")
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "1", resp.Header.Get("Retry-After"))
	assert.Contains(t, string(body), "being computed")
	assert.NotContains(t, string(body), dir, "no machine path for the client")

	require.NoError(t, os.Remove(blobs))
	s.reg.stats.invalidate() // what the next write does
	st := s.fetchStats(t)
	assert.Zero(t, st.Blobs)
}
