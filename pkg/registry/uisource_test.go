package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

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
	"golang.org/x/crypto/bcrypt"

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
	return startUIServerWith(t, policy, func(*Options) {})
}

// startUIServerWith is startUIServer with options changed by set.
func startUIServerWith(t testing.TB, policy auth.Policy, set func(*Options)) *uiServer {
	t.Helper()
	dir := t.TempDir()
	s := &uiServer{t: t, dir: dir, htp: auth.Htpasswd{Path: filepath.Join(dir, "htpasswd")}}
	opts := Options{DataDir: filepath.Join(dir, "data"), Logger: slog.New(slog.DiscardHandler), RateLimit: RateLimit{Disabled: true},
		UI: func(src *UISource) (http.Handler, error) {
			return ui.New(src, ui.Config{Logger: slog.New(slog.DiscardHandler)})
		}}
	if policy != auth.PolicyNone {
		s.setUsers(map[string]string{uiUser: uiPassword})
		opts.Auth = &AuthOptions{Policy: policy, Verifier: auth.NewVerifier(s.htp)}
	}
	set(&opts)
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

// setUsers writes the user file with cheap bcrypt hashes (the race detector
// makes the default cost take seconds).
func (s *uiServer) setUsers(users map[string]string) {
	s.t.Helper()
	var b strings.Builder
	for u, p := range users {
		h, err := bcrypt.GenerateFromPassword([]byte(p), bcrypt.MinCost)
		require.NoError(s.t, err)
		fmt.Fprintf(&b, "%s:%s\n", u, h)
	}
	require.NoError(s.t, os.WriteFile(s.htp.Path, []byte(b.String()), 0o600))
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

// copyImage puts img, pushed to from, into repo:tag by mounting its blobs and
// putting its manifest, straight through the handler (fast: many repositories).
func (s *uiServer) copyImage(img ggcrv1.Image, from, repo, tag string) {
	s.t.Helper()
	m, err := img.Manifest()
	require.NoError(s.t, err)
	do := func(method, target string, body []byte, header ...string) {
		req := httptest.NewRequest(method, target, bytes.NewReader(body))
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		if s.reg.opts.Auth != nil {
			req.SetBasicAuth(uiUser, uiPassword)
		}
		rec := httptest.NewRecorder()
		s.reg.Handler().ServeHTTP(rec, req)
		require.Less(s.t, rec.Code, 300, "%s %s: %s", method, target, rec.Body)
	}
	for _, d := range append([]ggcrv1.Descriptor{m.Config}, m.Layers...) {
		do(http.MethodPost, "/v2/"+repo+"/blobs/uploads/?mount="+d.Digest.String()+"&from="+from, nil)
	}
	raw, err := img.RawManifest()
	require.NoError(s.t, err)
	mt, err := img.MediaType()
	require.NoError(s.t, err)
	do(http.MethodPut, "/v2/"+repo+"/manifests/"+tag, raw, "Content-Type", string(mt))
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
	if form.status == http.StatusSeeOther { // logged in already: any page has a token
		form = b.get("/ui/")
	}
	return b.post("/ui/login", url.Values{"csrf": {form.csrf(b.t)}, "username": {user}, "password": {password}, "next": {"/ui/"}})
}

// imageSize is what the UI reports for an image: its config and layers.
func imageSize(t testing.TB, img ggcrv1.Image) int64 {
	t.Helper()
	m, err := img.Manifest()
	require.NoError(t, err)
	n := m.Config.Size
	for _, l := range m.Layers {
		n += l.Size
	}
	return n
}

// storedSize is what a repository holding only img stores: manifest, config, layers.
func storedSize(t testing.TB, img ggcrv1.Image) int64 {
	t.Helper()
	raw, err := img.RawManifest()
	require.NoError(t, err)
	return int64(len(raw)) + imageSize(t, img)
}

var (
	attrURL     = regexp.MustCompile(`(?i)\b(?:src|href|action|formaction|srcset|poster|data)\s*=\s*"([^"]*)"`)
	inlineStyle = regexp.MustCompile(`(?i)<style|\sstyle\s*=`)
	scriptTag   = regexp.MustCompile(`(?is)<script\b([^>]*)>(.*?)</script>`)
	eventAttr   = regexp.MustCompile(`(?i)\son[a-z]+\s*=`)
)

// checkPage asserts what every page must be: CSP on, nothing inline, nothing
// from another origin.
func checkPage(t testing.TB, path string, p page) {
	t.Helper()
	assert.Equal(t, "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
		p.header.Get("Content-Security-Policy"), path)
	assert.Equal(t, "no-store", p.header.Get("Cache-Control"), path)
	assert.Equal(t, "text/html; charset=utf-8", p.header.Get("Content-Type"), path)
	assert.NotRegexp(t, inlineStyle, p.body, "%s: inline style", path)
	assert.NotRegexp(t, eventAttr, p.body, "%s: inline event handler", path)
	for _, m := range scriptTag.FindAllStringSubmatch(p.body, -1) {
		assert.Contains(t, m[1], `src="/ui/static/`, "%s: script without src", path)
		assert.Empty(t, strings.TrimSpace(m[2]), "%s: inline script", path)
	}
	for _, m := range attrURL.FindAllStringSubmatch(p.body, -1) {
		u := m[1]
		assert.True(t, strings.HasPrefix(u, "/ui/") || strings.HasPrefix(u, "#") || u == "", "%s: %s points elsewhere", path, m[0])
	}
	assert.NotContains(t, p.body, "http://", path)
	assert.NotContains(t, p.body, "https://", path)
	assert.NotContains(t, p.body, "//cdn", path)
}

func TestUIShowsWhatWasPushed(t *testing.T) {
	s := startUIServer(t, auth.PolicyNone)
	img := s.pushImage("team/app:v1", 2048, 2)
	require.NoError(t, remote.Tag(s.ref("team/app:stable").(name.Tag), img, s.remoteOpts()...))
	other := s.pushImage("team/app:v2", 1024, 1)
	_, amd, arm := s.pushIndex("multi:latest")
	chart := s.pushChart("charts/demo", "0.1.0")
	imgDigest, err := img.Digest()
	require.NoError(t, err)
	imgRaw, err := img.RawManifest()
	require.NoError(t, err)
	subject := v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: digest.Digest(imgDigest.String()), Size: int64(len(imgRaw))}
	sbom := s.pushArtifact("team/app", "", "application/spdx+json", v1.DescriptorEmptyJSON, []byte("{}"),
		map[string][]byte{"sbom.spdx.json": []byte(`{"spdxVersion":"SPDX-2.3"}`)}, &subject)
	b := s.browser()
	port := s.host[strings.LastIndex(s.host, ":")+1:]

	t.Run("repositories", func(t *testing.T) {
		p := b.get("/ui/")
		require.Equal(t, http.StatusOK, p.status)
		checkPage(t, "/ui/", p)
		for _, r := range []string{`href="/ui/repo/team/app"`, `href="/ui/repo/multi"`, `href="/ui/repo/charts/demo"`} {
			assert.Contains(t, p.body, r)
		}
		// Namespaces: team/ and charts/ are filters.
		assert.Contains(t, p.body, `href="/ui/?ns=team"`)
		// Stored size of team/app: both images and the SBOM, each blob once.
		sbomSize := int64(len(sbom.body)) + 2 + int64(len(`{"spdxVersion":"SPDX-2.3"}`))
		want := storedSize(t, img) + storedSize(t, other) + sbomSize
		assert.Contains(t, p.body, fmt.Sprintf(`<td class="num">3</td>
    <td class="num" title="%d bytes">`, want), "team/app: 3 tags, deduplicated size")

		p = b.get("/ui/?q=dem")
		checkPage(t, "/ui/?q=dem", p)
		assert.Contains(t, p.body, `/ui/repo/charts/demo`)
		assert.NotContains(t, p.body, `/ui/repo/multi"`)
		p = b.get("/ui/?ns=team")
		assert.Contains(t, p.body, `/ui/repo/team/app`)
		assert.NotContains(t, p.body, `/ui/repo/charts/demo`)
		p = b.get("/ui/?q=nothing-like-this")
		assert.Contains(t, p.body, "No repository matches")
	})

	t.Run("index", func(t *testing.T) {
		p := b.get("/ui/repo/multi")
		require.Equal(t, http.StatusOK, p.status)
		checkPage(t, "/ui/repo/multi", p)
		assert.Contains(t, p.body, "multi-arch index")
		assert.Contains(t, p.body, `<span class="plat">linux/amd64</span>`)
		assert.Contains(t, p.body, fmt.Sprintf(`title="%d bytes compressed">%s<`, imageSize(t, amd), humanBytes(imageSize(t, amd))))
		assert.Contains(t, p.body, `<span class="plat">linux/arm64/v8</span>`)
		assert.Contains(t, p.body, fmt.Sprintf(`title="%d bytes compressed">%s<`, imageSize(t, arm), humanBytes(imageSize(t, arm))))
		assert.NotContains(t, p.body, "unknown", "an attestation is no platform")
		assert.Contains(t, p.body, `badge-attestation`)
		assert.Contains(t, p.body, fmt.Sprintf(`data-copy="docker pull localhost:%s/multi:latest"`, port))

		p = b.get("/ui/repo/multi/-/manifest/latest")
		require.Equal(t, http.StatusOK, p.status)
		checkPage(t, "manifest multi:latest", p)
		assert.NotContains(t, p.body, ">unknown/unknown<", "an attestation is no platform")
		assert.Equal(t, 2, strings.Count(p.body, "<option "), "two platforms to pick")
		assert.Contains(t, p.body, "Build attestations")
		amdDigest, _ := amd.Digest()
		armDigest, _ := arm.Digest()
		assert.Contains(t, p.body, "attestation</span> <a class=\"mono\"")
		assert.Contains(t, p.body, " for linux/amd64</li>")
		// The picker shows the first platform; ?platform= picks another.
		assert.Contains(t, p.body, fmt.Sprintf(`<option value="%s" selected>linux/amd64</option>`, amdDigest))
		assert.Equal(t, 2, strings.Count(p.body, `<tr><td class="num">`), "amd64 has two layers")
		p = b.get("/ui/repo/multi/-/manifest/latest?platform=" + armDigest.String())
		assert.Contains(t, p.body, fmt.Sprintf(`<option value="%s" selected>linux/arm64/v8</option>`, armDigest))
		assert.Equal(t, 1, strings.Count(p.body, `<tr><td class="num">`), "arm64 has one layer")
		assert.Contains(t, p.body, "<dt>OS/Arch</dt><dd>linux/arm64</dd>")
		for _, cmd := range []string{
			"docker pull localhost:" + port + "/multi:latest",
			"podman pull --tls-verify=false localhost:" + port + "/multi:latest",
			"crane pull localhost:" + port + "/multi:latest multi.tar",
			"kubectl run multi --image=localhost:" + port + "/multi:latest",
		} {
			assert.Contains(t, p.body, `data-copy="`+cmd+`"`)
		}
	})

	t.Run("helm chart", func(t *testing.T) {
		p := b.get("/ui/repo/charts/demo")
		checkPage(t, "/ui/repo/charts/demo", p)
		assert.Contains(t, p.body, `<span class="kind kind-helm">Helm chart</span>`)
		assert.Contains(t, p.body, `data-copy="helm install demo oci://localhost:`+port+`/charts/demo --version 0.1.0 --plain-http"`)
		p = b.get("/ui/repo/charts/demo/-/manifest/0.1.0")
		checkPage(t, "chart manifest", p)
		assert.Contains(t, p.body, "<dt>Version</dt><dd>0.1.0</dd>")
		assert.Contains(t, p.body, `data-copy="oras pull --plain-http localhost:`+port+`/charts/demo:0.1.0"`)
		assert.NotContains(t, p.body, "docker pull", "docker cannot pull a chart")
		_ = chart
	})

	t.Run("image with an SBOM", func(t *testing.T) {
		p := b.get("/ui/repo/team/app?sort=name")
		checkPage(t, "/ui/repo/team/app", p)
		assert.Contains(t, p.body, `<span class="badge badge-sbom" title="1 SBOM(s) attached">SBOM</span>`)
		// v1 and stable share a digest; tags sort by name.
		assert.Less(t, strings.Index(p.body, `data-tag="stable"`), strings.Index(p.body, `data-tag="v1"`))
		assert.Less(t, strings.Index(p.body, `data-tag="v1"`), strings.Index(p.body, `data-tag="v2"`))

		p = b.get("/ui/repo/team/app/-/manifest/v1")
		checkPage(t, "image manifest", p)
		sbomDigest := digest.FromBytes(sbom.body).String()
		assert.Contains(t, p.body, `<a href="/ui/repo/team/app/-/manifest/`+sbomDigest+`"`)
		assert.Contains(t, p.body, "application/spdx&#43;json")
		assert.Contains(t, p.body, `>stable</a>, <a href="/ui/repo/team/app/-/manifest/v1">v1</a>`)

		p = b.get("/ui/repo/team/app/-/manifest/" + sbomDigest)
		require.Equal(t, http.StatusOK, p.status)
		checkPage(t, "SBOM manifest", p)
		assert.Contains(t, p.body, `<dt>Refers to</dt><dd><a class="mono" href="/ui/repo/team/app/-/manifest/`+imgDigest.String()+`"`)
		assert.Contains(t, p.body, "sbom.spdx.json")
		assert.Contains(t, p.body, `data-copy="oras pull --plain-http localhost:`+port+`/team/app@`+sbomDigest+`"`)
	})

	t.Run("not found", func(t *testing.T) {
		for _, path := range []string{"/ui/repo/nothing", "/ui/repo/multi/-/manifest/nope", "/ui/repo/multi/-/manifest/sha256:" + strings.Repeat("0", 64),
			"/ui/repo/Bad_Name", "/ui/repo/multi/-/bogus", "/ui/nothing"} {
			p := b.get(path)
			assert.Equal(t, http.StatusNotFound, p.status, path)
			checkPage(t, path, p)
		}
	})

	t.Run("storage", func(t *testing.T) {
		_, err := s.reg.Stats(context.Background(), true) // the statistics count every push
		require.NoError(t, err)
		p := b.get("/ui/storage")
		require.Equal(t, http.StatusOK, p.status)
		checkPage(t, "/ui/storage", p)
		assert.Contains(t, p.body, `href="/ui/repo/multi"`)
	})

	t.Run("assets", func(t *testing.T) {
		for _, a := range []string{"app.css", "app.js", "favicon.png"} {
			resp, err := http.Get(s.srv.URL + "/ui/static/" + a)
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			assert.Equal(t, http.StatusOK, resp.StatusCode, a)
			assert.Contains(t, resp.Header.Get("Cache-Control"), "immutable")
			assert.NotContains(t, string(body), "http:", a)
			assert.NotContains(t, string(body), "https:", a)
			assert.NotContains(t, string(body), "@import", a)
			assert.NotContains(t, string(body), "url(", a)
		}
		resp, err := http.Get(s.srv.URL + "/ui/static/nothing.js")
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	})
}

func TestUIPagination(t *testing.T) {
	s := startUIServer(t, auth.PolicyNone)
	img := s.pushImage("seed:v1", 64, 1)
	for i := range 120 {
		s.copyImage(img, "seed", fmt.Sprintf("ns%d/repo%03d", i%3, i), "v1")
	}
	b := s.browser()
	p := b.get("/ui/")
	assert.Contains(t, p.body, "1–50 of 121 (page 1 of 3)")
	assert.Equal(t, 50, strings.Count(p.body, `class="repo-link"`))
	assert.Contains(t, p.body, `href="/ui/?page=2" rel="next"`)
	p = b.get("/ui/?page=3")
	assert.Contains(t, p.body, "101–121 of 121 (page 3 of 3)")
	assert.Equal(t, 21, strings.Count(p.body, `class="repo-link"`))
	p = b.get("/ui/?page=99")
	assert.Contains(t, p.body, "page 3 of 3", "past the end: the last page")
	p = b.get("/ui/?ns=ns1")
	assert.Equal(t, 40, strings.Count(p.body, `class="repo-link"`))
	assert.NotContains(t, p.body, `rel="next"`)
	p = b.get("/ui/?ns=ns1&q=repo00")
	assert.Equal(t, 3, strings.Count(p.body, `class="repo-link"`), "repo001, repo004, repo007")
}

func TestUIOffAndRedirects(t *testing.T) {
	tr := openTestRegistry(t, "")
	rec := tr.do(http.MethodGet, "/ui/", nil)
	assert.Equal(t, http.StatusNotFound, rec.Code, "no UI unless asked for")
	assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	rec = tr.do(http.MethodGet, "/", nil)
	assert.Equal(t, http.StatusNotFound, rec.Code)

	s := startUIServer(t, auth.PolicyNone)
	b := s.browser()
	for _, path := range []string{"/", "/ui"} {
		p := b.get(path)
		assert.Equal(t, http.StatusFound, p.status, path)
		assert.Equal(t, "/ui/", p.header.Get("Location"), path)
	}
	p := b.post("/", url.Values{})
	assert.Equal(t, http.StatusNotFound, p.status, "only browsers' GETs are sent to the UI")
	// The registry API is untouched.
	resp, err := http.Get(s.srv.URL + "/v2/")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	req, err := http.NewRequest(http.MethodGet, s.srv.URL+"/ui/", nil)
	require.NoError(t, err)
	req.Host = "rebound.example:5001"
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMisdirectedRequest, resp.StatusCode, "a name that is not ours (DNS rebinding)")
}

