package registry

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// These benchmarks drive the handler in-process (no socket), so they measure
// the registry's own work: referrers lookups, and what the manifest layer adds
// to a PUT.

// BenchmarkReferrersGet1000: GET referrers of a subject with 1,000 referrers
// (one full page), from the in-memory cache and from disk.
func BenchmarkReferrersGet1000(b *testing.B) {
	tr := openTestRegistry(b, "")
	config, subject := tr.fixture("bench/refs")
	for i := range 1000 {
		tr.pushReferrer("bench/refs", "", config, subject, "application/vnd.example.sig", i)
	}
	target := "/v2/bench/refs/referrers/" + subject.Digest.String()
	for _, mode := range []string{"cached", "from-disk"} {
		b.Run(mode, func(b *testing.B) {
			for b.Loop() {
				if mode == "from-disk" {
					tr.reg.refs.cache.Clear()
				}
				rec := httptest.NewRecorder()
				tr.reg.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
				if rec.Code != http.StatusOK || rec.Body.Len() < 1000*100 {
					b.Fatalf("GET referrers: %d, %d bytes", rec.Code, rec.Body.Len())
				}
			}
		})
	}
}

// BenchmarkManifestPut: a manifest PUT straight into distribution, through our
// layers, and through them with a subject (one new subject per push, as when
// every image gets a signature).
func BenchmarkManifestPut(b *testing.B) {
	tr := openTestRegistry(b, "")
	config, _ := tr.fixture("bench/put")
	for _, mode := range []string{"distribution-only", "plain", "subject"} {
		b.Run(mode, func(b *testing.B) {
			h := tr.reg.Handler()
			if mode == "distribution-only" {
				h = tr.reg.eng.app
			}
			i := 0
			for b.Loop() {
				i++
				var subject *v1.Descriptor
				if mode == "subject" {
					subject = &v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: digest.FromString(fmt.Sprint("subject", i)), Size: 100}
				}
				body := image(config, "application/vnd.example.sig", subject, map[string]string{"mode": mode, "i": fmt.Sprint(i)})
				req := httptest.NewRequest(http.MethodPut, "/v2/bench/put/manifests/"+digest.FromBytes(body).String(), bytes.NewReader(body))
				req.Header.Set("Content-Type", v1.MediaTypeImageManifest)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusCreated {
					b.Fatalf("PUT: %d %s", rec.Code, rec.Body.String())
				}
			}
		})
	}
}
