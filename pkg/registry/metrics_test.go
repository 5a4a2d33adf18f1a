package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/idpbuilder/idpbuilder/pkg/auth"
	"github.com/idpbuilder/idpbuilder/pkg/registryapi"
)

// opsServer is a registry opened with opts behind an httptest server.
type opsServer struct {
	reg  *Registry
	srv  *httptest.Server
	host string // host:port for image references
}

func newOpsServer(t testing.TB, opts Options) *opsServer {
	t.Helper()
	if opts.DataDir == "" {
		opts.DataDir = t.TempDir()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.statsQuiet == 0 {
		opts.statsQuiet = 20 * time.Millisecond
	}
	opts.RateLimit.Disabled = true
	r := New(opts)
	require.NoError(t, r.Open(context.Background()))
	srv := httptest.NewServer(r.Handler())
	t.Cleanup(func() {
		srv.Close()
		_ = r.Close()
	})
	return &opsServer{reg: r, srv: srv, host: strings.TrimPrefix(srv.URL, "http://")}
}

func (s *opsServer) ref(t testing.TB, repo string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s.host+"/"+repo, name.Insecure)
	require.NoError(t, err)
	return r
}

// get sends a GET, with basic auth when user is set.
func (s *opsServer) get(t testing.TB, path, user, password string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.srv.URL+path, nil)
	require.NoError(t, err)
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := s.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, body
}

// scrape is the parsed metrics of a /metrics answer.
type scrape map[string]*dto.MetricFamily

func parseScrape(t testing.TB, body []byte) scrape {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	require.NoError(t, err, "the scrape parses as Prometheus text")
	return mfs
}

func (s *opsServer) scrape(t testing.TB) scrape {
	t.Helper()
	resp, body := s.get(t, "/metrics", "", "")
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	return parseScrape(t, body)
}

// value is the value of the series of family name whose labels include
// labels (name=value pairs); 0 when there is none.
func (sc scrape) value(name string, labels ...string) float64 {
	mf, ok := sc[name]
	if !ok {
		return 0
	}
	var sum float64
	for _, m := range mf.Metric {
		if !hasLabels(m, labels) {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		case m.Untyped != nil:
			sum += m.Untyped.GetValue()
		}
	}
	return sum
}