// catalog is the registry API's list of repositories.
func (s *uiServer) catalog() []string {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.srv.URL+"/v2/_catalog", nil)
	require.NoError(s.t, err)
	req.SetBasicAuth(uiUser, uiPassword)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	require.Equal(s.t, http.StatusOK, resp.StatusCode)
	var c struct{ Repositories []string }
	require.NoError(s.t, json.NewDecoder(resp.Body).Decode(&c))
	return c.Repositories
}

func (s *uiServer) tags(repo string) []string {
	s.t.Helper()
	tags, err := remote.List(s.ref(repo).Context(), s.remoteOpts()...)
	if err != nil {
		return nil
	}
	return tags
}

func TestUIDeletes(t *testing.T) {
	s := startUIServer(t, auth.PolicyNone)
	img := s.pushImage("app:v1", 512, 1)
	require.NoError(t, remote.Tag(s.ref("app:v2").(name.Tag), img, s.remoteOpts()...))
	s.pushImage("app:v3", 512, 1)
	imgDigest, _ := img.Digest()
	imgRaw, _ := img.RawManifest()
	subject := v1.Descriptor{MediaType: string(types.DockerManifestSchema2), Digest: digest.Digest(imgDigest.String()), Size: int64(len(imgRaw))}
	sig := s.pushArtifact("app", "", "application/vnd.cncf.notary.signature", v1.DescriptorEmptyJSON, []byte("{}"),
		map[string][]byte{"sig": []byte("signature")}, &subject)
	sigDigest := digest.FromBytes(sig.body).String()
	b := s.browser()

	t.Run("tag shared with another tag", func(t *testing.T) {
		p := b.get("/ui/repo/app/-/delete?tag=v1")
		require.Equal(t, http.StatusOK, p.status)
		checkPage(t, "confirm tag", p)
		assert.Contains(t, p.body, "Other tags point to the same manifest:</strong> v2.")
		// No CSRF token: refused, nothing deleted.
		p = b.post("/ui/repo/app/-/delete", url.Values{"tag": {"v1"}})
		assert.Equal(t, http.StatusForbidden, p.status)
		checkPage(t, "refused", p)
		p = b.post("/ui/repo/app/-/delete", url.Values{"tag": {"v1"}, "csrf": {"forged"}})
		assert.Equal(t, http.StatusForbidden, p.status)
		assert.ElementsMatch(t, []string{"v1", "v2", "v3"}, s.tags("app"))

		form := b.get("/ui/repo/app/-/delete?tag=v1")
		// A cross-site POST is refused even with a token (the browser says where it came from).
		p = b.post("/ui/repo/app/-/delete", url.Values{"tag": {"v1"}, "csrf": {form.csrf(t)}}, "Origin", "http://evil.example")
		assert.Equal(t, http.StatusForbidden, p.status)
		p = b.post("/ui/repo/app/-/delete", url.Values{"tag": {"v1"}, "csrf": {form.csrf(t)}}, "Sec-Fetch-Site", "cross-site")
		assert.Equal(t, http.StatusForbidden, p.status)
		assert.ElementsMatch(t, []string{"v1", "v2", "v3"}, s.tags("app"))

		p = b.post("/ui/repo/app/-/delete", url.Values{"tag": {"v1"}, "csrf": {form.csrf(t)}}, "Origin", s.srv.URL, "Sec-Fetch-Site", "same-origin")
		require.Equal(t, http.StatusSeeOther, p.status, p.body)
		assert.Equal(t, "/ui/repo/app", p.header.Get("Location"))
		assert.ElementsMatch(t, []string{"v2", "v3"}, s.tags("app"))
		got, err := remote.Image(s.ref("app:v2"), s.remoteOpts()...)
		require.NoError(t, err, "the manifest stays with its other tag")
		d, _ := got.Digest()
		assert.Equal(t, imgDigest, d)

		p = b.get("/ui/repo/app")
		assert.Contains(t, p.body, "Deleted tag app:v1.")
		assert.Contains(t, p.body, `href="/ui/storage#gc"`, "a GC hint follows a delete")
		assert.NotContains(t, p.body, `data-tag="v1"`)
		p = b.get("/ui/repo/app")
		assert.NotContains(t, p.body, "Deleted tag", "the message is shown once")
	})

	t.Run("manifest with its tags and referrers", func(t *testing.T) {
		p := b.get("/ui/repo/app/-/delete?digest=" + imgDigest.String())
		require.Equal(t, http.StatusOK, p.status)
		assert.Contains(t, p.body, "These tags point to it and are deleted with it:</strong> v2.")
		assert.Contains(t, p.body, "1 artifact(s)")
		// The signature first: through the UI the referrers index forgets it.
		p = b.get("/ui/repo/app/-/delete?digest=" + sigDigest)
		p = b.post("/ui/repo/app/-/delete", url.Values{"digest": {sigDigest}, "csrf": {p.csrf(t)}})
		require.Equal(t, http.StatusSeeOther, p.status, p.body)
		refs, err := remote.Referrers(s.ref("app@"+imgDigest.String()).Context().Digest(imgDigest.String()), s.remoteOpts()...)
		require.NoError(t, err)
		idx, err := refs.IndexManifest()
		require.NoError(t, err)
		assert.Empty(t, idx.Manifests, "the referrers API no longer lists the deleted signature")

		p = b.get("/ui/repo/app/-/delete?digest=" + imgDigest.String())
		tok := p.csrf(t)
		p = b.post("/ui/repo/app/-/delete", url.Values{"digest": {imgDigest.String()}, "csrf": {tok}})
		require.Equal(t, http.StatusSeeOther, p.status, p.body)
		assert.ElementsMatch(t, []string{"v3"}, s.tags("app"))
		_, err = remote.Get(s.ref("app@"+imgDigest.String()), s.remoteOpts()...)
		assert.Error(t, err, "the manifest is gone")
		p = b.post("/ui/repo/app/-/delete", url.Values{"digest": {imgDigest.String()}, "csrf": {tok}})
		assert.Equal(t, http.StatusNotFound, p.status, "deleting it twice")
	})

	t.Run("repository", func(t *testing.T) {
		p := b.get("/ui/repo/app/-/delete")
		require.Equal(t, http.StatusOK, p.status)
		checkPage(t, "confirm repository", p)
		assert.Contains(t, p.body, `data-confirm-value="app"`)
		tok := p.csrf(t)
		p = b.post("/ui/repo/app/-/delete", url.Values{"csrf": {tok}, "confirm": {"wrong"}})
		assert.Equal(t, http.StatusUnprocessableEntity, p.status)
		assert.Contains(t, s.catalog(), "app")
		p = b.post("/ui/repo/app/-/delete", url.Values{"csrf": {tok}, "confirm": {"app"}})
		require.Equal(t, http.StatusSeeOther, p.status, p.body)
		assert.Equal(t, "/ui/", p.header.Get("Location"))
		assert.NotContains(t, s.catalog(), "app", "gone from the API's catalog")
		p = b.get("/ui/")
		assert.Contains(t, p.body, "Deleted repository app")
		assert.NotContains(t, p.body, `href="/ui/repo/app"`)
		assert.Equal(t, http.StatusNotFound, b.get("/ui/repo/app").status)

		// Pushed again, it is back.
		s.pushImage("app:again", 256, 1)
		assert.Contains(t, s.catalog(), "app")
		assert.Contains(t, b.get("/ui/").body, `href="/ui/repo/app"`)
	})
}

