package registry

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/idpbuilder/idpbuilder/pkg/registryapi"
)

// BenchmarkGC measures garbage collection over 1,000 images (5,000 blobs:
// a config and 4 layers each) in 10 repositories, half of them untagged
// beforehand: a dry run, and a real run that deletes their 500 manifests
// and 3,000 blobs (each op on a fresh copy of the store).
func BenchmarkGC(b *testing.B) {
	const images, perRepo, layers = 1000, 100, 4
	template := b.TempDir()
	r := New(Options{DataDir: template, Logger: slog.New(slog.DiscardHandler), RateLimit: RateLimit{Disabled: true}})
	if err := r.Open(context.Background()); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(r.Handler())
	host := strings.TrimPrefix(srv.URL, "http://")
	work := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for range 8 {
		wg.Go(func() {
			for i := range work {
				if err := pushBenchImage(host, i/perRepo, i, layers, i%2 == 1); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
				}
			}
		})
	}
	for i := range images {
		work <- i
	}
	close(work)
	wg.Wait()
	srv.Close()
	_ = r.Close()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	req := registryapi.GCRequest{Untagged: true, Grace: grace0()}

	b.Run("dry-run", func(b *testing.B) {
		r := New(Options{DataDir: template, Logger: slog.New(slog.DiscardHandler)})
		if err := r.Open(context.Background()); err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		dry := req
		dry.DryRun = true
		var res registryapi.GCResult
		b.ResetTimer()
		for range b.N {
			var err error
			if res, err = r.GC(context.Background(), dry); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(res.Blobs)), "blobs-deleted")
	})
	b.Run("real", func(b *testing.B) {
		var res registryapi.GCResult
		for range b.N {
			b.StopTimer()
			dir := b.TempDir()
			if err := os.CopyFS(dir, os.DirFS(template)); err != nil {
				b.Fatal(err)
			}
			r := New(Options{DataDir: dir, Logger: slog.New(slog.DiscardHandler)})
			if err := r.Open(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			var err error
			if res, err = r.GC(context.Background(), req); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			_ = r.Close()
			b.StartTimer()
		}
		// Each untagged image: its manifest, config and layers.
		if len(res.Manifests) != images/2 || len(res.Blobs) != images/2*(layers+2) {
			b.Fatalf("deleted %d manifests and %d blobs, want %d and %d", len(res.Manifests), len(res.Blobs), images/2, images/2*(layers+2))
		}
		b.ReportMetric(float64(len(res.Blobs)), "blobs-deleted")
		b.ReportMetric(float64(res.SweepMS), "sweep-ms")
	})
}

// pushBenchImage pushes a random image as bench/r<repo>:t<i>, then deletes
// the tag if untag.
func pushBenchImage(host string, repo, i, layers int, untag bool) error {
	img, err := random.Image(256, int64(layers))
	if err != nil {
		return err
	}
	ref, err := name.ParseReference(fmt.Sprintf("%s/bench/r%d:t%d", host, repo, i), name.Insecure)
	if err != nil {
		return err
	}
	if err := remote.Write(ref, img); err != nil {
		return err
	}
	if untag {
		return remote.Delete(ref)
	}
	return nil
}

func grace0() *registryapi.Duration {
	g := registryapi.Duration(0)
	return &g
}
