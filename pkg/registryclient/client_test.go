package registryclient

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/idpbuilder/idpbuilder/pkg/auth"
	"github.com/idpbuilder/idpbuilder/pkg/docker"
	"github.com/idpbuilder/idpbuilder/pkg/exec/exectest"
	"github.com/idpbuilder/idpbuilder/pkg/registry"
	"github.com/idpbuilder/idpbuilder/pkg/registryapi"
)

// startRegistry runs a real registry on a loopback port and returns a client for it.
func startRegistry(t *testing.T, opts registry.Options) *Client {
	t.Helper()
	opts.Addr, opts.DataDir, opts.Logger = "127.0.0.1:0", t.TempDir(), slog.New(slog.DiscardHandler)
	r := registry.New(opts)
	require.NoError(t, r.Start(context.Background()))
	t.Cleanup(func() { _ = r.Stop(context.Background()) })
	return New(r.Addr())
}

func platformImage(t *testing.T, arch string) v1.Image {
	t.Helper()
	img, err := random.Image(512, 1)
	require.NoError(t, err)
	cf, err := img.ConfigFile()
	require.NoError(t, err)
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	img, err = mutate.ConfigFile(img, cf)
	require.NoError(t, err)
	return img
}

func twoPlatforms(t *testing.T) v1.ImageIndex {
	t.Helper()
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: platformImage(t, "amd64"), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: platformImage(t, "arm64"), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
	)
	return idx
}

// TestPushListDelete: what is pushed is listed with its digest, size and
// platforms; deleted, it is gone.
func TestPushListDelete(t *testing.T) {
	c := startRegistry(t, registry.Options{})
	ctx := context.Background()
	img := platformImage(t, "amd64")
	src := Source{Image: img, Name: "docker.io/library/app:v1"}
	ref, err := c.Destination("", src)
	require.NoError(t, err)
	assert.Equal(t, c.Registry+"/app:v1", ref.String())
	require.NoError(t, c.Push(ctx, src, ref, nil))

	idx := twoPlatforms(t)
	iref, err := c.Destination("multi/arch:v1", Source{Index: idx})
	require.NoError(t, err)
	updates := make(chan v1.Update, 100)
	require.NoError(t, c.Push(ctx, Source{Index: idx}, iref, updates))

	repos, err := c.Repositories(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"app", "multi/arch"}, repos)
	entries, err := c.List(ctx, "")
	require.NoError(t, err)
	require.Len(t, entries, 2)
	d, _ := img.Digest()
	assert.Equal(t, "app", entries[0].Repository)
	assert.Equal(t, d.String(), entries[0].Digest)
	assert.Equal(t, []string{"linux/amd64"}, entries[0].Platforms)
	assert.Positive(t, entries[0].Size)
	assert.Equal(t, []string{"linux/amd64", "linux/arm64/v8"}, entries[1].Platforms)
	assert.Greater(t, entries[1].Size, entries[0].Size, "an index sums its images")

	_, err = c.List(ctx, "missing")
	assert.ErrorContains(t, err, `repository "missing" not found`)

	require.NoError(t, c.Delete(ctx, ref.Context().Digest(d.String())))
	entries, err = c.List(ctx, "app")
	require.NoError(t, err)
	assert.Empty(t, entries)
	assert.Error(t, c.Delete(ctx, ref.Context().Digest(d.String())), "deleted already")

	_, err = c.Destination("", Source{Image: img})
	assert.ErrorContains(t, err, "has no name of its own")
	_, err = c.Destination("UPPER:case", src)
	assert.ErrorContains(t, err, "destination")
}

