package registry

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testRegistry is a registry opened without a listener, driven through its
// handler.
type testRegistry struct {
	t   testing.TB
	reg *Registry
	dir string
}

func openTestRegistry(t testing.TB, dir string) *testRegistry {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	r := New(Options{DataDir: dir, Logger: slog.New(slog.DiscardHandler), RateLimit: RateLimit{Disabled: true}})
	require.NoError(t, r.Open(context.Background()))
	t.Cleanup(func() { _ = r.Close() })
	return &testRegistry{t: t, reg: r, dir: dir}
}

// do sends one request through the handler.
func (tr *testRegistry) do(method, target string, body []byte, header ...string) *httptest.ResponseRecorder {
	tr.t.Helper()
	req := httptest.NewRequest(method, target, bytes.NewReader(body))
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	tr.reg.Handler().ServeHTTP(rec, req)
	return rec
}

// pushBlob uploads content in one PUT, addressed with alg.
func (tr *testRegistry) pushBlob(repo string, content []byte, alg digest.Algorithm) digest.Digest {
	tr.t.Helper()
	rec := tr.do(http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil)
	require.Equal(tr.t, http.StatusAccepted, rec.Code, rec.Body.String())
	loc, err := url.Parse(rec.Header().Get("Location"))
	require.NoError(tr.t, err)
	d := alg.FromBytes(content)
	q := loc.Query()
	q.Set("digest", d.String())
	rec = tr.do(http.MethodPut, loc.Path+"?"+q.Encode(), content, "Content-Type", "application/octet-stream")
	require.Equal(tr.t, http.StatusCreated, rec.Code, rec.Body.String())
	require.Equal(tr.t, d.String(), rec.Header().Get("Docker-Content-Digest"))
	return d
}

func (tr *testRegistry) putManifest(repo, ref string, body []byte, mediaType string) *httptest.ResponseRecorder {
	tr.t.Helper()
	return tr.do(http.MethodPut, "/v2/"+repo+"/manifests/"+ref, body, "Content-Type", mediaType)
}

// image builds an OCI image manifest over an existing config blob.
func image(config v1.Descriptor, artifactType string, subject *v1.Descriptor, annotations map[string]string) []byte {
	m := map[string]any{
		"schemaVersion": 2, "mediaType": v1.MediaTypeImageManifest, "config": config, "layers": []v1.Descriptor{},
	}
	if artifactType != "" {
		m["artifactType"] = artifactType
	}
	if subject != nil {
		m["subject"] = subject
	}
	if annotations != nil {
		m["annotations"] = annotations
	}
	b, _ := json.Marshal(m)
	return b
}

// fixture pushes a config blob and a subject image tagged v1 into repo.
func (tr *testRegistry) fixture(repo string) (config, subject v1.Descriptor) {
	tr.t.Helper()
	cfg := []byte(`{"architecture":"amd64","os":"linux"}`)
	config = v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: tr.pushBlob(repo, cfg, digest.SHA256), Size: int64(len(cfg))}
	body := image(config, "", nil, nil)
	rec := tr.putManifest(repo, "v1", body, v1.MediaTypeImageManifest)
	require.Equal(tr.t, http.StatusCreated, rec.Code, rec.Body.String())
	return config, v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: digest.FromBytes(body), Size: int64(len(body))}
}

