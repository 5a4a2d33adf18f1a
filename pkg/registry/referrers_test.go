package registry

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pushReferrer pushes an artifact manifest with subject; ref "" pushes by digest.
func (tr *testRegistry) pushReferrer(repo, ref string, config, subject v1.Descriptor, artifactType string, n int) v1.Descriptor {
	tr.t.Helper()
	body := image(config, artifactType, &subject, map[string]string{"n": fmt.Sprint(n)})
	d := digest.FromBytes(body)
	if ref == "" {
		ref = d.String()
	}
	rec := tr.putManifest(repo, ref, body, v1.MediaTypeImageManifest)
	require.Equal(tr.t, http.StatusCreated, rec.Code, rec.Body.String())
	require.Equal(tr.t, subject.Digest.String(), rec.Header().Get("OCI-Subject"))
	return v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: d, Size: int64(len(body)), ArtifactType: artifactType,
		Annotations: map[string]string{"n": fmt.Sprint(n)}}
}

func TestReferrers(t *testing.T) {
	tr := openTestRegistry(t, "")
	config, subject := tr.fixture("r")

	idx, _ := tr.referrers("r", subject.Digest, "")
	assert.Empty(t, idx.Manifests, "no referrers yet")
	idx, _ = tr.referrers("never/pushed", subject.Digest, "")
	assert.Empty(t, idx.Manifests, "unknown repository: an empty list")

	sig := tr.pushReferrer("r", "", config, subject, "application/vnd.example.sig", 1)
	sbom := tr.pushReferrer("r", "sbom-tag", config, subject, "application/vnd.example.sbom", 2)
	// No artifactType: the config's media type is reported.
	plain := tr.pushReferrer("r", "", config, subject, "", 3)
	plain.ArtifactType = v1.MediaTypeImageConfig

	// An index with a subject counts too.
	index := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"artifactType":"application/vnd.example.bundle","manifests":[%s],"subject":{"mediaType":%q,"digest":%q,"size":%d}}`,
		v1.MediaTypeImageIndex, fmt.Sprintf(`{"mediaType":%q,"digest":%q,"size":%d}`, subject.MediaType, subject.Digest, subject.Size),
		subject.MediaType, subject.Digest, subject.Size))
	rec := tr.putManifest("r", digest.FromBytes(index).String(), index, v1.MediaTypeImageIndex)
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	assert.Equal(t, subject.Digest.String(), rec.Header().Get("OCI-Subject"))
	bundle := v1.Descriptor{MediaType: v1.MediaTypeImageIndex, Digest: digest.FromBytes(index), Size: int64(len(index)), ArtifactType: "application/vnd.example.bundle"}

	idx, rec = tr.referrers("r", subject.Digest, "")
	assert.ElementsMatch(t, []v1.Descriptor{sig, sbom, plain, bundle}, idx.Manifests)
	assert.Equal(t, v1.MediaTypeImageIndex, idx.MediaType)
	assert.Empty(t, rec.Header().Get("OCI-Filters-Applied"))
	assert.Empty(t, rec.Header().Get("Link"))

	idx, rec = tr.referrers("r", subject.Digest, "artifactType="+url.QueryEscape("application/vnd.example.sbom"))
	assert.Equal(t, []v1.Descriptor{sbom}, idx.Manifests)
	assert.Equal(t, "artifactType", rec.Header().Get("OCI-Filters-Applied"))

	// Deleting a tag keeps the referrer; deleting the manifest removes it.
	require.Equal(t, http.StatusAccepted, tr.do(http.MethodDelete, "/v2/r/manifests/sbom-tag", nil).Code)
	idx, _ = tr.referrers("r", subject.Digest, "")
	assert.Contains(t, digests(idx.Manifests), sbom.Digest)
	require.Equal(t, http.StatusAccepted, tr.do(http.MethodDelete, "/v2/r/manifests/"+sig.Digest.String(), nil).Code)
	idx, _ = tr.referrers("r", subject.Digest, "")
	assert.ElementsMatch(t, []digest.Digest{sbom.Digest, plain.Digest, bundle.Digest}, digests(idx.Manifests))

	// HEAD gives the headers alone.
	head := tr.do(http.MethodHead, "/v2/r/referrers/"+subject.Digest.String(), nil)
	assert.Equal(t, http.StatusOK, head.Code)
	assert.Empty(t, head.Body.Bytes())
}

func TestReferrersSubjectNeedNotExist(t *testing.T) {
	tr := openTestRegistry(t, "")
	config, _ := tr.fixture("r")
	missing := v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: digest.FromString("not pushed"), Size: 10}
	ref := tr.pushReferrer("r", "", config, missing, "application/vnd.example.sig", 1)
	idx, _ := tr.referrers("r", missing.Digest, "")
	assert.Equal(t, []digest.Digest{ref.Digest}, digests(idx.Manifests))
}

func TestReferrersPagination(t *testing.T) {
	tr := openTestRegistry(t, "")
	config, subject := tr.fixture("r")
	want := map[digest.Digest]bool{}
	for i := range 7 {
		at := "application/vnd.example.a"
		if i%2 == 1 {
			at = "application/vnd.example.b"
		}
		want[tr.pushReferrer("r", "", config, subject, at, i).Digest] = true
	}
	for _, filter := range []string{"", "application/vnd.example.a"} {
		got := map[digest.Digest]bool{}
		q := url.Values{"n": {"2"}}
		if filter != "" {
			q.Set("artifactType", filter)
		}
		target := "/v2/r/referrers/" + subject.Digest.String() + "?" + q.Encode()
		pages := 0
		for target != "" {
			pages++
			require.Less(t, pages, 10, "pagination does not end")
			u, _ := url.Parse(target)
			idx, rec := tr.referrers("r", subject.Digest, u.RawQuery)
			assert.LessOrEqual(t, len(idx.Manifests), 2)
			for _, d := range idx.Manifests {
				assert.False(t, got[d.Digest], "a referrer on two pages")
				got[d.Digest] = true
				if filter != "" {
					assert.Equal(t, filter, d.ArtifactType)
				}
			}
			target = ""
			if link := rec.Header().Get("Link"); link != "" {
				require.True(t, strings.HasSuffix(link, `>; rel="next"`), link)
				target = strings.TrimSuffix(strings.TrimPrefix(link, "<"), `>; rel="next"`)
				assert.True(t, strings.HasPrefix(target, "/v2/r/referrers/"+subject.Digest.String()+"?"), target)
			}
		}
		if filter == "" {
			assert.Equal(t, want, got)
			assert.Equal(t, 4, pages)
		} else {
			assert.Len(t, got, 4)
		}
	}
}

func TestReferrersConcurrentPushesLoseNone(t *testing.T) {
	tr := openTestRegistry(t, "")
	config, subject := tr.fixture("r")
	const n = 50
	var wg sync.WaitGroup
	want := make([]digest.Digest, n)
	for i := range n {
		wg.Go(func() {
			body := image(config, "application/vnd.example.sig", &subject, map[string]string{"n": fmt.Sprint(i)})
			want[i] = digest.FromBytes(body)
			rec := tr.putManifest("r", want[i].String(), body, v1.MediaTypeImageManifest)
			assert.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
		})
	}
	wg.Wait()
	idx, _ := tr.referrers("r", subject.Digest, "")
	assert.ElementsMatch(t, want, digests(idx.Manifests))
	// And on disk: a fresh index reads the same.
	fresh := newReferrersIndex(tr.dir, tr.reg.eng, tr.reg.log)
	list, err := fresh.list(context.Background(), "r", subject.Digest)
	require.NoError(t, err)
	assert.ElementsMatch(t, want, digests(list))
}

func TestReferrersIndexRebuilt(t *testing.T) {
	dir := t.TempDir()
	tr := openTestRegistry(t, dir)
	config, subject := tr.fixture("a/b")
	r1 := tr.pushReferrer("a/b", "", config, subject, "application/vnd.example.sig", 1)
	r2 := tr.pushReferrer("a/b", "t2", config, subject, "application/vnd.example.sbom", 2)
	require.NoError(t, tr.reg.Close())
	indexDir := filepath.Join(dir, metaDir, "referrers")

	// Deleted index: rebuilt from the stored manifests at the next start.
	require.NoError(t, os.RemoveAll(indexDir))
	tr = openTestRegistry(t, dir)
	idx, _ := tr.referrers("a/b", subject.Digest, "")
	assert.ElementsMatch(t, []v1.Descriptor{r1, r2}, idx.Manifests)
	assert.FileExists(t, filepath.Join(indexDir, referrersMarker))
	require.NoError(t, tr.reg.Close())

	// Damaged file: its repository is rescanned when it is read.
	file := newReferrersIndex(dir, nil, nil).file("a/b", subject.Digest)
	require.NoError(t, os.WriteFile(file, []byte(`{"subject": "sha256:trunc`), 0o600))
	tr = openTestRegistry(t, dir)
	idx, _ = tr.referrers("a/b", subject.Digest, "")
	assert.ElementsMatch(t, []v1.Descriptor{r1, r2}, idx.Manifests)

	// A damaged file is also repaired by a push to the same subject.
	require.NoError(t, os.WriteFile(file, []byte(`not json`), 0o600))
	tr.reg.refs.cache.Clear() // as after a restart: the file is read again
	r3 := tr.pushReferrer("a/b", "", config, subject, "application/vnd.example.att", 3)
	idx, _ = tr.referrers("a/b", subject.Digest, "")
	assert.ElementsMatch(t, []v1.Descriptor{r1, r2, r3}, idx.Manifests)
}