func TestSources(t *testing.T) {
	dir := t.TempDir()
	img := platformImage(t, "amd64")
	tag, err := name.NewTag("example.com/app:v1")
	require.NoError(t, err)
	tarPath := filepath.Join(dir, "img.tar")
	require.NoError(t, tarball.WriteToFile(tarPath, tag, img))
	src, err := FromTarball(tarPath, "")
	require.NoError(t, err)
	assert.Equal(t, "example.com/app:v1", src.Name)
	want, _ := img.Digest()
	got, err := src.Digest()
	require.NoError(t, err)
	assert.Equal(t, want, got)
	_, err = FromTarball(tarPath, "example.com/other:v1")
	assert.Error(t, err)
	_, err = FromTarball(tarPath, "NOT A TAG")
	assert.Error(t, err)

	lp := filepath.Join(dir, "layout")
	l, err := layout.Write(lp, empty.Index)
	require.NoError(t, err)
	require.NoError(t, l.AppendIndex(twoPlatforms(t)))
	assert.True(t, IsLayout(lp))
	assert.False(t, IsLayout(dir))
	whole, err := FromLayout(lp, "")
	require.NoError(t, err)
	assert.NotNil(t, whole.Index)
	_, err = whole.Digest()
	require.NoError(t, err)
	arm, err := FromLayout(lp, "linux/arm64")
	require.NoError(t, err)
	cf, err := arm.Image.ConfigFile()
	require.NoError(t, err)
	assert.Equal(t, "arm64", cf.Architecture)
	_, err = FromLayout(lp, "linux/s390x")
	assert.ErrorContains(t, err, "no image for platform linux/s390x (the index has: linux/amd64, linux/arm64/v8)")

	single := filepath.Join(dir, "single")
	l, err = layout.Write(single, empty.Index)
	require.NoError(t, err)
	require.NoError(t, l.AppendImage(img))
	one, err := FromLayout(single, "")
	require.NoError(t, err)
	assert.NotNil(t, one.Image)
	require.NoError(t, l.AppendImage(img))
	_, err = FromLayout(single, "")
	assert.ErrorContains(t, err, "has 2 entries in index.json")
	_, err = FromLayout(filepath.Join(dir, "none"), "")
	assert.ErrorContains(t, err, "read OCI layout")
}

// TestFromDocker: an image in the Docker engine is read through docker save.
func TestFromDocker(t *testing.T) {
	img := platformImage(t, "amd64")
	tag, err := name.NewTag("app:dev")
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, tarball.Write(tag, img, &buf))
	rec := exectest.New()
	rec.On("docker", "version").Reply(exectest.OK("28.2.2 linux amd64"))
	rec.On("docker", "image", "inspect").Reply(exectest.OK("sha256:0123"), exectest.Fail(1, "Error: No such image: nope"))
	rec.On("docker", "save").Reply(exectest.OK(buf.String()))
	d := &docker.Client{Exec: rec}

	src, cleanup, err := FromDocker(context.Background(), d, "app:dev")
	require.NoError(t, err)
	defer cleanup()
	got, err := src.Digest()
	require.NoError(t, err)
	want, _ := img.Digest()
	assert.Equal(t, want, got)
	assert.Equal(t, "app:dev", src.Name)
	assert.Contains(t, rec.Lines(), "docker save app:dev")

	_, _, err = FromDocker(context.Background(), d, "nope")
	assert.ErrorIs(t, err, ErrNoSuchImage)

	rec.On("docker", "image", "inspect").Reply(exectest.OK("sha256:0123"))
	rec.On("docker", "save").Reply(exectest.Fail(1, "no space left on device"))
	_, _, err = FromDocker(context.Background(), d, "app:dev")
	assert.ErrorContains(t, err, "docker save app:dev")

	rec.On("docker", "version").Reply(exectest.Fail(1, "Cannot connect"))
	_, _, err = FromDocker(context.Background(), d, "app:dev")
	assert.ErrorIs(t, err, docker.ErrNotRunning)
}

