package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Benchmarks run against a real registry on loopback with filesystem storage in a
// temp dir, through real HTTP clients. `make bench` runs them; they assert nothing
// about time (these machines are noisy) and report what they measure.

// startBenchRegistry measures the engine: the per-client rate limit (1000/s by
// default) is off, since every benchmark client comes from 127.0.0.1.
func startBenchRegistry(b *testing.B) *Registry {
	b.Helper()
	return startBenchRegistryOps(b, true)
}

// startBenchRegistryOps is startBenchRegistry with the metrics layer and the
// usage statistics on or off (BenchmarkMetricsCost compares the two).
func startBenchRegistryOps(b *testing.B, ops bool) *Registry {
	b.Helper()
	r := New(Options{Addr: "127.0.0.1:0", DataDir: b.TempDir(), Logger: slog.New(slog.DiscardHandler), RateLimit: RateLimit{Disabled: true}, noOps: !ops})
	if err := r.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = r.Stop(context.Background()) })
	return r
}

func randomImages(b *testing.B, n int, layerSize int64) []v1.Image {
	b.Helper()
	imgs := make([]v1.Image, n)
	for i := range imgs {
		img, err := random.Image(layerSize, 1)
		if err != nil {
			b.Fatal(err)
		}
		imgs[i] = img
	}
	return imgs
}

// BenchmarkPushSmallImage: one small image (4 KiB layer + config + manifest) per op,
// the push latency a developer feels for a tiny image.
func BenchmarkPushSmallImage(b *testing.B) {
	r := startBenchRegistry(b)
	imgs := randomImages(b, b.N, 4096)
	b.ResetTimer()
	for i := range b.N {
		if err := remote.Write(ref(b, r, fmt.Sprintf("bench/small:v%d", i)), imgs[i]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConcurrentPush100 is the seed plan's load test: 100 concurrent pushes of
// distinct images per op. ns/op is the wall time for all 100; errors are reported,
// not hidden.
func BenchmarkConcurrentPush100(b *testing.B) {
	const n = 100
	r := startBenchRegistry(b)
	imgs := randomImages(b, n*b.N, 16<<10)
	var errCount int
	b.ResetTimer()
	for op := range b.N {
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := remote.Write(ref(b, r, fmt.Sprintf("load-test:v%d-%d", op, i)), imgs[op*n+i]); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			errCount++
			b.Log(err)
		}
	}
	b.ReportMetric(float64(errCount), "errors")
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "images/s")
}

const bigBlob = 512 << 20

// blobStream is a deterministic, incompressible stream of size bytes.
func blobStream(seed uint64, size int64) io.Reader {
	var s [32]byte
	s[0] = byte(seed)
	return io.LimitReader(rand.NewChaCha8(s), size)
}

func blobDigest(b *testing.B, seed uint64) string {
	b.Helper()
	h := sha256.New()
	if _, err := io.Copy(h, blobStream(seed, bigBlob)); err != nil {
		b.Fatal(err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// pushBlob uploads a blob the way docker does: POST, one streaming PATCH, PUT.
func pushBlob(b *testing.B, c *http.Client, base, repo string, body io.Reader, digest string) {
	b.Helper()
	resp, err := c.Post(base+"/v2/"+repo+"/blobs/uploads/", "", nil)
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		b.Fatalf("POST upload: %s", resp.Status)
	}
	loc := absolute(base, resp.Header.Get("Location"))
	req, _ := http.NewRequest(http.MethodPatch, loc, body)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		b.Fatalf("PATCH: %s", resp.Status)
	}
	loc = absolute(base, resp.Header.Get("Location"))
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	req, _ = http.NewRequest(http.MethodPut, loc+sep+"digest="+digest, nil)
	resp, err = c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		b.Fatalf("PUT: %s", resp.Status)
	}
}

func absolute(base, loc string) string {
	if strings.HasPrefix(loc, "/") {
		return base + loc
	}
	return loc
}

// BenchmarkBlobPush512MiB: throughput of one 512 MiB blob upload (MB/s).
func BenchmarkBlobPush512MiB(b *testing.B) {
	r := startBenchRegistry(b)
	base := "http://" + r.Addr()
	c := &http.Client{}
	b.SetBytes(bigBlob)
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		digest := blobDigest(b, uint64(i))
		b.StartTimer()
		pushBlob(b, c, base, fmt.Sprintf("bench/big%d", i), blobStream(uint64(i), bigBlob), digest)
	}
}

// BenchmarkBlobPull512MiB: throughput of one 512 MiB blob download, digest verified (MB/s).
func BenchmarkBlobPull512MiB(b *testing.B) {
	r := startBenchRegistry(b)
	base := "http://" + r.Addr()
	c := &http.Client{}
	digest := blobDigest(b, 42)
	pushBlob(b, c, base, "bench/pull", blobStream(42, bigBlob), digest)
	b.SetBytes(bigBlob)
	b.ResetTimer()
	for range b.N {
		resp, err := c.Get(base + "/v2/bench/pull/blobs/" + digest)
		if err != nil {
			b.Fatal(err)
		}
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		resp.Body.Close()
		if err != nil || n != bigBlob || "sha256:"+hex.EncodeToString(h.Sum(nil)) != digest {
			b.Fatalf("pulled %d bytes, err %v, digest mismatch", n, err)
		}
	}
}

// BenchmarkManifestGet16Clients: manifest GET latency with 16 concurrent clients.
// Reports p50 and p99 in microseconds beside the usual ns/op (wall time / requests).
func BenchmarkManifestGet16Clients(b *testing.B) {
	const clients = 16
	r := startBenchRegistry(b)
	img, err := random.Image(1024, 3)
	if err != nil {
		b.Fatal(err)
	}
	if err := remote.Write(ref(b, r, "bench/manifest:v1"), img); err != nil {
		b.Fatal(err)
	}
	url := "http://" + r.Addr() + "/v2/bench/manifest/manifests/v1"
	tr := &http.Transport{MaxIdleConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}

	var mu sync.Mutex
	var lat []time.Duration
	b.SetParallelism((clients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			req.Header.Set("Accept", "application/vnd.docker.distribution.manifest.v2+json")
			t0 := time.Now()
			resp, err := c.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			mine = append(mine, time.Since(t0))
			if resp.StatusCode != http.StatusOK {
				b.Errorf("GET manifest: %s", resp.Status)
				return
			}
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	b.StopTimer()
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
