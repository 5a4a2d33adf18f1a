//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
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

	"github.com/idpbuilder/idpbuilder/pkg/registryapi"
)

// phase3Registry is a running `idpbuilder registry serve` with what the seed
// plan's Phase 3 tests ask of a registry.
type phase3Registry struct {
	t           *testing.T
	srv         *server
	metricsAddr string // the --metrics-addr server, "" without one
	auth        authn.Authenticator
}

var metricsLineRE = regexp.MustCompile(`Metrics on http://(\S+)/metrics`)

// setupRegistryWithMonitoring serves /metrics on a separate loopback address
// as well and pushes one image, so the counters have moved.
func setupRegistryWithMonitoring(t *testing.T) *phase3Registry {
	t.Helper()
	srv := startServer(t, "", "--metrics-addr", "127.0.0.1:0")
	r := &phase3Registry{t: t, srv: srv, metricsAddr: waitMetricsAddr(t, srv)}
	require.NoError(t, r.Push("monitoring/app:v1"))
	return r
}

// setupProductionRegistry is `registry serve` as a user runs it: defaults
// (rate limits on, access log on stderr).
func setupProductionRegistry(t *testing.T) *phase3Registry {
	t.Helper()
	return &phase3Registry{t: t, srv: startServer(t, "")}
}

// waitMetricsAddr reads the metrics address from serve's ready lines.
func waitMetricsAddr(t *testing.T, srv *server) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m := metricsLineRE.FindStringSubmatch(srv.stdout.String()); m != nil {
			return m[1]
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no metrics address in the output:\n%s", srv.stdout)
	return ""
}

// GetMetrics scrapes the separate metrics address (or the registry's own port).
func (r *phase3Registry) GetMetrics() string {
	r.t.Helper()
	addr := r.metricsAddr
	if addr == "" {
		addr = r.srv.Addr
	}
	code, body := httpGet(r.t, "http://"+addr+"/metrics", "", "")
	require.Equal(r.t, http.StatusOK, code, body)
	return body
}

// detailedHealth is GET /health with the status as a plain string, as the
// plan compares it.
type detailedHealth struct {
	Status string
	Checks []registryapi.HealthCheck
}

func (r *phase3Registry) GetDetailedHealth() detailedHealth {
	r.t.Helper()
	code, body := httpGet(r.t, "http://"+r.srv.Addr+"/health", "", "")
	require.Contains(r.t, []int{http.StatusOK, http.StatusServiceUnavailable}, code, body)
	var h detailedHealth
	require.NoError(r.t, json.Unmarshal([]byte(body), &h), body)
	return h
}

// Push pushes a new random image (two 16 KiB layers) as ref with
// go-containerregistry.
func (r *phase3Registry) Push(ref string) error {
	img, err := random.Image(16<<10, 2)
	if err != nil {
		return err
	}
	return r.pushImage(ref, img)
}

func (r *phase3Registry) pushImage(ref string, img v1.Image) error {
	dst, err := name.ParseReference(r.srv.Addr+"/"+ref, name.Insecure)
	if err != nil {
		return err
	}
	opts := []remote.Option{}
	if r.auth != nil {
		opts = append(opts, remote.WithAuth(r.auth))
	}
	return remote.Write(dst, img, opts...)
}

