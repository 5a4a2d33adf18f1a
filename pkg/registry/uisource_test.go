package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrv1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/idpbuilder/idpbuilder/pkg/auth"
	"github.com/idpbuilder/idpbuilder/pkg/ui"
)

// uiServer is a registry with its UI behind a real listener (httptest), so
// go-containerregistry pushes to it as to any registry.
type uiServer struct {
	t    testing.TB
	reg  *Registry
	srv  *httptest.Server
	host string // 127.0.0.1:port
	dir  string
	htp  auth.Htpasswd
}

const (
	uiUser     = "alice"
	uiPassword = "correct horse battery"
)

func startUIServer(t testing.TB, policy auth.Policy) *uiServer {
	t.Helper()
	dir := t.TempDir()
	s := &uiServer{t: t, dir: dir, htp: auth.Htpasswd{Path: filepath.Join(dir, "htpasswd")}}
	opts := Options{DataDir: filepath.Join(dir, "data"), Logger: slog.New(slog.DiscardHandler), RateLimit: RateLimit{Disabled: true},
		UI: func(src *UISource) (http.Handler, error) {
			return ui.New(src, ui.Config{Logger: slog.New(slog.DiscardHandler)})
		}}
	if policy != auth.PolicyNone {
		require.NoError(t, s.htp.Set(uiUser, uiPassword))
		opts.Auth = &AuthOptions{Policy: policy, Verifier: auth.NewVerifier(s.htp)}
	}
	s.reg = New(opts)
	require.NoError(t, s.reg.Open(context.Background()))
	s.srv = httptest.NewServer(s.reg.Handler())
	t.Cleanup(func() {
		s.srv.Close()
		_ = s.reg.Close()
	})
	s.host = strings.TrimPrefix(s.srv.URL, "http://")
	return s
}

func (s *uiServer) ref(r string) name.Reference {
	s.t.Helper()
	ref, err := name.ParseReference(s.host+"/"+r, name.Insecure)
	require.NoError(s.t, err)
	return ref
}

func (s *uiServer) remoteOpts() []remote.Option {
	if s.reg.opts.Auth == nil {
		return nil
	}
	return []remote.Option{remote.WithAuth(&authn.Basic{Username: uiUser, Password: uiPassword})}
}

func staticLayer(b []byte) ggcrv1.Layer { return static.NewLayer(b, "application/octet-stream") }

// pushImage pushes a random image of layers layers of size bytes each.
func (s *uiServer) pushImage(ref string, size int64, layers int) ggcrv1.Image {
	s.t.Helper()
	img, err := random.Image(size, int64(layers))
	require.NoError(s.t, err)
	require.NoError(s.t, remote.Write(s.ref(ref), img, s.remoteOpts()...))
	return img
}

// platformImage is a random image whose config names its platform.
func platformImage(t testing.TB, os, arch string, size int64, layers int) ggcrv1.Image {
	t.Helper()
	img, err := random.Image(size, int64(layers))
	require.NoError(t, err)
	cf, err := img.ConfigFile()
	require.NoError(t, err)
	cf.OS, cf.Architecture = os, arch
	img, err = mutate.ConfigFile(img, cf)
	require.NoError(t, err)
	return img
}

// pushIndex pushes a two-platform index (amd64 with two layers, arm64 with
// one) plus a buildx-style attestation manifest, and returns it.
func (s *uiServer) pushIndex(ref string) (ggcrv1.ImageIndex, ggcrv1.Image, ggcrv1.Image) {
	s.t.Helper()
	amd := platformImage(s.t, "linux", "amd64", 3000, 2)
	arm := platformImage(s.t, "linux", "arm64", 1000, 1)
	att, err := random.Image(200, 1)
	require.NoError(s.t, err)
	amdDigest, err := amd.Digest()
	require.NoError(s.t, err)
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: amd, Descriptor: ggcrv1.Descriptor{Platform: &ggcrv1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: ggcrv1.Descriptor{Platform: &ggcrv1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
		mutate.IndexAddendum{Add: att, Descriptor: ggcrv1.Descriptor{
			Platform:    &ggcrv1.Platform{OS: "unknown", Architecture: "unknown"},
			Annotations: map[string]string{"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": amdDigest.String()},
		}},
	)
	idx = mutate.IndexMediaType(idx, types.OCIImageIndex)
	require.NoError(s.t, remote.WriteIndex(s.ref(ref), idx, s.remoteOpts()...))
	return idx, amd, arm
}

// rawManifest is a manifest pushed as written.
type rawManifest struct {
	body      []byte
	mediaType types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.body, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mediaType, nil }
func (m rawManifest) descriptor(artifactType string) v1.Descriptor {
	return v1.Descriptor{MediaType: string(m.mediaType), Digest: digest.FromBytes(m.body), Size: int64(len(m.body)), ArtifactType: artifactType}
}

// pushArtifact uploads blobs and pushes an OCI manifest naming them; ref "" pushes by digest.
func (s *uiServer) pushArtifact(repo, ref, artifactType string, config v1.Descriptor, configBody []byte, layers map[string][]byte, subject *v1.Descriptor) rawManifest {
	s.t.Helper()
	r, err := name.NewRepository(s.host+"/"+repo, name.Insecure)
	require.NoError(s.t, err)
	upload := func(b []byte) {
		l := staticLayer(b)
		require.NoError(s.t, remote.WriteLayer(r, l, s.remoteOpts()...))
	}
	upload(configBody)
	m := v1.Manifest{MediaType: v1.MediaTypeImageManifest, ArtifactType: artifactType, Config: config, Subject: subject}
	m.SchemaVersion = 2
	for title, b := range layers {
		upload(b)
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: "application/octet-stream", Digest: digest.FromBytes(b), Size: int64(len(b)),
			Annotations: map[string]string{v1.AnnotationTitle: title}})
	}
	body, err := json.Marshal(m)
	require.NoError(s.t, err)
	rm := rawManifest{body: body, mediaType: types.OCIManifestSchema1}
	if ref == "" {
		ref = "@" + digest.FromBytes(body).String()
	} else {
		ref = ":" + ref
	}
	target, err := name.ParseReference(s.host+"/"+repo+ref, name.Insecure)
	require.NoError(s.t, err)
	require.NoError(s.t, remote.Put(target, rm, s.remoteOpts()...))
	return rm
}