func hasLabels(m *dto.Metric, labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		found := false
		for _, lp := range m.Label {
			if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// blobBytes sums the sizes of an image's config and layers.
func blobBytes(t testing.TB, img v1.Image) (n int64, blobs int) {
	t.Helper()
	m, err := img.Manifest()
	require.NoError(t, err)
	n = m.Config.Size
	for _, l := range m.Layers {
		n += l.Size
	}
	return n, len(m.Layers) + 1
}

func TestMetricsCountExactlyThePushesMade(t *testing.T) {
	s := newOpsServer(t, Options{})
	before := s.scrape(t)

	const images = 3
	var wantBlobs int
	var wantUploadBytes, wantManifestBytes int64
	for i := range images {
		img, err := random.Image(2048, 2)
		require.NoError(t, err)
		require.NoError(t, remote.Write(s.ref(t, fmt.Sprintf("metrics/app%d:v1", i)), img))
		n, blobs := blobBytes(t, img)
		wantUploadBytes += n
		wantBlobs += blobs
		raw, err := img.RawManifest()
		require.NoError(t, err)
		wantManifestBytes += int64(len(raw))
	}
	for i := range images {
		img, err := remote.Image(s.ref(t, fmt.Sprintf("metrics/app%d:v1", i)))
		require.NoError(t, err)
		_, err = img.ConfigFile()
		require.NoError(t, err)
	}
	after := s.scrape(t)

	delta := func(name string, labels ...string) float64 {
		return after.value(name, labels...) - before.value(name, labels...)
	}
	assert.Equal(t, float64(wantBlobs), delta("registry_storage_blob_upload_total"), "one upload per config and layer")
	assert.Equal(t, float64(images), delta("registry_manifest_pushes_total"))
	assert.Equal(t, float64(images), delta("registry_manifest_pulls_total"))
	assert.Equal(t, float64(images), delta("registry_http_request_duration_seconds", "method", "PUT", "route", "manifest", "status", "2xx"))
	assert.Equal(t, float64(images), delta("registry_http_requests_total", "method", "PUT", "route", "manifest", "status", "2xx"))
	assert.Equal(t, float64(wantUploadBytes), delta("registry_http_request_bytes_total", "route", "upload"), "every blob byte counted once")
	assert.Equal(t, float64(wantManifestBytes), delta("registry_http_request_bytes_total", "route", "manifest"))
	assert.Positive(t, delta("registry_http_response_bytes_total", "route", "manifest"))
	assert.Equal(t, 1.0, after.value("registry_http_requests_in_flight"), "only the scrape itself is in flight")
	assert.Zero(t, after.value("registry_http_requests_total", "status", "5xx"))

	require.Contains(t, after, "registry_http_request_duration_seconds")
	assert.Equal(t, dto.MetricType_HISTOGRAM, after["registry_http_request_duration_seconds"].GetType())
	for _, m := range after["registry_http_request_duration_seconds"].Metric {
		var names []string
		for _, l := range m.Label {
			names = append(names, l.GetName())
		}
		assert.ElementsMatch(t, []string{"method", "route", "status"}, names, "bounded labels only")
	}
	assert.Equal(t, 1.0, after.value("registry_build_info"))
	assert.Contains(t, after, "go_goroutines", "the Go runtime's metrics are joined in")
	assert.Contains(t, after, "registry_storage_action_seconds", "distribution's storage metrics are joined in")
	for n := range after {
		assert.False(t, strings.HasPrefix(n, "registry_proxy_"), "%s: distribution's unused proxy metrics are left out", n)
	}
}

func TestTwoRegistriesInOneProcessKeepTheirOwnMetrics(t *testing.T) {
	a := newOpsServer(t, Options{})
	b := newOpsServer(t, Options{})
	img, err := random.Image(512, 1)
	require.NoError(t, err)
	require.NoError(t, remote.Write(a.ref(t, "only/a:v1"), img))

	sa, sb := a.scrape(t), b.scrape(t)
	assert.Equal(t, 1.0, sa.value("registry_manifest_pushes_total"))
	assert.Equal(t, 0.0, sb.value("registry_manifest_pushes_total"))
	assert.Equal(t, 2.0, sa.value("registry_storage_blob_upload_total"))
	assert.Equal(t, 0.0, sb.value("registry_storage_blob_upload_total"))
	assert.Contains(t, sb, "go_goroutines")
}

func TestMetricsLabelsStayBounded(t *testing.T) {
	s := newOpsServer(t, Options{})
	for _, m := range []string{"BREW", "PROPFIND", "TRACE"} {
		req, err := http.NewRequest(m, s.srv.URL+"/v2/", nil)
		require.NoError(t, err)
		resp, err := s.srv.Client().Do(req)
		require.NoError(t, err)
		resp.Body.Close()
	}
	resp, _ := s.get(t, "/no/such/path/"+strings.Repeat("x", 50), "", "")
	require.Equal(t, http.StatusNotFound, resp.StatusCode)

	sc := s.scrape(t)
	assert.Equal(t, 3.0, sc.value("registry_http_requests_total", "method", "other", "route", "ping"))
	assert.Equal(t, 1.0, sc.value("registry_http_requests_total", "method", "GET", "route", "unknown", "status", "4xx"))
	for _, m := range sc["registry_http_requests_total"].Metric {
		for _, l := range m.Label {
			assert.NotContains(t, l.GetValue(), "/", "no paths in labels")
		}
	}
}

// authServer is an ops server whose user alice has testPassword.
func authServer(t *testing.T, policy auth.Policy) *opsServer {
	t.Helper()
	h := auth.Htpasswd{Path: filepath.Join(t.TempDir(), "htpasswd")}
	require.NoError(t, h.Set("alice", testPassword))
	return newOpsServer(t, Options{Auth: &AuthOptions{Policy: policy, Verifier: auth.NewVerifier(h)}})
}

func TestOpsEndpointsFollowTheAuthPolicy(t *testing.T) {
	for _, tc := range []struct {
		policy    auth.Policy
		anonymous int // status of an anonymous GET of /metrics and /api/v1/stats
	}{
		{auth.PolicyNone, http.StatusOK},
		{auth.PolicyPush, http.StatusOK},
		{auth.PolicyAll, http.StatusUnauthorized},
	} {
		t.Run(string(tc.policy), func(t *testing.T) {
			s := authServer(t, tc.policy)
			for _, path := range []string{"/metrics", "/api/v1/stats"} {
				resp, body := s.get(t, path, "", "")
				assert.Equal(t, tc.anonymous, resp.StatusCode, "anonymous %s: %s", path, body)
				if tc.anonymous == http.StatusUnauthorized {
					assert.Contains(t, resp.Header.Get("WWW-Authenticate"), "realm=")
				}
				resp, body = s.get(t, path, "alice", testPassword)
				assert.Equal(t, http.StatusOK, resp.StatusCode, "alice %s: %s", path, body)
				if tc.policy != auth.PolicyNone {
					resp, _ = s.get(t, path, "alice", "wrong")
					assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "a wrong password is refused on %s", path)
				}
			}
			if tc.policy != auth.PolicyNone {
				// A user's token (what Docker and containerd send) will do,
				// whatever its scopes.
				resp, body := s.get(t, tokenPath+"?service="+auth.TokenService+"&scope=repository:some/repo:pull", "alice", testPassword)
				require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
				var tok tokenResponse
				require.NoError(t, json.Unmarshal(body, &tok))
				for _, path := range []string{"/metrics", "/api/v1/stats"} {
					req, err := http.NewRequest(http.MethodGet, s.srv.URL+path, nil)
					require.NoError(t, err)
					req.Header.Set("Authorization", "Bearer "+tok.Token)
					resp, err := s.srv.Client().Do(req)
					require.NoError(t, err)
					resp.Body.Close()
					assert.Equal(t, http.StatusOK, resp.StatusCode, "alice's token on %s", path)
				}
			}
			// Detailed health is for anyone, like the probes.
			resp, body := s.get(t, "/health", "", "")
			assert.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		})
	}
}

func TestOpsEndpointsAnswerGetOnly(t *testing.T) {
	s := newOpsServer(t, Options{})
	for _, path := range []string{"/metrics", "/api/v1/stats", "/health"} {
		req, err := http.NewRequest(http.MethodPost, s.srv.URL+path, strings.NewReader("x"))
		require.NoError(t, err)
		resp, err := s.srv.Client().Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, path)
		assert.Contains(t, string(body), `"code":"UNSUPPORTED"`, path)
	}
}