func httpGet(t testing.TB, url, user, password string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// Test 2 of the seed plan's Phase 3, as written there.
func TestPhase3_Monitoring(t *testing.T) {
	registry := setupRegistryWithMonitoring(t)

	// Test metrics endpoint
	metrics := registry.GetMetrics()
	require.Contains(t, metrics, "registry_storage_blob_upload_total")
	require.Contains(t, metrics, "registry_http_request_duration_seconds")

	// Test health monitoring
	health := registry.GetDetailedHealth()
	require.Equal(t, "healthy", health.Status)
	require.NotEmpty(t, health.Checks)
}

// Test 3 of the seed plan's Phase 3, as written there.
func TestPhase3_Performance(t *testing.T) {
	registry := setupProductionRegistry(t)

	// Load test: Push 100 images concurrently
	var wg sync.WaitGroup
	errors := make(chan error, 100)

	start := time.Now()
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func(n int) {
			defer wg.Done()
			err := registry.Push(fmt.Sprintf("load-test:v%d", n))
			if err != nil {
				errors <- err
			}
		}(i)
	}

	wg.Wait()
	close(errors)

	// Assert performance
	duration := time.Since(start)
	t.Logf("100 concurrent pushes took %s", duration.Round(time.Millisecond))
	require.Less(t, duration, 30*time.Second, "Should handle 100 images in 30s")
	require.Len(t, errors, 0, "No errors during load test")

	// Beyond the plan: every push is counted, and the registry says so.
	st := registryStatsJSON(t, append(os.Environ(), "HOME="+t.TempDir()), registry.srv.Addr)
	assert.Equal(t, 1, st.Repositories)
	assert.Equal(t, 100, st.Tags)
	assert.Equal(t, 100, st.Manifests)
	assert.Equal(t, int64(100), st.Pushes)
	assert.Equal(t, 400, st.Blobs, "a config, two layers and a manifest per image")
}

// parseMetrics parses a Prometheus text scrape.
func parseMetrics(t testing.TB, body string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	require.NoError(t, err)
	return mfs
}

// metricValue sums the series of a family whose labels include labels
// (name, value pairs); histograms count their samples.
func metricValue(mfs map[string]*dto.MetricFamily, family string, labels ...string) float64 {
	var sum float64
	mf, ok := mfs[family]
	if !ok {
		return 0
	}
next:
	for _, m := range mf.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.Label {
				found = found || (lp.GetName() == labels[i] && lp.GetValue() == labels[i+1])
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		}
	}
	return sum
}

// TestPhase3_MetricsCountPushes: scraped from a real `registry serve`, on its
// own port and on --metrics-addr, the counters move by exactly the pushes made.
func TestPhase3_MetricsCountPushes(t *testing.T) {
	r := setupRegistryWithMonitoring(t)
	before := parseMetrics(t, r.GetMetrics())

	const images = 5
	var layerBytes int64
	for i := range images {
		img, err := random.Image(8<<10, 2)
		require.NoError(t, err)
		require.NoError(t, r.pushImage(fmt.Sprintf("counted/app%d:v1", i), img))
		m, err := img.Manifest()
		require.NoError(t, err)
		layerBytes += m.Config.Size + m.Layers[0].Size + m.Layers[1].Size
	}
	after := parseMetrics(t, r.GetMetrics())
	delta := func(family string, labels ...string) float64 {
		return metricValue(after, family, labels...) - metricValue(before, family, labels...)
	}
	assert.Equal(t, float64(3*images), delta("registry_storage_blob_upload_total"))
	assert.Equal(t, float64(images), delta("registry_manifest_pushes_total"))
	assert.Equal(t, float64(images), delta("registry_http_request_duration_seconds", "method", "PUT", "route", "manifest", "status", "2xx"))
	assert.Equal(t, float64(layerBytes), delta("registry_http_request_bytes_total", "route", "upload"))
	assert.Zero(t, metricValue(after, "registry_http_requests_total", "status", "5xx"))
	assert.Contains(t, after, "go_goroutines")
	assert.Contains(t, after, "process_resident_memory_bytes")
	assert.Equal(t, 1.0, metricValue(after, "registry_build_info"))

	// The registry's own port serves the same registry's metrics.
	code, body := httpGet(t, "http://"+r.srv.Addr+"/metrics", "", "")
	require.Equal(t, http.StatusOK, code)
	own := parseMetrics(t, body)
	assert.Equal(t, metricValue(after, "registry_manifest_pushes_total"), metricValue(own, "registry_manifest_pushes_total"))

	// Usage gauges follow once the background refresh has run: `registry
	// stats` waits for it, so after it the gauges are current too.
	st := registryStatsJSON(t, append(os.Environ(), "HOME="+t.TempDir()), r.srv.Addr)
	gauges := parseMetrics(t, r.GetMetrics())
	assert.Equal(t, float64(st.Repositories), metricValue(gauges, "registry_repositories"))
	assert.Equal(t, float64(images+1), metricValue(gauges, "registry_repositories"))
	assert.Equal(t, float64(st.UniqueBytes), metricValue(gauges, "registry_storage_unique_bytes"))
}