// pushChart pushes a Helm chart as helm does: its Chart.yaml as JSON config,
// the chart archive as the one layer.
func (s *uiServer) pushChart(repo, version string) rawManifest {
	s.t.Helper()
	cfg := []byte(fmt.Sprintf(`{"name":%q,"version":%q,"appVersion":"1.2.3","apiVersion":"v2","description":"A test chart"}`, repo[strings.LastIndex(repo, "/")+1:], version))
	chart := bytes.Repeat([]byte("chart archive "), 100)
	r, err := name.NewRepository(s.host+"/"+repo, name.Insecure)
	require.NoError(s.t, err)
	for _, b := range [][]byte{cfg, chart} {
		require.NoError(s.t, remote.WriteLayer(r, staticLayer(b), s.remoteOpts()...))
	}
	m := v1.Manifest{MediaType: v1.MediaTypeImageManifest,
		Config: v1.Descriptor{MediaType: ui.MediaTypeHelmConfig, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))},
		Layers: []v1.Descriptor{{MediaType: "application/vnd.cncf.helm.chart.content.v1.tar+gzip", Digest: digest.FromBytes(chart), Size: int64(len(chart))}},
	}
	m.SchemaVersion = 2
	body, err := json.Marshal(m)
	require.NoError(s.t, err)
	rm := rawManifest{body: body, mediaType: types.OCIManifestSchema1}
	require.NoError(s.t, remote.Put(s.ref(repo+":"+version), rm, s.remoteOpts()...))
	return rm
}

// browser is an HTTP client with cookies that does not follow redirects.
type browser struct {
	t      testing.TB
	s      *uiServer
	client *http.Client
}

func (s *uiServer) browser() *browser {
	jar, err := cookiejar.New(nil)
	require.NoError(s.t, err)
	return &browser{t: s.t, s: s, client: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type page struct {
	status int
	header http.Header
	body   string
}

func (b *browser) get(path string) page {
	b.t.Helper()
	resp, err := b.client.Get(b.s.srv.URL + path)
	require.NoError(b.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(b.t, err)
	return page{resp.StatusCode, resp.Header, string(body)}
}

func (b *browser) post(path string, form url.Values, header ...string) page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.s.srv.URL+path, strings.NewReader(form.Encode()))
	require.NoError(b.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := b.client.Do(req)
	require.NoError(b.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(b.t, err)
	return page{resp.StatusCode, resp.Header, string(body)}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf is the token of the first form of a page.
func (p page) csrf(t testing.TB) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(p.body)
	require.NotNil(t, m, "no CSRF token in page:\n%s", p.body)
	return m[1]
}

// login logs the browser in through the form.
func (b *browser) login(user, password string) page {
	b.t.Helper()
	form := b.get("/ui/login")
	require.Equal(b.t, http.StatusOK, form.status)
	return b.post("/ui/login", url.Values{"csrf": {form.csrf(b.t)}, "username": {user}, "password": {password}, "next": {"/ui/"}})
}

func TestUISmoke(t *testing.T) {
	s := startUIServer(t, auth.PolicyNone)
	s.pushImage("team/app:v1", 1000, 2)
	s.pushIndex("multi:latest")
	s.pushChart("charts/demo", "0.1.0")
	b := s.browser()
	p := b.get("/ui/")
	require.Equal(t, http.StatusOK, p.status, p.body)
	t.Log(p.body)
	p = b.get("/ui/repo/multi")
	require.Equal(t, http.StatusOK, p.status, p.body)
	t.Log(p.body)
	p = b.get("/ui/repo/multi/-/manifest/latest")
	require.Equal(t, http.StatusOK, p.status, p.body)
	p = b.get("/ui/repo/charts/demo/-/manifest/0.1.0")
	require.Equal(t, http.StatusOK, p.status, p.body)
	t.Log(p.body)
	_ = sync.Mutex{}
	_ = assert.Equal
}