func TestMetricsAddrServesMetricsWithoutAuth(t *testing.T) {
	h := auth.Htpasswd{Path: filepath.Join(t.TempDir(), "htpasswd")}
	require.NoError(t, h.Set("alice", testPassword))
	r := New(Options{Addr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0", DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler),
		Auth: &AuthOptions{Policy: auth.PolicyAll, Verifier: auth.NewVerifier(h)}})
	require.NoError(t, r.Start(context.Background()))
	t.Cleanup(func() { _ = r.Stop(context.Background()) })
	require.NotEmpty(t, r.MetricsAddr())
	require.NotEqual(t, r.Addr(), r.MetricsAddr())

	img, err := random.Image(512, 1)
	require.NoError(t, err)
	dst, err := name.ParseReference(r.Addr()+"/sep/app:v1", name.Insecure)
	require.NoError(t, err)
	require.NoError(t, remote.Write(dst, img, remote.WithAuth(&authn.Basic{Username: "alice", Password: testPassword})))

	resp, err := http.Get("http://" + r.MetricsAddr() + "/metrics")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	sc := parseScrape(t, body)
	assert.Equal(t, 1.0, sc.value("registry_manifest_pushes_total"), "the separate address shows the registry's metrics")

	resp, err = http.Get("http://" + r.Addr() + "/metrics")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "the registry's port keeps its auth policy")

	resp, err = http.Get("http://" + r.MetricsAddr() + "/v2/")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "the metrics address serves nothing else")

	addr := r.MetricsAddr()
	require.NoError(t, r.Stop(context.Background()))
	_, err = http.Get("http://" + addr + "/metrics")
	assert.Error(t, err, "Stop closes the metrics address too")
}