// registryStatsJSON runs `registry stats -o json` against addr.
func registryStatsJSON(t testing.TB, env []string, addr string) registryapi.Stats {
	t.Helper()
	out, errOut, code := runBinary(t, env, "registry", "stats", "--registry-addr", addr, "-o", "json")
	require.Equal(t, 0, code, "registry stats: %s", errOut)
	var st registryapi.Stats
	require.NoError(t, json.Unmarshal([]byte(out), &st), out)
	return st
}

// TestPhase3_StatsAndHealthWithAuth: under --auth=all, metrics and statistics
// need a login and `registry stats` says how to get one; detailed health is
// anyone's and names no path; the numbers are exact after pushes and deletes.
func TestPhase3_StatsAndHealthWithAuth(t *testing.T) {
	home := t.TempDir()
	addUser(t, home, "alice", "alice-password-1")
	srv := startServerHome(t, home, "", "--auth", "all", "--metrics-addr", "127.0.0.1:0")
	metricsAddr := waitMetricsAddr(t, srv)
	env := append(os.Environ(), "HOME="+home, "DOCKER_CONFIG="+t.TempDir())
	server := srv.Localhost()

	code, _ := httpGet(t, "http://"+srv.Addr+"/metrics", "", "")
	assert.Equal(t, http.StatusUnauthorized, code, "metrics on the registry's port need a login")
	code, _ = httpGet(t, "http://"+srv.Addr+"/api/v1/stats", "", "")
	assert.Equal(t, http.StatusUnauthorized, code)
	code, _ = httpGet(t, "http://"+srv.Addr+"/metrics", "alice", "alice-password-1")
	assert.Equal(t, http.StatusOK, code)
	code, _ = httpGet(t, "http://"+metricsAddr+"/metrics", "", "")
	assert.Equal(t, http.StatusOK, code, "--metrics-addr is open: its address decides who reaches it")

	code, body := httpGet(t, "http://"+srv.Addr+"/health", "", "")
	require.Equal(t, http.StatusOK, code, body)
	var h registryapi.Health
	require.NoError(t, json.Unmarshal([]byte(body), &h))
	assert.Equal(t, registryapi.Healthy, h.Status)
	assert.NotContains(t, body, srv.DataDir, "anonymous readers learn no machine path")
	assert.NotContains(t, body, home)

	out, errOut, exit := runBinary(t, env, "registry", "stats", "--registry-addr", server)
	assert.Equal(t, 1, exit, out)
	assert.Contains(t, errOut, "authentication required")
	assert.Contains(t, errOut, "idpbuilder registry login "+server)

	if out, err := runEnv(env, "alice-password-1\n", binary, "registry", "login", server, "-u", "alice", "--password-stdin"); err != nil {
		t.Fatalf("registry login: %v\n%s", err, out)
	}
	r := &phase3Registry{t: t, srv: srv, auth: &authn.Basic{Username: "alice", Password: "alice-password-1"}}
	img1, err := random.Image(4<<10, 1)
	require.NoError(t, err)
	img2, err := random.Image(6<<10, 1)
	require.NoError(t, err)
	require.NoError(t, r.pushImage("team/one:v1", img1))
	require.NoError(t, r.pushImage("team/one:v2", img1))
	require.NoError(t, r.pushImage("team/two:v1", img2))
	size := func(img v1.Image) int64 {
		m, err := img.Manifest()
		require.NoError(t, err)
		raw, err := img.RawManifest()
		require.NoError(t, err)
		return m.Config.Size + m.Layers[0].Size + int64(len(raw))
	}

	st := registryStatsJSON(t, env, server)
	assert.Equal(t, 2, st.Repositories)
	assert.Equal(t, 3, st.Tags)
	assert.Equal(t, 2, st.Manifests)
	assert.Equal(t, 6, st.Blobs)
	assert.Equal(t, size(img1)+size(img2), st.UniqueBytes)
	assert.Equal(t, size(img1)+size(img2), st.LogicalBytes)
	assert.Equal(t, int64(3), st.Pushes)

	// Delete team/one's manifest: both its tags go; its blobs stay until GC.
	d, err := img1.Digest()
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodDelete, "http://"+srv.Addr+"/v2/team/one/manifests/"+d.String(), nil)
	require.NoError(t, err)
	req.SetBasicAuth("alice", "alice-password-1")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)

	st = registryStatsJSON(t, env, server)
	assert.Equal(t, 1, st.Tags)
	assert.Equal(t, 1, st.Manifests)
	assert.Equal(t, 6, st.Blobs)
	assert.Equal(t, size(img2), st.LogicalBytes)
	require.NotEmpty(t, st.Largest)
	assert.Equal(t, "team/two", st.Largest[0].Name)

	table, errOut, exit := runBinary(t, env, "registry", "stats", "--registry-addr", server)
	require.Equal(t, 0, exit, errOut)
	assert.Regexp(t, `Tags:\s+1\n`, table)
	assert.Contains(t, table, "LARGEST REPOSITORIES")
}

