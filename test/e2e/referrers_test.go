//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// TestReferrersOras: oras attaches an SBOM to demo/app:v1 and discovers it
// through the referrers API. The registry answers the push with OCI-Subject, so
// oras writes no fallback tag (the repository keeps the one tag v1) and never
// reads one; GET /v2/demo/app/referrers/<digest> serves the SBOM's descriptor in
// an image index, filtered by artifactType when asked.
func TestReferrersOras(t *testing.T) {
	requireTool(t, "oras")
	srv := startServer(t, "")
	env := toolEnv(t)
	src := t.TempDir()
	for file, content := range map[string]string{"app.txt": "app v1\n", "sbom.json": `{"spdxVersion":"SPDX-2.3"}` + "\n"} {
		if err := os.WriteFile(filepath.Join(src, file), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ref := srv.Addr + "/demo/app:v1"
	runTool(t, env, src, "oras", "push", "--plain-http", "--artifact-type", "application/vnd.example.app", ref, "app.txt:text/plain")
	subject := srv.manifestDigest(t, "demo/app", "v1")

	out := runTool(t, env, src, "oras", "attach", "--plain-http", "--artifact-type", "application/vnd.example.sbom", "--format", "json", ref, "sbom.json")
	var sbom v1.Descriptor
	if err := json.Unmarshal([]byte(out), &sbom); err != nil {
		t.Fatalf("oras attach output: %v\n%s", err, out)
	}
	if sbom.ArtifactType != "application/vnd.example.sbom" || sbom.MediaType != types.OCIManifestSchema1 {
		t.Fatalf("oras attach pushed %+v", sbom)
	}

	out = runTool(t, env, "", "oras", "discover", "--plain-http", "--format", "json", ref)
	var tree struct {
		Digest    string          `json:"digest"`
		Referrers []v1.Descriptor `json:"referrers"`
	}
	if err := json.Unmarshal([]byte(out), &tree); err != nil {
		t.Fatalf("oras discover output: %v\n%s", err, out)
	}
	if tree.Digest != subject {
		t.Fatalf("oras discover: subject %s, want %s:\n%s", tree.Digest, subject, out)
	}
	wantReferrers(t, tree.Referrers, sbom)
	assertTags(t, srv, "demo/app", "v1")
	requireNativeReferrers(t, srv, "demo/app", subject)

	// The API itself, on a restarted registry (the log check above stopped it).
	srv = startServer(t, srv.DataDir)
	header, idx := listReferrers(t, srv, "demo/app", subject, "")
	if header.Get("OCI-Filters-Applied") != "" {
		t.Fatalf("OCI-Filters-Applied %q on an unfiltered list", header.Get("OCI-Filters-Applied"))
	}
	wantReferrers(t, idx.Manifests, sbom)
	header, idx = listReferrers(t, srv, "demo/app", subject, "artifactType=application/vnd.example.sbom")
	if got := header.Get("OCI-Filters-Applied"); got != "artifactType" {
		t.Fatalf("OCI-Filters-Applied = %q, want artifactType", got)
	}
	wantReferrers(t, idx.Manifests, sbom)
	header, idx = listReferrers(t, srv, "demo/app", subject, "artifactType=application/vnd.example.other")
	if got := header.Get("OCI-Filters-Applied"); got != "artifactType" {
		t.Fatalf("filter on another type: OCI-Filters-Applied = %q, want artifactType", got)
	}
	wantReferrers(t, idx.Manifests)
}

// TestReferrersRegctl: regctl puts a signature with --subject and lists it with
// `regctl artifact list`, through the referrers API and without a fallback tag.
func TestReferrersRegctl(t *testing.T) {
	requireTool(t, "regctl")
	srv := startServer(t, "")
	env := toolEnv(t)
	src := t.TempDir()
	for file, content := range map[string]string{"app.txt": "app v1\n", "sig.bin": "signature of v1\n"} {
		if err := os.WriteFile(filepath.Join(src, file), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ref := srv.Addr + "/demo/app:v1"
	runTool(t, env, "", "regctl", "registry", "set", "--tls", "disabled", srv.Addr)
	runTool(t, env, src, "regctl", "artifact", "put", "--artifact-type", "application/vnd.example.app", "--file", "app.txt", ref)
	subject := srv.manifestDigest(t, "demo/app", "v1")

	out := runTool(t, env, src, "regctl", "artifact", "put", "--subject", ref, "--artifact-type", "application/vnd.example.sig",
		"--file", "sig.bin", "--format", "{{json .Manifest.GetDescriptor}}")
	var sig v1.Descriptor
	if err := json.Unmarshal([]byte(out), &sig); err != nil {
		t.Fatalf("regctl artifact put output: %v\n%s", err, out)
	}
	sig.ArtifactType = "application/vnd.example.sig" // the manifest's, which regctl's descriptor leaves out

	out = runTool(t, env, "", "regctl", "artifact", "list", ref, "--format", "{{json .Descriptors}}")
	var listed []v1.Descriptor
	if err := json.Unmarshal([]byte(out), &listed); err != nil {
		t.Fatalf("regctl artifact list output: %v\n%s", err, out)
	}
	wantReferrers(t, listed, sig)
	assertTags(t, srv, "demo/app", "v1")
	requireNativeReferrers(t, srv, "demo/app", subject)
}

// TestReferrersArtifactIndex: an image index can be a referrer too. Two artifact
// indexes with v1 as subject are listed with the index media type and their
// artifactType; deleting one by digest takes it off the list, while deleting the
// tag of the other leaves it listed (the manifest is still there).
func TestReferrersArtifactIndex(t *testing.T) {
	srv := startServer(t, "")
	repo, err := name.NewRepository(srv.Addr+"/demo/app", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	app := multiArchIndex(t)
	if err := remote.WriteIndex(repo.Tag("v1"), app); err != nil {
		t.Fatalf("push v1: %v", err)
	}
	appDigest, _ := app.Digest()
	appSize, _ := app.Size()
	subject := v1.Descriptor{MediaType: types.OCIImageIndex, Digest: appDigest, Size: appSize}
	if got := srv.manifestDigest(t, "demo/app", "v1"); got != appDigest.String() {
		t.Fatalf("v1 is %s, want %s", got, appDigest)
	}

	// The artifact indexes' children, pushed by digest only.
	kids := multiArchIndex(t)
	km, err := kids.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range km.Manifests {
		img, err := kids.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(repo.Digest(d.Digest.String()), img); err != nil {
			t.Fatalf("push child %s: %v", d.Digest, err)
		}
	}
	bundle := putReferrer(t, srv, "demo/app", "", "application/vnd.example.bundle", subject, km.Manifests...)
	provenance := putReferrer(t, srv, "demo/app", "provenance", "application/vnd.example.provenance", subject, km.Manifests[0])

	_, idx := listReferrers(t, srv, "demo/app", appDigest.String(), "")
	wantReferrers(t, idx.Manifests, bundle, provenance)
	assertTags(t, srv, "demo/app", "provenance", "v1")

	manifestURL := "http://" + srv.Addr + "/v2/demo/app/manifests/"
	if resp, body := registryDo(t, http.MethodDelete, manifestURL+bundle.Digest.String(), "", nil); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("DELETE %s: %s %s", bundle.Digest, resp.Status, body)
	}
	if resp, _ := registryDo(t, http.MethodGet, manifestURL+bundle.Digest.String(), "", nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET deleted %s: %s, want 404", bundle.Digest, resp.Status)
	}
	_, idx = listReferrers(t, srv, "demo/app", appDigest.String(), "")
	wantReferrers(t, idx.Manifests, provenance)

	if resp, body := registryDo(t, http.MethodDelete, manifestURL+"provenance", "", nil); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("DELETE tag provenance: %s %s", resp.Status, body)
	}
	assertTags(t, srv, "demo/app", "v1")
	if resp, _ := registryDo(t, http.MethodGet, manifestURL+provenance.Digest.String(), "", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s after deleting its tag: %s, want 200", provenance.Digest, resp.Status)
	}
	_, idx = listReferrers(t, srv, "demo/app", appDigest.String(), "")
	wantReferrers(t, idx.Manifests, provenance)
}

// registryDo sends one plain-HTTP request and returns the response with its body read.
func registryDo(t testing.TB, method, url, contentType string, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp, b
}

// assertTags checks the repository's tag list (GET /v2/<repo>/tags/list) is want:
// a referrer pushed by a client that fell back to the tag schema would add an
// <alg>-<hex> tag.
func assertTags(t testing.TB, srv *server, repo string, want ...string) {
	t.Helper()
	resp, body := registryDo(t, http.MethodGet, "http://"+srv.Addr+"/v2/"+repo+"/tags/list", "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("tags/list: %s %s", resp.Status, body)
	}
	var list struct {
		Tags []string `json:"tags"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatalf("tags/list: %v\n%s", err, body)
	}
	if !slices.Equal(list.Tags, want) {
		t.Fatalf("tags of %s = %q, want %q", repo, list.Tags, want)
	}
}

// listReferrers GETs the referrers of subject (query: an optional query string)
// and checks it is an OCI image index served as one.
func listReferrers(t testing.TB, srv *server, repo, subject, query string) (http.Header, v1.IndexManifest) {
	t.Helper()
	url := "http://" + srv.Addr + "/v2/" + repo + "/referrers/" + subject
	if query != "" {
		url += "?" + query
	}
	resp, body := registryDo(t, http.MethodGet, url, "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %s", url, resp.Status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != string(types.OCIImageIndex) {
		t.Fatalf("GET %s: Content-Type %q, want %s", url, ct, types.OCIImageIndex)
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(body, &idx); err != nil {
		t.Fatalf("GET %s: %v\n%s", url, err, body)
	}
	if idx.SchemaVersion != 2 || idx.MediaType != types.OCIImageIndex || idx.Manifests == nil {
		t.Fatalf("GET %s: not an image index with a manifests list:\n%s", url, body)
	}
	return resp.Header, idx
}

// wantReferrers checks list is exactly want: each digest once, with its media
// type, size and artifactType.
func wantReferrers(t testing.TB, list []v1.Descriptor, want ...v1.Descriptor) {
	t.Helper()
	if len(list) != len(want) {
		t.Fatalf("%d referrers, want %d: %+v", len(list), len(want), list)
	}
	for _, w := range want {
		i := slices.IndexFunc(list, func(d v1.Descriptor) bool { return d.Digest == w.Digest })
		if i < 0 {
			t.Fatalf("referrer %s not in %+v", w.Digest, list)
		}
		if got := list[i]; got.MediaType != w.MediaType || got.Size != w.Size || got.ArtifactType != w.ArtifactType {
			t.Fatalf("referrer %s listed as %s (%d bytes, artifactType %q), want %s (%d bytes, artifactType %q)",
				w.Digest, got.MediaType, got.Size, got.ArtifactType, w.MediaType, w.Size, w.ArtifactType)
		}
	}
}

// requireNativeReferrers stops srv, so that its access log is complete, and
// checks in it that a client asked the referrers API about subject and that no
// request touched the subject's fallback tag (<alg>-<hex>, the tag schema
// clients use against registries without the API).
func requireNativeReferrers(t testing.TB, srv *server, repo, subject string) {
	t.Helper()
	srv.Stop(t)
	log := srv.stderr.String()
	api := "method=GET path=/v2/" + repo + "/referrers/" + subject + " route=referrers status=200"
	if !strings.Contains(log, api) {
		t.Errorf("no %q in the access log:\n%s", api, lastLines(log, 30))
	}
	fallback := "/manifests/" + strings.Replace(subject, ":", "-", 1)
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, fallback) {
			t.Errorf("a client used the fallback tag: %s", l)
		}
	}
}

// putReferrer PUTs an OCI image index of children with artifactType and
// subject, by tag (or by digest when tag is empty), and checks the answer a
// registry with the referrers API gives: 201, the digest, and OCI-Subject naming
// the subject (what tells clients not to maintain a fallback tag). It returns the
// index's descriptor.
func putReferrer(t testing.TB, srv *server, repo, tag, artifactType string, subject v1.Descriptor, children ...v1.Descriptor) v1.Descriptor {
	t.Helper()
	raw, err := json.Marshal(v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		ArtifactType:  artifactType,
		Manifests:     children,
		Subject:       &subject,
	})
	if err != nil {
		t.Fatal(err)
	}
	dgst, size, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	ref := tag
	if ref == "" {
		ref = dgst.String()
	}
	resp, body := registryDo(t, http.MethodPut, "http://"+srv.Addr+"/v2/"+repo+"/manifests/"+ref, string(types.OCIImageIndex), raw)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT %s:%s: %s %s", repo, ref, resp.Status, body)
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != dgst.String() {
		t.Fatalf("PUT %s:%s: Docker-Content-Digest %q, want %s", repo, ref, got, dgst)
	}
	if got := resp.Header.Get("OCI-Subject"); got != subject.Digest.String() {
		t.Fatalf("PUT %s:%s: OCI-Subject %q, want %s", repo, ref, got, subject.Digest)
	}
	return v1.Descriptor{MediaType: types.OCIImageIndex, Digest: dgst, Size: size, ArtifactType: artifactType}
}