func (tr *testRegistry) referrers(repo string, subject digest.Digest, query string) (v1.Index, *httptest.ResponseRecorder) {
	tr.t.Helper()
	target := "/v2/" + repo + "/referrers/" + subject.String()
	if query != "" {
		target += "?" + query
	}
	rec := tr.do(http.MethodGet, target, nil)
	require.Equal(tr.t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(tr.t, v1.MediaTypeImageIndex, rec.Header().Get("Content-Type"))
	var idx v1.Index
	require.NoError(tr.t, json.Unmarshal(rec.Body.Bytes(), &idx))
	require.NotNil(tr.t, idx.Manifests, "manifests must be a list, never null")
	return idx, rec
}

func digests(ds []v1.Descriptor) []digest.Digest {
	out := make([]digest.Digest, len(ds))
	for i, d := range ds {
		out[i] = d.Digest
	}
	return out
}

func TestParseRoute(t *testing.T) {
	zeros := "sha256:" + strings.Repeat("0", 64)
	tests := []struct {
		path    string
		kind    RouteKind
		repo    string
		ref     string
		invalid string // expected error code, if any
	}{
		{"/healthz", RouteLive, "", "", ""},
		{"/readyz", RouteReady, "", "", ""},
		{"/metrics", RouteMetrics, "", "", ""},
		{"/health", RouteHealth, "", "", ""},
		{"/api/v1/stats", RouteStats, "", "", ""},
		{"/v2/", RoutePing, "", "", ""},
		{"/v2", RoutePing, "", "", ""},
		{"/v2/_catalog", RouteCatalog, "", "", ""},
		{"/v2/a/b/tags/list", RouteTags, "a/b", "", ""},
		{"/v2/a/manifests/latest", RouteManifest, "a", "latest", ""},
		{"/v2/a/manifests/" + zeros, RouteManifest, "a", zeros, ""},
		{"/v2/a/blobs/" + zeros, RouteBlob, "a", zeros, ""},
		{"/v2/a/blobs/uploads/", RouteUpload, "a", "", ""},
		{"/v2/a/blobs/uploads", RouteUpload, "a", "", ""},
		{"/v2/a/blobs/uploads/0123-abcd", RouteUpload, "a", "0123-abcd", ""},
		{"/v2/a/blobs/uploads/=", RouteUpload, "a", "=", codeBlobUploadUnknown},
		{"/v2/a/blobs/uploads/..", RouteUpload, "a", "..", codeBlobUploadUnknown},
		{"/v2/a/referrers/" + zeros, RouteReferrers, "a", zeros, ""},
		// A repository may have components named like endpoints.
		{"/v2/x/blobs/manifests/v1", RouteManifest, "x/blobs", "v1", ""},
		{"/v2/x/manifests/tags/list", RouteTags, "x/manifests", "", ""},
		{"/v2/blobs/blobs/" + zeros, RouteBlob, "blobs", zeros, ""},
		{"/v2/Upper/tags/list", RouteTags, "Upper", "", codeNameInvalid},
		{"/v2/a!b/tags/list", RouteTags, "a!b", "", codeNameInvalid},
		{"/v2/été/tags/list", RouteTags, "été", "", codeNameInvalid},
		{"/v2/a//b/tags/list", RouteTags, "a//b", "", codeNameInvalid},
		{"/v2/" + strings.Repeat("a", 256) + "/tags/list", RouteTags, strings.Repeat("a", 256), "", codeNameInvalid},
		{"/v2/a/manifests/Tag!", RouteManifest, "a", "Tag!", codeTagInvalid},
		{"/v2/a/manifests/" + strings.Repeat("t", 129), RouteManifest, "a", strings.Repeat("t", 129), codeTagInvalid},
		{"/v2/a/manifests/" + strings.Repeat("t", 128), RouteManifest, "a", strings.Repeat("t", 128), ""},
		{"/v2/a/manifests/md5:zzz", RouteManifest, "a", "md5:zzz", codeDigestInvalid},
		{"/v2/a/blobs/latest", RouteBlob, "a", "latest", codeDigestInvalid},
		{"/v2/a/referrers/sha256:00", RouteReferrers, "a", "sha256:00", codeDigestInvalid},
		{"/v2/a/unknown/x", RouteUnknown, "", "", ""},
		{"/v2/tags/list", RouteUnknown, "", "", ""},
		{"/other", RouteUnknown, "", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			rt := parseRoute(tc.path)
			assert.Equal(t, tc.kind, rt.Kind)
			assert.Equal(t, tc.repo, rt.Repository)
			assert.Equal(t, tc.ref, rt.Reference)
			if tc.invalid == "" {
				assert.Nil(t, rt.Invalid)
			} else if assert.NotNil(t, rt.Invalid) {
				assert.Equal(t, tc.invalid, rt.Invalid.Code)
				assert.Less(t, rt.Invalid.Status, 500)
			}
		})
	}
}