func TestMetricsAddrBusyFailsStart(t *testing.T) {
	busy, err := Listen(context.Background(), "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	r := New(Options{Addr: "127.0.0.1:0", MetricsAddr: busy.Addr().String(), DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	err = r.Start(context.Background())
	var le *ListenError
	require.ErrorAs(t, err, &le)
	assert.True(t, le.InUse)
}

func TestGCAndQuotaFeedMetricsStatsAndHealth(t *testing.T) {
	s := newOpsServer(t, Options{})
	assert.NotContains(t, s.scrape(t), "registry_quota_used_bytes", "no quota source: no quota gauges")
	st, err := s.reg.Stats(context.Background(), false)
	require.NoError(t, err)
	assert.Nil(t, st.LastGC, "no GC source: no made-up GC result")
	assert.Nil(t, st.Quota)
	assert.Contains(t, check(t, s.reg.DetailedHealth(context.Background()), "gc").Message, "no garbage collection has run")

	run := registryapi.GCSummary{StartedAt: time.Now().Add(-time.Second), DurationMS: 250, DeletedBlobs: 4, DeletedManifests: 1, FreedBytes: 10 << 20}
	s.reg.gcRan(run)
	s.reg.gcRan(registryapi.GCSummary{StartedAt: time.Now(), DurationMS: 10, DryRun: true, DeletedBlobs: 9, FreedBytes: 1 << 30})
	s.reg.gcRan(registryapi.GCSummary{StartedAt: time.Now(), DurationMS: 10, Error: "disk on fire"})
	last := run
	s.reg.setGCSource(func() *registryapi.GCSummary { return &last })
	quota := registryapi.QuotaSummary{UsedBytes: 95 << 20, LimitBytes: 100 << 20,
		Repositories: []registryapi.RepositoryQuota{{Name: "big/app", UsedBytes: 58 << 20, LimitBytes: 60 << 20}}}
	s.reg.setQuotaSource(func() *registryapi.QuotaSummary { return &quota })

	sc := s.scrape(t)
	assert.Equal(t, 1.0, sc.value("registry_gc_runs_total", "result", "ok"))
	assert.Equal(t, 1.0, sc.value("registry_gc_runs_total", "result", "dry_run"))
	assert.Equal(t, 1.0, sc.value("registry_gc_runs_total", "result", "failed"))
	assert.Equal(t, 3.0, sc.value("registry_gc_duration_seconds"))
	assert.Equal(t, float64(10<<20), sc.value("registry_gc_freed_bytes_total"), "dry and failed runs free nothing")
	assert.Equal(t, 4.0, sc.value("registry_gc_deleted_blobs_total"))
	assert.Equal(t, float64(95<<20), sc.value("registry_quota_used_bytes"))
	assert.Equal(t, float64(100<<20), sc.value("registry_quota_limit_bytes"))
	assert.Equal(t, float64(60<<20), sc.value("registry_repository_quota_limit_bytes", "repository", "big/app"))

	st, err = s.reg.Stats(context.Background(), false)
	require.NoError(t, err)
	require.NotNil(t, st.LastGC)
	assert.Equal(t, int64(10<<20), st.LastGC.FreedBytes)
	require.NotNil(t, st.Quota)
	assert.Equal(t, int64(95<<20), st.Quota.UsedBytes)

	h := s.reg.DetailedHealth(context.Background())
	assert.Equal(t, registryapi.Degraded, h.Status, "95% of the quota is used")
	gc, q := check(t, h, "gc"), check(t, h, "quota")
	assert.Equal(t, registryapi.Healthy, gc.Status)
	assert.Contains(t, gc.Message, "freed 10.0 MiB")
	assert.Equal(t, registryapi.Degraded, q.Status)
	assert.Contains(t, q.Message, "95.0 MiB of 100.0 MiB (95%)")
	assert.Contains(t, q.Message, "big/app")

	last = registryapi.GCSummary{StartedAt: time.Now(), Error: "open /secret/path: permission denied"}
	gc = check(t, s.reg.DetailedHealth(context.Background()), "gc")
	assert.Equal(t, registryapi.Degraded, gc.Status)
	assert.NotContains(t, gc.Message, "/secret/path", "GC errors go to the log, not to anonymous readers")
}

// TestRealGCAndQuotaFeedOps: the registry's own collection and quota reach the
// metrics, the statistics and /health, not only summaries handed in by a test.
func TestRealGCAndQuotaFeedOps(t *testing.T) {
	s := newOpsServer(t, Options{Quota: 1 << 30})
	img, err := random.Image(4096, 2)
	require.NoError(t, err)
	ref := s.ref(t, "gone/app:v1")
	require.NoError(t, remote.Write(ref, img))
	d, err := img.Digest()
	require.NoError(t, err)
	require.NoError(t, remote.Delete(ref.Context().Digest(d.String())))

	zero := registryapi.Duration(0)
	res, err := s.reg.GC(context.Background(), registryapi.GCRequest{Grace: &zero})
	require.NoError(t, err)
	require.NotEmpty(t, res.Blobs, "the deleted image's blobs are collected")

	sc := s.scrape(t)
	assert.Equal(t, 1.0, sc.value("registry_gc_runs_total", "result", "ok"))
	assert.Equal(t, float64(res.BytesFreed), sc.value("registry_gc_freed_bytes_total"))
	assert.Equal(t, float64(1<<30), sc.value("registry_quota_limit_bytes"))
	st, err := s.reg.Stats(context.Background(), true)
	require.NoError(t, err)
	require.NotNil(t, st.LastGC)
	assert.Equal(t, res.BytesFreed, st.LastGC.FreedBytes)
	assert.Equal(t, len(res.Blobs), st.LastGC.DeletedBlobs)
	require.NotNil(t, st.Quota)
	assert.Equal(t, int64(1<<30), st.Quota.LimitBytes)
	h := s.reg.DetailedHealth(context.Background())
	assert.Contains(t, check(t, h, "gc").Message, "freed")
	assert.Equal(t, registryapi.Healthy, check(t, h, "quota").Status)
	assert.Equal(t, registryapi.Healthy, check(t, h, "writes").Status)
}

// BenchmarkMetricsCost measures what the metrics layer and the usage
// statistics cost on BenchmarkPushSmallImage's and
// BenchmarkManifestGet16Clients's work. Two registries run side by side, one
// without (off) and one with (on), and every op does the same request to each
// in turn, so the machine's noise falls on both alike. It reports each
// side's mean (and for GETs, p50 and p99) and on/off as a ratio.
func BenchmarkMetricsCost(b *testing.B) {
	b.Run("push-small", func(b *testing.B) {
		off, on := startBenchRegistryOps(b, false), startBenchRegistryOps(b, true)
		imgs := randomImages(b, 2*b.N, 4096)
		var tOff, tOn time.Duration
		b.ResetTimer()
		for i := range b.N {
			for j, r := range []*Registry{off, on} {
				t0 := time.Now()
				if err := remote.Write(ref(b, r, fmt.Sprintf("bench/small:v%d", i)), imgs[2*i+j]); err != nil {
					b.Fatal(err)
				}
				if j == 0 {
					tOff += time.Since(t0)
				} else {
					tOn += time.Since(t0)
				}
			}
		}
		b.ReportMetric(float64(tOff.Microseconds())/float64(b.N), "off-µs/push")
		b.ReportMetric(float64(tOn.Microseconds())/float64(b.N), "on-µs/push")
		b.ReportMetric(float64(tOn)/float64(tOff), "on/off")
	})
	b.Run("manifest-get-16", func(b *testing.B) {
		const clients = 16
		regs := []*Registry{startBenchRegistryOps(b, false), startBenchRegistryOps(b, true)}
		img, err := random.Image(1024, 3)
		if err != nil {
			b.Fatal(err)
		}
		var urls []string
		for _, r := range regs {
			if err := remote.Write(ref(b, r, "bench/manifest:v1"), img); err != nil {
				b.Fatal(err)
			}
			urls = append(urls, "http://"+r.Addr()+"/v2/bench/manifest/manifests/v1")
		}
		tr := &http.Transport{MaxIdleConnsPerHost: clients}
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr}
		var mu sync.Mutex
		lat := [2][]time.Duration{}
		b.SetParallelism((clients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			var mine [2][]time.Duration
			for pb.Next() {
				for j, url := range urls {
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
					mine[j] = append(mine[j], time.Since(t0))
					if resp.StatusCode != http.StatusOK {
						b.Errorf("GET manifest: %s", resp.Status)
						return
					}
				}
			}
			mu.Lock()
			for j := range mine {
				lat[j] = append(lat[j], mine[j]...)
			}
			mu.Unlock()
		})
		b.StopTimer()
		var mean [2]float64
		for j, name := range []string{"off", "on"} {
			l := lat[j]
			if len(l) == 0 {
				return
			}
			slices.Sort(l)
			var sum time.Duration
			for _, d := range l {
				sum += d
			}
			mean[j] = float64(sum.Microseconds()) / float64(len(l))
			b.ReportMetric(mean[j], name+"-µs/get")
			b.ReportMetric(float64(l[len(l)/2].Microseconds()), name+"-p50-µs")
			b.ReportMetric(float64(l[len(l)*99/100].Microseconds()), name+"-p99-µs")
		}
		b.ReportMetric(mean[1]/mean[0], "on/off")
	})
	// The layer alone, in process: what a request pays for being measured.
	b.Run("layer", func(b *testing.B) {
		m := newMetrics(slog.New(slog.DiscardHandler), &opsSources{}, newStatsKeeper(b.TempDir(), slog.New(slog.DiscardHandler), 0), nil)
		h := withRequestInfo(m.layer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte("{}"))
		})))
		bare := withRequestInfo(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte("{}"))
		}))
		for _, tc := range []struct {
			name string
			h    http.Handler
		}{{"off", bare}, {"on", h}} {
			b.Run(tc.name, func(b *testing.B) {
				w := httptest.NewRecorder()
				b.ReportAllocs()
				for b.Loop() {
					req := httptest.NewRequest(http.MethodGet, "/v2/bench/manifest/manifests/v1", strings.NewReader("x"))
					tc.h.ServeHTTP(w, req)
				}
			})
		}
	})
}