func TestReady(t *testing.T) {
	c := startRegistry(t, registry.Options{})
	ctx := context.Background()
	require.NoError(t, Ready(ctx, nil, "http://"+c.Registry))
	require.NoError(t, WaitReady(ctx, nil, "http://"+c.Registry, time.Minute))

	// Something else on the port.
	other := httptest.NewServer(http.NotFoundHandler())
	defer other.Close()
	assert.ErrorContains(t, Ready(ctx, nil, other.URL), "readyz answered 404 Not Found")
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	err := WaitReady(cancelled, nil, other.URL, time.Minute)
	assert.True(t, errors.Is(err, context.Canceled), err)
	assert.Error(t, Ready(ctx, nil, "http://127.0.0.1:1"))
	assert.Error(t, Ready(ctx, nil, "::"))
}

// TestTrustingCAs: the CAs in the files are trusted, a missing file is skipped.
func TestTrustingCAs(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusting client's handshake fails on purpose
	srv.StartTLS()
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.crt")
	require.NoError(t, os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600))
	ctx := context.Background()
	require.NoError(t, Ready(ctx, TrustingCAs(filepath.Join(t.TempDir(), "missing.crt"), ca), srv.URL))
	err := Ready(ctx, TrustingCAs(), srv.URL)
	assert.ErrorContains(t, err, "certificate")
}

// TestOperations: statistics, health and garbage collection of a real
// registry, with the login its policy asks for.
func TestOperations(t *testing.T) {
	h := auth.Htpasswd{Path: filepath.Join(t.TempDir(), "htpasswd")}
	require.NoError(t, h.Set("alice", "alice-password-1"))
	c := startRegistry(t, registry.Options{Auth: &registry.AuthOptions{Policy: auth.PolicyPush, Verifier: auth.NewVerifier(h)}})
	ctx := context.Background()

	health, err := c.Health(ctx)
	require.NoError(t, err)
	assert.NotEmpty(t, health.Checks)
	_, err = c.Stats(ctx)
	require.NoError(t, err, "pulls are anonymous under push: so are statistics")

	_, err = c.GC(ctx, registryapi.GCRequest{DryRun: true})
	var api *APIError
	require.ErrorAs(t, err, &api)
	assert.True(t, api.Unauthorized())
	assert.Contains(t, api.Error(), "authentication required")

	c.Auth = &authn.Basic{Username: "alice", Password: "wrong"}
	_, err = c.GC(ctx, registryapi.GCRequest{DryRun: true})
	require.ErrorAs(t, err, &api)
	assert.True(t, api.Unauthorized())
	_, err = c.Stats(ctx)
	assert.ErrorAs(t, err, &api)

	c.Auth = &authn.Basic{Username: "alice", Password: "alice-password-1"}
	res, err := c.GC(ctx, registryapi.GCRequest{DryRun: true})
	require.NoError(t, err)
	assert.True(t, res.DryRun)
	st, err := c.Stats(ctx)
	require.NoError(t, err)
	assert.Zero(t, st.Repositories)
	_, err = c.GC(ctx, registryapi.GCRequest{KeepTags: -1})
	assert.Error(t, err, "an invalid request is refused before it is sent")

	// Not an idpbuilder registry.
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			w.WriteHeader(http.StatusOK)
			return
		}
		http.NotFound(w, r)
	}))
	defer other.Close()
	oc := New(strings.TrimPrefix(other.URL, "http://"))
	_, err = oc.Stats(ctx)
	require.ErrorAs(t, err, &api)
	assert.Contains(t, api.Error(), "has no /api/v1/stats endpoint")
	_, err = oc.GC(ctx, registryapi.GCRequest{DryRun: true})
	require.ErrorAs(t, err, &api)
	assert.Equal(t, http.StatusNotFound, api.StatusCode)
	_, err = New("127.0.0.1:1").Stats(ctx)
	assert.ErrorContains(t, err, "reach registry")
	_, err = New("127.0.0.1:1").GC(ctx, registryapi.GCRequest{DryRun: true})
	assert.Error(t, err)
}