// Deleting a repository while pushes to it go on loses no push that finished
// after the delete, and leaves no tag whose content cannot be pulled.
func TestUIRepositoryDeleteWithConcurrentPushes(t *testing.T) {
	s := startUIServer(t, auth.PolicyNone)
	for i := range 20 {
		s.pushImage(fmt.Sprintf("busy:old%d", i), 256, 1)
	}
	src := s.reg.ui
	stop := make(chan struct{})
	pushed := make(chan string, 1000)
	var pushErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			img, err := random.Image(256, 1)
			if err != nil {
				pushErr = err
				return
			}
			tag := fmt.Sprintf("new%d", i)
			if err := remote.Write(s.ref("busy:"+tag), img); err != nil {
				pushErr = err
				return
			}
			pushed <- tag
		}
	}()
	res, err := src.DeleteRepository(context.Background(), "tester", "busy")
	close(stop)
	<-done
	close(pushed)
	require.NoError(t, err)
	require.NoError(t, pushErr, "no push failed")
	assert.GreaterOrEqual(t, res.Manifests, 20)
	t.Logf("deleted %d manifests while %d pushes went on; remaining: %v", res.Manifests, len(pushed), res.Remaining)

	// Whatever is left is whole: every tag pulls with every blob.
	left := s.tags("busy")
	for _, tag := range left {
		img, err := remote.Image(s.ref("busy:" + tag))
		require.NoError(t, err, tag)
		layers, err := img.Layers()
		require.NoError(t, err)
		for _, l := range layers {
			rc, err := l.Compressed()
			require.NoError(t, err, tag)
			_, err = io.Copy(io.Discard, rc)
			require.NoError(t, err, tag)
			rc.Close()
		}
	}
	for _, tag := range left {
		assert.NotContains(t, tag, "old", "every tag from before the delete is gone")
	}
	// What the delete reports as pushed meanwhile is really there; a push whose
	// manifest landed after the delete let go of the repository may be there
	// too, unreported (the delete cannot see it): only pushed tags, never others.
	var pushedTags []string
	for tag := range pushed {
		pushedTags = append(pushedTags, tag)
	}
	for _, tag := range res.Remaining {
		assert.Contains(t, left, tag, "reported as remaining")
	}
	for _, tag := range left {
		assert.Contains(t, pushedTags, tag, "only tags a push was told were stored")
	}
	// The last push after the delete returned is there.
	img, err := random.Image(128, 1)
	require.NoError(t, err)
	require.NoError(t, remote.Write(s.ref("busy:after"), img))
	assert.Contains(t, s.tags("busy"), "after")
}

