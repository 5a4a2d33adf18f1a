package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/idpbuilder/idpbuilder/pkg/auth"
	"github.com/idpbuilder/idpbuilder/pkg/registry"
	"github.com/idpbuilder/idpbuilder/pkg/registryapi"
)

func startTestRegistry(t *testing.T, opts registry.Options) *registry.Registry {
	t.Helper()
	opts.Addr, opts.DataDir, opts.Logger = "127.0.0.1:0", t.TempDir(), slog.New(slog.DiscardHandler)
	r := registry.New(opts)
	require.NoError(t, r.Start(context.Background()))
	t.Cleanup(func() { _ = r.Stop(context.Background()) })
	return r
}

func TestRegistryStatsCommand(t *testing.T) {
	r := startTestRegistry(t, registry.Options{})
	img, err := random.Image(3000, 2)
	require.NoError(t, err)
	dst, err := name.ParseReference(r.Addr()+"/stats/app:v1", name.Insecure)
	require.NoError(t, err)
	require.NoError(t, remote.Write(dst, img))
	m, err := img.Manifest()
	require.NoError(t, err)
	raw, err := img.RawManifest()
	require.NoError(t, err)
	want := m.Config.Size + int64(len(raw))
	for _, l := range m.Layers {
		want += l.Size
	}

	code, out, errOut := run(t, context.Background(), nil, "registry", "stats", "--registry-addr", r.Addr(), "-o", "json")
	require.Equal(t, ExitOK, code, errOut)
	var st registryapi.Stats
	require.NoError(t, json.Unmarshal([]byte(out.String()), &st), out)
	assert.Equal(t, 1, st.Repositories)
	assert.Equal(t, 1, st.Tags)
	assert.Equal(t, 1, st.Manifests)
	assert.Equal(t, 4, st.Blobs, "config, two layers, manifest")
	assert.Equal(t, want, st.UniqueBytes, "counted right after the push")
	assert.Equal(t, want, st.LogicalBytes)
	assert.Equal(t, int64(1), st.Pushes)
	assert.Equal(t, int64(3), st.BlobUploads)

	code, out, errOut = run(t, context.Background(), nil, "registry", "stats", "--registry-addr", r.Addr())
	require.Equal(t, ExitOK, code, errOut)
	assert.Regexp(t, `Repositories:\s+1\n`, out.String())
	assert.Regexp(t, `Since start:\s+1 pushes, 0 pulls, 3 blob uploads`, out.String())
	assert.Regexp(t, `(?m)^stats/app\s+1\s+1\s+`, out.String())
	assert.NotContains(t, out.String(), "Last GC", "no GC result, no made-up line")
}

func TestRegistryStatsNeedsALoginUnderAuthAll(t *testing.T) {
	h := auth.Htpasswd{Path: filepath.Join(t.TempDir(), "htpasswd")}
	require.NoError(t, h.Set("alice", "correct horse battery"))
	r := startTestRegistry(t, registry.Options{Auth: &registry.AuthOptions{Policy: auth.PolicyAll, Verifier: auth.NewVerifier(h)}})
	code, out, errOut := run(t, context.Background(), nil, "registry", "stats", "--registry-addr", r.Addr())
	assert.Equal(t, ExitFailure, code)
	assert.Empty(t, out.String())
	assert.Contains(t, errOut.String(), "authentication required")
	assert.Contains(t, errOut.String(), "idpbuilder registry login "+r.Addr())
}

func TestRegistryStatsUsageErrors(t *testing.T) {
	code, _, errOut := run(t, context.Background(), nil, "registry", "stats", "-o", "xml")
	assert.Equal(t, ExitUsage, code)
	assert.Contains(t, errOut.String(), "unknown output format")

	// Nothing listens there: a failure, explained.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	code, _, errOut = run(t, context.Background(), nil, "registry", "stats", "--registry-addr", addr)
	assert.Equal(t, ExitFailure, code)
	assert.Contains(t, errOut.String(), "reach registry "+addr)
}

func TestServeMetricsAddrInUse(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	dataDir := filepath.Join(t.TempDir(), "d")
	code, out, errOut := run(t, context.Background(), nil, "registry", "serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir, "--metrics-addr", busy.Addr().String())
	assert.Equal(t, ExitUsage, code)
	assert.Empty(t, out.String())
	assert.Contains(t, errOut.String(), "metrics address "+busy.Addr().String()+" is already in use")
	_, err = os.Stat(dataDir)
	assert.Error(t, err, "nothing is written before every address is bound")

	code, _, errOut = run(t, context.Background(), nil, "registry", "serve", "--metrics-addr", "nowhere")
	assert.Equal(t, ExitUsage, code)
	assert.Contains(t, errOut.String(), "flag --metrics-addr")
}

func TestStatsAndChecksTables(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	st := registryapi.Stats{
		StartedAt: now.Add(-90 * time.Minute), UpdatedAt: now, Pending: true, Repositories: 2, Tags: 3, Manifests: 2, Blobs: 7,
		UniqueBytes: 3 << 20, LogicalBytes: 5 << 20, Pushes: 4, Pulls: 9, BlobUploads: 6,
		Largest: []registryapi.RepositoryStats{{Name: "big", Tags: 2, Manifests: 1, Bytes: 4 << 20}, {Name: "small", Tags: 1, Manifests: 1, Bytes: 1 << 20}},
		LastGC:  &registryapi.GCSummary{StartedAt: now.Add(-time.Hour), DurationMS: 120, DeletedBlobs: 3, DeletedManifests: 1, FreedBytes: 2 << 20},
		Quota:   &registryapi.QuotaSummary{UsedBytes: 3 << 20, LimitBytes: 4 << 20},
	}
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 4, 2, ' ', 0)
	statsTable(tw, st, now)
	require.NoError(t, tw.Flush())
	s := buf.String()
	assert.Contains(t, s, "3.0 MiB in 7 blobs")
	assert.Contains(t, s, "4 pushes, 9 pulls, 6 blob uploads (started 1h30m0s ago)")
	assert.Contains(t, s, "freed 2.0 MiB (3 blobs, 1 manifests) in 120 ms")
	assert.Contains(t, s, "3.0 MiB of 4.0 MiB (75%)")
	assert.Contains(t, s, "newer writes are still being counted")
	assert.Less(t, strings.Index(s, "big"), strings.Index(s, "small"))

	buf.Reset()
	tw = tabwriter.NewWriter(&buf, 0, 4, 2, ' ', 0)
	h := registryapi.Health{Status: registryapi.Unhealthy, Checks: []registryapi.HealthCheck{
		{Name: "storage", Status: registryapi.Healthy, Message: "the data directory is writable"},
		{Name: "disk", Status: registryapi.Unhealthy, Message: "10 MiB free"},
	}}
	healthChecksTable(tw, h)
	require.NoError(t, tw.Flush())
	assert.Contains(t, buf.String(), "✓ storage: the data directory is writable")
	assert.Contains(t, buf.String(), "✗ disk: 10 MiB free")
	assert.Equal(t, "disk: 10 MiB free", unhealthyChecks(h))
}