// FuzzParseRoute: any path parses without panicking, and a route without an
// error has a valid name and a reference of the right kind.
func FuzzParseRoute(f *testing.F) {
	for _, s := range []string{"/v2/", "/v2/a/b/manifests/latest", "/v2/a/blobs/uploads/x", "/v2/a/referrers/sha256:" + strings.Repeat("a", 64),
		"/v2/x/manifests/tags/list", "/v2//blobs/", "/v2/a/blobs/sha512:" + strings.Repeat("b", 128)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		rt := parseRoute(path)
		if rt.Invalid != nil || rt.Repository == "" {
			return
		}
		if len(rt.Repository) > maxNameLength || validateName(rt.Repository) != nil {
			t.Fatalf("%q: accepted bad repository %q", path, rt.Repository)
		}
		switch rt.Kind {
		case RouteBlob, RouteReferrers:
			if rt.Digest.Validate() != nil {
				t.Fatalf("%q: accepted bad digest %q", path, rt.Reference)
			}
		case RouteManifest:
			if rt.Digest == "" && !tagPattern.MatchString(rt.Reference) {
				t.Fatalf("%q: accepted bad tag %q", path, rt.Reference)
			}
		}
		if !strings.HasSuffix(path, rt.Reference) || !strings.HasPrefix(path, "/v2/"+rt.Repository+"/") {
			t.Fatalf("%q: route %+v is not made of the path", path, rt)
		}
	})
}

// TestBadInputGetsOCIErrors: every malformed request gets a 4xx with an OCI
// error body that names no path of the machine, and the registry stays healthy.
func TestBadInputGetsOCIErrors(t *testing.T) {
	tr := openTestRegistry(t, "")
	config, _ := tr.fixture("t")
	upload := func() string {
		rec := tr.do(http.MethodPost, "/v2/t/blobs/uploads/", nil)
		require.Equal(t, http.StatusAccepted, rec.Code)
		u, _ := url.Parse(rec.Header().Get("Location"))
		return u.RequestURI()
	}
	oci := v1.MediaTypeImageManifest
	md5Config := `{"schemaVersion":2,"mediaType":"` + oci + `","config":{"mediaType":"` + v1.MediaTypeImageConfig + `","digest":"md5:zzz","size":2},"layers":[]}`
	wrongSize := image(v1.Descriptor{MediaType: config.MediaType, Digest: config.Digest, Size: 99999}, "", nil, nil)
	tests := []struct {
		name, method, target, body string
		header                     []string
		status                     int
		code                       string
	}{
		{"empty object manifest", "PUT", "/v2/t/manifests/x", `{}`, []string{"Content-Type", oci}, 400, codeManifestInvalid},
		{"null manifest", "PUT", "/v2/t/manifests/x", `null`, []string{"Content-Type", oci}, 400, codeManifestInvalid},
		{"schema version 3", "PUT", "/v2/t/manifests/x", `{"schemaVersion":3}`, []string{"Content-Type", oci}, 400, codeManifestInvalid},
		{"not JSON", "PUT", "/v2/t/manifests/x", `schemaVersion: 2`, []string{"Content-Type", oci}, 400, codeManifestInvalid},
		{"config digest md5", "PUT", "/v2/t/manifests/x", md5Config, []string{"Content-Type", oci}, 400, codeManifestInvalid},
		{"config size differs from blob", "PUT", "/v2/t/manifests/x", string(wrongSize), []string{"Content-Type", oci}, 400, codeManifestInvalid},
		{"manifest digest mismatch", "PUT", "/v2/t/manifests/sha512:" + strings.Repeat("a", 128), string(wrongSize), []string{"Content-Type", oci}, 400, codeDigestInvalid},
		{"name of 256 characters", "GET", "/v2/" + strings.Repeat("a", 256) + "/tags/list", "", nil, 400, codeNameInvalid},
		{"name of 1000 components", "GET", "/v2/" + strings.Repeat("a/", 999) + "a/tags/list", "", nil, 400, codeNameInvalid},
		{"upper-case name", "GET", "/v2/Upper/tags/list", "", nil, 400, codeNameInvalid},
		{"name with !", "GET", "/v2/a!b/tags/list", "", nil, 400, codeNameInvalid},
		{"name with $", "GET", "/v2/a$b/tags/list", "", nil, 400, codeNameInvalid},
		{"unicode name", "GET", "/v2/%C3%A9t%C3%A9/manifests/v1", "", nil, 400, codeNameInvalid},
		{"tag with !", "GET", "/v2/t/manifests/v1!", "", nil, 400, codeTagInvalid},
		{"unicode tag", "PUT", "/v2/t/manifests/%C3%A9", `{}`, []string{"Content-Type", oci}, 400, codeTagInvalid},
		{"tag of 129 characters", "GET", "/v2/t/manifests/" + strings.Repeat("t", 129), "", nil, 400, codeTagInvalid},
		{"catalog cursor not a name", "GET", "/v2/_catalog?last=%00%FF", "", nil, 400, codeNameInvalid},
		{"tags cursor not a tag", "GET", "/v2/t/tags/list?last=%00%FF", "", nil, 400, codeTagInvalid},
		{"blob digest md5", "GET", "/v2/t/blobs/md5:zzz", "", nil, 400, codeDigestInvalid},
		{"referrers of a non-digest", "GET", "/v2/t/referrers/latest", "", nil, 400, codeDigestInvalid},
		{"referrers written to", "PUT", "/v2/t/referrers/" + config.Digest.String(), "", nil, 405, codeUnsupported},
		{"referrers bad page size", "GET", "/v2/t/referrers/" + config.Digest.String() + "?n=0", "", nil, 400, codePaginationInvalid},
		{"unknown endpoint", "GET", "/v2/t/nothing/here", "", nil, 404, codeUnsupported},
		{"health by POST", "POST", "/healthz", "", nil, 405, codeUnsupported},
		{"upload id with =", "GET", "/v2/t/blobs/uploads/=", "", nil, 404, codeBlobUploadUnknown},
		{"malformed query", "GET", "/v2/t/tags/list?#%", "", nil, 400, codeUnsupported},
	}
	for _, cr := range []string{"-5-10", "0-99999999999999999999999", "bytes=abc", "5-3"} {
		tests = append(tests, struct {
			name, method, target, body string
			header                     []string
			status                     int
			code                       string
		}{"Content-Range " + cr, "PATCH", "", "hello", []string{"Content-Range", cr, "Content-Type", "application/octet-stream"}, 416, codeBlobUploadInvalid})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			target := tc.target
			if target == "" {
				target = upload()
			}
			rec := tr.do(tc.method, target, []byte(tc.body), tc.header...)
			assert.Equal(t, tc.status, rec.Code, rec.Body.String())
			assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
			var body struct {
				Errors []struct{ Code, Message string } `json:"errors"`
			}
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body), rec.Body.String())
			require.NotEmpty(t, body.Errors)
			assert.Equal(t, tc.code, body.Errors[0].Code, body.Errors[0].Message)
			assert.NotContains(t, rec.Body.String(), tr.dir, "error bodies never name the data dir")
		})
	}
	assert.Equal(t, http.StatusOK, tr.do(http.MethodGet, "/readyz", nil).Code)
	assert.Equal(t, http.StatusOK, tr.do(http.MethodGet, "/v2/t/tags/list", nil).Code)
	// Served without a redirect to the trailing slash.
	assert.Equal(t, http.StatusOK, tr.do(http.MethodGet, "/v2", nil).Code)
	assert.Equal(t, http.StatusAccepted, tr.do(http.MethodPost, "/v2/t/blobs/uploads", nil).Code)
	// The refused manifests stored nothing: only v1 is tagged.
	assert.JSONEq(t, `{"name":"t","tags":["v1"]}`, tr.do(http.MethodGet, "/v2/t/tags/list", nil).Body.String())
}

