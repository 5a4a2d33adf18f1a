package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// BenchmarkPushSmallImageQuota is BenchmarkPushSmallImage with both quotas
// on: the cost of counting per push (compare the two).
func BenchmarkPushSmallImageQuota(b *testing.B) {
	r := New(Options{Addr: "127.0.0.1:0", DataDir: b.TempDir(), Logger: slog.New(slog.DiscardHandler),
		RateLimit: RateLimit{Disabled: true}, Quota: 1 << 40, RepoQuota: 1 << 40})
	if err := r.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = r.Stop(context.Background()) })
	imgs := randomImages(b, b.N, 4096)
	b.ResetTimer()
	for i := range b.N {
		if err := remote.Write(ref(b, r, fmt.Sprintf("bench/small:v%d", i)), imgs[i]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkQuotaLoad reads the usage of 1,000 repositories of 5 blobs each
// (a manifest, a config, two layers of their own and a base layer they all
// share: 4,001 blobs, 5,000 links), as the first push after a start does.
func BenchmarkQuotaLoad(b *testing.B) {
	dir := b.TempDir()
	put := func(p string, content []byte) {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(full, content, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	blob := func(content []byte) digest.Digest {
		d := digest.FromBytes(content)
		put(blobDataPath(d), content)
		return d
	}
	baseContent := make([]byte, 4096)
	base := v1.Descriptor{MediaType: v1.MediaTypeImageLayerGzip, Digest: blob(baseContent), Size: int64(len(baseContent))}
	for i := range 1000 {
		repo := fmt.Sprintf("team%d/app%d", i%10, i)
		descs := []v1.Descriptor{base}
		for j := range 3 {
			content := fmt.Appendf(nil, "blob %d of %s", j, repo)
			descs = append(descs, v1.Descriptor{MediaType: v1.MediaTypeImageLayerGzip, Digest: blob(content), Size: int64(len(content))})
		}
		for _, d := range descs {
			put(layerLinkPath(repo, d.Digest), []byte(d.Digest))
		}
		descs[1].MediaType = v1.MediaTypeImageConfig
		manifest, err := json.Marshal(v1.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageManifest,
			Config: descs[1], Layers: []v1.Descriptor{descs[0], descs[2], descs[3]}})
		if err != nil {
			b.Fatal(err)
		}
		put(manifestRevisionLinkPath(repo, blob(manifest)), []byte(digest.FromBytes(manifest)))
	}
	r := New(Options{DataDir: dir, Logger: slog.New(slog.DiscardHandler), Quota: 1 << 40})
	if err := r.Open(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = r.Close() })
	b.ResetTimer()
	for range b.N {
		if err := r.quota.reload(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	st, err := r.QuotaStatus(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	if len(r.quota.blobs) != 4001 {
		b.Fatalf("%d blobs counted, want 4001", len(r.quota.blobs))
	}
	b.ReportMetric(float64(st.Used), "bytes-counted")
}