// TestReferrersPushedBySHA512 records a referrer under the digest it was pushed by.
func TestReferrersPushedBySHA512(t *testing.T) {
	tr := openTestRegistry(t, "")
	config, subject := tr.fixture("r")
	body := image(config, "application/vnd.example.sig", &subject, nil)
	d := digest.SHA512.FromBytes(body)
	require.Equal(t, http.StatusCreated, tr.putManifest("r", d.String(), body, v1.MediaTypeImageManifest).Code)
	idx, _ := tr.referrers("r", subject.Digest, "")
	assert.Equal(t, []digest.Digest{d}, digests(idx.Manifests))
	require.Equal(t, http.StatusAccepted, tr.do(http.MethodDelete, "/v2/r/manifests/"+d.String(), nil).Code)
	idx, _ = tr.referrers("r", subject.Digest, "")
	assert.Empty(t, idx.Manifests)
}

// TestReferrersPageFitsManifestLimit: referrers with large annotations are
// split over pages that each stay under the manifest size clients accept.
func TestReferrersPageFitsManifestLimit(t *testing.T) {
	tr := openTestRegistry(t, "")
	config, subject := tr.fixture("r")
	big := strings.Repeat("x", 1<<20)
	for i := range 6 {
		body := image(config, "application/vnd.example.sbom", &subject, map[string]string{"n": fmt.Sprint(i), "big": big})
		require.Equal(t, http.StatusCreated, tr.putManifest("r", digest.FromBytes(body).String(), body, v1.MediaTypeImageManifest).Code)
	}
	idx, rec := tr.referrers("r", subject.Digest, "")
	assert.LessOrEqual(t, rec.Body.Len(), maxManifestSize)
	assert.Less(t, len(idx.Manifests), 6)
	assert.NotEmpty(t, rec.Header().Get("Link"))
}