// TestServerErrorsNameNoPath: a storage failure (here: the repository's
// directory replaced by a file) gives a 500 whose body is generic.
func TestServerErrorsNameNoPath(t *testing.T) {
	tr := openTestRegistry(t, "")
	tr.fixture("t")
	rec := tr.do(http.MethodGet, "/v2/_catalog?last=t", nil) // fine
	require.Equal(t, http.StatusOK, rec.Code)
	h := withServerErrors(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeOCIError(w, http.StatusInternalServerError, codeUnknown, "filesystem: open "+tr.dir+"/docker: permission denied")
	}), slog.New(slog.DiscardHandler))
	out := httptest.NewRecorder()
	h.ServeHTTP(out, httptest.NewRequest(http.MethodGet, "/v2/t/tags/list", nil))
	assert.Equal(t, http.StatusInternalServerError, out.Code)
	assert.NotContains(t, out.Body.String(), tr.dir)
	assert.Contains(t, out.Body.String(), codeUnknown)
}

func TestSHA512(t *testing.T) {
	tr := openTestRegistry(t, "")
	layer := []byte("a layer addressed by sha512")
	cfg := []byte(`{"os":"linux"}`)
	ld := tr.pushBlob("s", layer, digest.SHA512)
	cd := tr.pushBlob("s", cfg, digest.SHA512)

	// Blobs are served and reported under their sha512.
	for _, m := range []string{http.MethodHead, http.MethodGet} {
		rec := tr.do(m, "/v2/s/blobs/"+ld.String(), nil)
		require.Equal(t, http.StatusOK, rec.Code)
		assert.Equal(t, ld.String(), rec.Header().Get("Docker-Content-Digest"))
		if m == http.MethodGet {
			assert.Equal(t, layer, rec.Body.Bytes())
		}
	}

	// A manifest referencing them, pushed and fetched by its sha512.
	man := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":%q,"digest":%q,"size":%d},"layers":[{"mediaType":%q,"digest":%q,"size":%d}]}`,
		v1.MediaTypeImageManifest, v1.MediaTypeImageConfig, cd, len(cfg), v1.MediaTypeImageLayer, ld, len(layer)))
	sum := sha512.Sum512(man)
	md := digest.NewDigestFromEncoded(digest.SHA512, hex.EncodeToString(sum[:]))
	rec := tr.putManifest("s", md.String(), man, v1.MediaTypeImageManifest)
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	assert.Equal(t, md.String(), rec.Header().Get("Docker-Content-Digest"))
	assert.Contains(t, rec.Header().Get("Location"), md.String())
	rec = tr.do(http.MethodGet, "/v2/s/manifests/"+md.String(), nil, "Accept", v1.MediaTypeImageManifest)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Equal(t, man, rec.Body.Bytes())
	assert.Equal(t, md.String(), rec.Header().Get("Docker-Content-Digest"))

	// An index may list it by its sha512.
	idx := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"manifests":[{"mediaType":%q,"digest":%q,"size":%d,"platform":{"os":"linux","architecture":"amd64"}}]}`,
		v1.MediaTypeImageIndex, v1.MediaTypeImageManifest, md, len(man)))
	rec = tr.putManifest("s", "multi", idx, v1.MediaTypeImageIndex)
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())

	// Mounting a sha512 blob into another repository keeps its address.
	rec = tr.do(http.MethodPost, "/v2/other/blobs/uploads/?mount="+ld.String()+"&from=s", nil)
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	assert.Equal(t, ld.String(), rec.Header().Get("Docker-Content-Digest"))
	assert.Equal(t, http.StatusOK, tr.do(http.MethodHead, "/v2/other/blobs/"+ld.String(), nil).Code)

	// A wrong sha512 is refused.
	rec = tr.do(http.MethodPost, "/v2/s/blobs/uploads/", nil)
	loc, _ := url.Parse(rec.Header().Get("Location"))
	q := loc.Query()
	q.Set("digest", "sha512:"+strings.Repeat("0", 128))
	rec = tr.do(http.MethodPut, loc.Path+"?"+q.Encode(), []byte("other content"), "Content-Type", "application/octet-stream")
	assert.Equal(t, http.StatusBadRequest, rec.Code)
	assert.Contains(t, rec.Body.String(), codeDigestInvalid)

	// Deleting by the sha512 deletes the manifest under both digests.
	require.Equal(t, http.StatusAccepted, tr.do(http.MethodDelete, "/v2/s/manifests/"+md.String(), nil).Code)
	for _, d := range []digest.Digest{md, digest.FromBytes(man)} {
		assert.Equal(t, http.StatusNotFound, tr.do(http.MethodHead, "/v2/s/manifests/"+d.String(), nil, "Accept", v1.MediaTypeImageManifest).Code, d)
	}
}

// TestLinkLayoutMatchesDistribution pins the link paths we write beside
// distribution's: a sha512 upload makes distribution write the very file
// layerLinkPath names.
func TestLinkLayoutMatchesDistribution(t *testing.T) {
	tr := openTestRegistry(t, "")
	d := tr.pushBlob("lay/out", []byte("layout"), digest.SHA512)
	ok, err := tr.reg.eng.linkExists(context.Background(), layerLinkPath("lay/out", d))
	require.NoError(t, err)
	assert.True(t, ok, "distribution no longer keeps blob links where layerLinkPath says")
	_, err = os.Stat(filepath.Join(tr.dir, blobDataPath(digest.FromString("layout"))))
	assert.NoError(t, err, "distribution no longer keeps blob data where blobDataPath says")
	cfg, _ := tr.fixture("lay/out")
	ok, err = tr.reg.eng.linkExists(context.Background(), manifestRevisionLinkPath("lay/out", digest.FromBytes(image(cfg, "", nil, nil))))
	require.NoError(t, err)
	assert.True(t, ok, "distribution no longer keeps manifest revisions where manifestRevisionLinkPath says")
}