// TestPhase3_ClusterStatsAndStatus: against the registry `idpbuilder create`
// runs for a Kind cluster, found through the cluster's name as `registry
// status` finds it, `registry stats` counts a push exactly and `registry
// status` shows the health checks.
func TestPhase3_ClusterStatsAndStatus(t *testing.T) {
	// Statistics and health do not touch containerd: one node image is enough.
	h := newKindHarness(t, "idpb-ops", nodeImages()[0])
	h.mustRun("create")
	stats := func() registryapi.Stats {
		t.Helper()
		var st registryapi.Stats
		out := h.mustRun("registry", "stats", "-o", "json")
		require.NoError(t, json.Unmarshal([]byte(out), &st), out)
		return st
	}
	before := stats()

	img, err := random.Image(32<<10, 2)
	require.NoError(t, err)
	dst, err := name.ParseReference(fmt.Sprintf("localhost:%d/ops/app:v1", h.port), name.Insecure)
	require.NoError(t, err)
	require.NoError(t, remote.Write(dst, img))
	m, err := img.Manifest()
	require.NoError(t, err)
	raw, err := img.RawManifest()
	require.NoError(t, err)
	size := m.Config.Size + m.Layers[0].Size + m.Layers[1].Size + int64(len(raw))

	after := stats()
	assert.Equal(t, before.Repositories+1, after.Repositories)
	assert.Equal(t, before.Tags+1, after.Tags)
	assert.Equal(t, before.Pushes+1, after.Pushes)
	assert.Equal(t, before.Blobs+4, after.Blobs)
	assert.Equal(t, before.UniqueBytes+size, after.UniqueBytes)
	assert.Contains(t, h.mustRun("registry", "stats"), "ops/app")

	out := h.mustRun("registry", "status")
	t.Logf("registry status:\n%s", out)
	assert.Regexp(t, `Checks:\s+healthy`, out)
	assert.Contains(t, out, "✓ storage: the data directory is writable")
	assert.Contains(t, out, "✓ disk: ")
	var st struct {
		Checks registryapi.Health `json:"checks"`
	}
	raw2 := h.mustRun("registry", "status", "-o", "json")
	require.NoError(t, json.Unmarshal([]byte(raw2), &st), raw2)
	assert.Equal(t, registryapi.Healthy, st.Checks.Status)
	assert.NotEmpty(t, st.Checks.Checks)
}