func cookieNamed(h http.Header, name string) *http.Cookie {
	for _, c := range (&http.Response{Header: h}).Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func TestUIAuthAll(t *testing.T) {
	s := startUIServer(t, auth.PolicyAll)
	s.pushImage("secret/app:v1", 256, 1)
	b := s.browser()

	t.Run("every page needs a login", func(t *testing.T) {
		for _, path := range []string{"/ui/", "/ui/repo/secret/app", "/ui/repo/secret/app/-/manifest/v1", "/ui/storage", "/ui/repo/secret/app/-/delete?tag=v1"} {
			p := b.get(path)
			assert.Equal(t, http.StatusSeeOther, p.status, path)
			assert.Equal(t, "/ui/login?next="+url.QueryEscape(path), p.header.Get("Location"), path)
			assert.NotContains(t, p.body, "secret/app", path)
		}
		p := b.get("/ui/static/app.css")
		assert.Equal(t, http.StatusOK, p.status, "the login form needs its style")
		p = b.get("/ui/login")
		assert.Equal(t, http.StatusOK, p.status)
		checkPage(t, "/ui/login", p)
	})

	t.Run("login form", func(t *testing.T) {
		form := b.get("/ui/login?next=" + url.QueryEscape("/ui/repo/secret/app"))
		tok := form.csrf(t)
		assert.Contains(t, form.body, `name="next" value="/ui/repo/secret/app"`)

		p := b.post("/ui/login", url.Values{"username": {uiUser}, "password": {uiPassword}})
		assert.Equal(t, http.StatusForbidden, p.status, "a login without the form's token is refused")

		p = b.post("/ui/login", url.Values{"csrf": {tok}, "username": {uiUser}, "password": {"wrong password"}, "next": {"/ui/repo/secret/app"}})
		assert.Equal(t, http.StatusUnauthorized, p.status)
		checkPage(t, "failed login", p)
		assert.Contains(t, p.body, "Invalid user name or password.")
		assert.Nil(t, cookieNamed(p.header, "idpbuilder_session"))
		assert.Equal(t, http.StatusSeeOther, b.get("/ui/").status, "still logged out")

		p = b.post("/ui/login", url.Values{"csrf": {tok}, "username": {uiUser}, "password": {uiPassword}, "next": {"/ui/repo/secret/app"}})
		require.Equal(t, http.StatusSeeOther, p.status, p.body)
		assert.Equal(t, "/ui/repo/secret/app", p.header.Get("Location"))
		c := cookieNamed(p.header, "idpbuilder_session")
		require.NotNil(t, c)
		assert.True(t, c.HttpOnly)
		assert.Equal(t, http.SameSiteStrictMode, c.SameSite)
		assert.Equal(t, "/ui/", c.Path)
		assert.Equal(t, 8*3600, c.MaxAge, "it expires")
		assert.False(t, c.Secure, "plain HTTP here; Secure under TLS")

		p = b.get("/ui/repo/secret/app")
		require.Equal(t, http.StatusOK, p.status)
		assert.Contains(t, p.body, "Signed in as <strong>alice</strong>")
		assert.Contains(t, p.body, `data-tag="v1"`)
	})

	t.Run("logout ends the session", func(t *testing.T) {
		page := b.get("/ui/")
		require.Equal(t, http.StatusOK, page.status)
		old := cookieValue(b, s, "idpbuilder_session")
		require.NotEmpty(t, old)
		p := b.post("/ui/logout", url.Values{"csrf": {page.csrf(t)}})
		require.Equal(t, http.StatusSeeOther, p.status)
		assert.Equal(t, http.StatusSeeOther, b.get("/ui/").status, "logged out")
		// The old cookie is dead on the server too, not just forgotten by the browser.
		stolen := s.browser()
		setCookie(stolen, s, "idpbuilder_session", old)
		assert.Equal(t, http.StatusSeeOther, stolen.get("/ui/").status)
		assert.Equal(t, http.StatusMethodNotAllowed, b.get("/ui/logout").status, "a link cannot log anyone out")
	})

	t.Run("a new session id at every login", func(t *testing.T) {
		b1 := s.browser()
		b1.login(uiUser, uiPassword)
		first := cookieValue(b1, s, "idpbuilder_session")
		b1.login(uiUser, uiPassword)
		second := cookieValue(b1, s, "idpbuilder_session")
		require.NotEmpty(t, first)
		assert.NotEqual(t, first, second)
		planted := s.browser()
		setCookie(planted, s, "idpbuilder_session", "planted-by-an-attacker-0123456789abcdef")
		planted.login(uiUser, uiPassword)
		assert.NotEqual(t, "planted-by-an-attacker-0123456789abcdef", cookieValue(planted, s, "idpbuilder_session"))
	})

	t.Run("no open redirect", func(t *testing.T) {
		for _, next := range []string{"https://evil.example/", "//evil.example/ui/", "/\\evil.example", "/v2/_catalog", "javascript:alert(1)"} {
			b1 := s.browser()
			form := b1.get("/ui/login?next=" + url.QueryEscape(next))
			assert.Contains(t, form.body, `name="next" value="/ui/"`, next)
			p := b1.post("/ui/login", url.Values{"csrf": {form.csrf(t)}, "username": {uiUser}, "password": {uiPassword}, "next": {next}})
			require.Equal(t, http.StatusSeeOther, p.status)
			assert.Equal(t, "/ui/", p.header.Get("Location"), next)
		}
	})

	t.Run("sessions end with their user or password", func(t *testing.T) {
		b1 := s.browser()
		b1.login(uiUser, uiPassword)
		require.Equal(t, http.StatusOK, b1.get("/ui/").status)
		s.setUsers(map[string]string{uiUser: "a brand new password"})
		assert.Equal(t, http.StatusSeeOther, b1.get("/ui/").status, "password changed: log in again")
		p := b1.login(uiUser, "a brand new password")
		require.Equal(t, http.StatusSeeOther, p.status)
		require.Equal(t, http.StatusOK, b1.get("/ui/").status)
		s.setUsers(map[string]string{"bob": "bobs password"})
		assert.Equal(t, http.StatusSeeOther, b1.get("/ui/").status, "user removed: session over")
		s.setUsers(map[string]string{uiUser: uiPassword})
	})

	t.Run("failed logins share the API's budget", func(t *testing.T) {
		// A stopped clock: the budget does not refill while bcrypt runs.
		frozen := time.Now()
		s.reg.login.perUser = newLimiter(failedLoginRate, 3, func() time.Time { return frozen })
		b1 := s.browser()
		var last page
		for range 4 {
			form := b1.get("/ui/login")
			last = b1.post("/ui/login", url.Values{"csrf": {form.csrf(t)}, "username": {uiUser}, "password": {"guess"}})
		}
		assert.Equal(t, http.StatusTooManyRequests, last.status)
		assert.NotEmpty(t, last.header.Get("Retry-After"))
		assert.Contains(t, last.body, "too many failed logins")
		// The API from the same client is refused too: one budget.
		req, _ := http.NewRequest(http.MethodGet, s.srv.URL+"/v2/", nil)
		req.SetBasicAuth(uiUser, "guess")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	})
}

func cookieValue(b *browser, s *uiServer, name string) string {
	u, _ := url.Parse(s.srv.URL + "/ui/")
	for _, c := range b.client.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

func setCookie(b *browser, s *uiServer, name, value string) {
	u, _ := url.Parse(s.srv.URL + "/ui/")
	b.client.Jar.SetCookies(u, []*http.Cookie{{Name: name, Value: value, Path: "/ui/"}})
}

func TestUIAuthPush(t *testing.T) {
	s := startUIServer(t, auth.PolicyPush)
	s.pushImage("open/app:v1", 256, 1)
	b := s.browser()
	p := b.get("/ui/repo/open/app")
	require.Equal(t, http.StatusOK, p.status, "browsing is open")
	assert.Contains(t, p.body, `data-tag="v1"`)
	assert.NotContains(t, p.body, "/-/delete?tag=v1", "no delete without a login")
	assert.Contains(t, p.body, "Log in to delete")

	p = b.get("/ui/repo/open/app/-/delete?tag=v1")
	assert.Equal(t, http.StatusSeeOther, p.status)
	assert.Equal(t, "/ui/login?next="+url.QueryEscape("/ui/repo/open/app/-/delete?tag=v1"), p.header.Get("Location"))
	// An anonymous POST with a valid token is still no delete.
	tok := b.get("/ui/login").csrf(t)
	p = b.post("/ui/repo/open/app/-/delete", url.Values{"csrf": {tok}, "tag": {"v1"}})
	assert.Equal(t, http.StatusSeeOther, p.status)
	assert.Contains(t, p.header.Get("Location"), "/ui/login")
	assert.Equal(t, []string{"v1"}, s.tags("open/app"))

	// The page's own "Log in" link comes back to the page.
	p = b.get("/ui/repo/open/app?sort=name")
	m := regexp.MustCompile(`href="(/ui/login\?next=[^"]+)">Log in</a>`).FindStringSubmatch(p.body)
	require.NotNil(t, m, p.body)
	form := b.get(html.UnescapeString(m[1]))
	require.Equal(t, http.StatusOK, form.status)
	assert.Contains(t, form.body, `name="next" value="/ui/repo/open/app?sort=name"`)
	p = b.post("/ui/login", url.Values{"csrf": {form.csrf(t)}, "username": {uiUser}, "password": {uiPassword}, "next": {"/ui/repo/open/app?sort=name"}})
	require.Equal(t, http.StatusSeeOther, p.status)
	assert.Equal(t, "/ui/repo/open/app?sort=name", p.header.Get("Location"))

	p = b.get("/ui/repo/open/app/-/delete?tag=v1")
	require.Equal(t, http.StatusOK, p.status)
	// The anonymous token no longer counts once logged in.
	p2 := b.post("/ui/repo/open/app/-/delete", url.Values{"csrf": {tok}, "tag": {"v1"}})
	assert.Equal(t, http.StatusForbidden, p2.status)
	p = b.post("/ui/repo/open/app/-/delete", url.Values{"csrf": {p.csrf(t)}, "tag": {"v1"}})
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	assert.Empty(t, s.tags("open/app"))
}

// The UI lists exactly the repositories distribution's catalog lists,
// repositories nested in repositories included.
func TestUIRepositoryNamesMatchCatalog(t *testing.T) {
	s := startUIServer(t, auth.PolicyNone)
	img := s.pushImage("a:v1", 64, 1)
	for _, r := range []string{"a/b", "a/b/c", "z", "m/n_o/p-q", "m/n"} {
		s.copyImage(img, "a", r, "v1")
	}
	var want []string
	require.NoError(t, s.reg.eng.forEachRepository(context.Background(), func(n string) error {
		want = append(want, n)
		return nil
	}))
	got, err := s.reg.ui.Repositories(context.Background())
	require.NoError(t, err)
	assert.ElementsMatch(t, want, got)
	assert.Equal(t, []string{"a", "a/b", "a/b/c", "m/n", "m/n_o/p-q", "z"}, got)

	empty := startUIServer(t, auth.PolicyNone)
	got, err = empty.reg.ui.Repositories(context.Background())
	require.NoError(t, err)
	assert.Empty(t, got)
}

// FuzzUIRequests: no request to the UI, however malformed, gets a 5xx or an
// answer that names the data dir. The registry holds an image, an index and
// a chart so that pages have something to render.
func FuzzUIRequests(f *testing.F) {
	s := startUIServer(f, auth.PolicyPush)
	s.pushImage("team/app:v1", 128, 1)
	s.pushIndex("multi:latest")
	s.pushChart("charts/c", "1.0.0")
	h := s.reg.Handler()
	for _, seed := range []string{
		"/ui/", "/ui/?q=app&ns=team&page=2", "/ui/?ns=../..", "/ui/repo/team/app", "/ui/repo/multi/-/manifest/latest?platform=x",
		"/ui/repo/multi/-/manifest/sha256:" + strings.Repeat("0", 64), "/ui/repo/team/app/-/delete?tag=v1", "/ui/repo/team/app/-/delete?digest=sha256:zz",
		"/ui/login?next=//evil", "/ui/logout", "/ui/storage", "/ui/static/app.js", "/ui/static/../../etc/passwd", "/ui/repo/%2e%2e/-/manifest/x",
		"/ui/repo/a/-/-/-/manifest/latest", "/", "/ui",
	} {
		for _, m := range []byte{0, 1, 3} {
			f.Add(m, seed, "csrf=x&tag=v1&confirm=team%2Fapp&username=alice&password=x&next=%2Fui%2F")
		}
	}
	methods := []string{"GET", "HEAD", "POST", "PUT", "DELETE"}
	f.Fuzz(func(t *testing.T, m byte, target, form string) {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return
		}
		req := &http.Request{Method: methods[int(m)%len(methods)], URL: u, Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
			Body: io.NopCloser(strings.NewReader(form)), Host: s.host, RemoteAddr: "127.0.0.1:1234", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
		req = req.WithContext(context.Background())
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Errorf("%s %s -> %d %s", req.Method, target, rec.Code, rec.Body.String())
		}
		if strings.Contains(rec.Body.String(), s.dir) {
			t.Errorf("%s %s: the answer names the data dir", req.Method, target)
		}
	})
}

// blobOnDisk reports whether a blob's content is in the blob store.
func (s *uiServer) blobOnDisk(d ggcrv1.Hash) bool {
	_, err := os.Stat(filepath.Join(s.dir, "data", filepath.FromSlash(blobDataPath(digest.Digest(d.String())))))
	return err == nil
}

// The storage page previews a garbage collection, runs it (logged in under
// --auth=push), and shows the result; what it previewed is what it deletes.
func TestUIStorageGC(t *testing.T) {
	s := startUIServerWith(t, auth.PolicyPush, func(o *Options) { o.GCGrace = time.Nanosecond }) // no grace: all is old
	keep := s.pushImage("keep:v1", 512, 1)
	old := s.pushImage("keep:old", 512, 1)
	gone := s.pushImage("gone:v1", 512, 2)
	oldDigest, _ := old.Digest()
	goneLayers, err := gone.Layers()
	require.NoError(t, err)
	goneLayer, _ := goneLayers[0].Digest()
	keepLayers, _ := keep.Layers()
	keepLayer, _ := keepLayers[0].Digest()

	b := s.browser()
	p := b.get("/ui/storage")
	require.Equal(t, http.StatusOK, p.status)
	checkPage(t, "/ui/storage", p)
	assert.Contains(t, p.body, "Log in</a> to run garbage collection")
	p = b.post("/ui/storage/gc", url.Values{"csrf": {b.get("/ui/login").csrf(t)}, "dry_run": {"1"}})
	assert.Equal(t, http.StatusSeeOther, p.status, "no garbage collection without a login")
	assert.Nil(t, s.reg.LastGC())

	require.Equal(t, http.StatusSeeOther, b.login(uiUser, uiPassword).status)
	// Delete the tag old (its manifest stays, untagged) and the repository gone.
	tok := b.get("/ui/repo/keep/-/delete?tag=old").csrf(t)
	require.Equal(t, http.StatusSeeOther, b.post("/ui/repo/keep/-/delete", url.Values{"csrf": {tok}, "tag": {"old"}}).status)
	require.Equal(t, http.StatusSeeOther, b.post("/ui/repo/gone/-/delete", url.Values{"csrf": {tok}, "confirm": {"gone"}}).status)
	require.True(t, s.blobOnDisk(goneLayer), "deleting frees nothing by itself")
	st, err := s.reg.Stats(context.Background(), true)
	require.NoError(t, err)
	assert.Equal(t, 1, st.Repositories, "the statistics count the UI's deletes")
	assert.Equal(t, 1, st.Tags)

	p = b.get("/ui/storage")
	assert.Contains(t, p.body, `id="gc-preview"`)
	p = b.post("/ui/storage/gc", url.Values{"csrf": {p.csrf(t)}, "dry_run": {"1"}, "untagged": {"1"}})
	require.Equal(t, http.StatusOK, p.status, p.body)
	checkPage(t, "gc preview", p)
	assert.Contains(t, p.body, "A run now would delete")
	assert.Contains(t, p.body, `title="`+oldDigest.String()+`"`, "the untagged manifest is listed")
	assert.Contains(t, p.body, `<input type="hidden" name="untagged" value="1">`, "the run does what was previewed")
	assert.Contains(t, p.body, `id="gc-run"`)
	assert.True(t, s.blobOnDisk(goneLayer), "a preview deletes nothing")
	assert.Nil(t, s.reg.LastGC(), "a preview is no run")
	preview := regexp.MustCompile(`<dt>Blobs</dt><dd>(\d+)</dd>`).FindStringSubmatch(p.body)
	require.NotNil(t, preview)

	p = b.post("/ui/storage/gc", url.Values{"csrf": {p.csrf(t)}, "untagged": {"1"}})
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	assert.Equal(t, "/ui/storage#last-gc", p.header.Get("Location"))
	last := s.reg.LastGC()
	require.NotNil(t, last)
	assert.Equal(t, preview[1], fmt.Sprint(len(last.Blobs)), "the run deleted what the preview said")
	assert.False(t, s.blobOnDisk(goneLayer), "the deleted repository's layer is gone")
	assert.True(t, s.blobOnDisk(keepLayer))
	_, err = remote.Image(s.ref("keep:v1"), s.remoteOpts()...)
	require.NoError(t, err, "what a tag reaches stays")

	p = b.get("/ui/storage")
	checkPage(t, "after gc", p)
	assert.Contains(t, p.body, fmt.Sprintf("Garbage collection deleted %d manifest(s) and %d blob(s), freeing %s.", len(last.Manifests), len(last.Blobs), humanBytes(last.BytesFreed)))
	assert.NotContains(t, p.body, "Deleting frees no disk space by itself: the layers stay", "no GC hint after a GC")
	assert.Contains(t, p.body, fmt.Sprintf("%d manifest(s), %d blob(s)", len(last.Manifests), len(last.Blobs)))
	assert.Contains(t, p.body, `<span class="health-healthy">healthy</span>`)
	assert.Equal(t, http.StatusMethodNotAllowed, b.get("/ui/storage/gc").status)
}

// humanBytes renders sizes as the UI does.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// The Source refuses names that are no repository or tag (they would be
// paths in the store) as not found, whoever calls it.
func TestUISourceRefusesBadNames(t *testing.T) {
	s := startUIServer(t, auth.PolicyNone)
	s.pushImage("app:v1", 64, 1)
	src, ctx := s.reg.ui, context.Background()
	for _, repo := range []string{"../app", "app/..", "/app", "APP", "", "app/../../.."} {
		_, err := src.Repository(ctx, repo)
		assert.ErrorIs(t, err, ui.ErrNotFound, repo)
		_, err = src.Tags(ctx, repo)
		assert.ErrorIs(t, err, ui.ErrNotFound, repo)
		_, err = src.Manifest(ctx, repo, "v1")
		assert.ErrorIs(t, err, ui.ErrNotFound, repo)
		_, err = src.Referrers(ctx, repo, "sha256:"+strings.Repeat("0", 64))
		assert.ErrorIs(t, err, ui.ErrNotFound, repo)
		_, err = src.DeleteRepository(ctx, "tester", repo)
		assert.ErrorIs(t, err, ui.ErrNotFound, repo)
	}
	for _, ref := range []string{"../../../../../etc/passwd", "v1/../v1", ".v1", "sha256:xyz"} {
		_, err := src.Manifest(ctx, "app", ref)
		assert.ErrorIs(t, err, ui.ErrNotFound, ref)
		assert.ErrorIs(t, src.DeleteTag(ctx, "tester", "app", ref), ui.ErrNotFound, ref)
	}
	_, err := src.Manifest(ctx, "app", "v1")
	assert.NoError(t, err)
}
