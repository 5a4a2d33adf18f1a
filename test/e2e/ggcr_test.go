//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// recorder notes every request's method, URL and status so a test can tell a
// cross-repository mount (POST ...?mount=) from a re-upload.
type recorder struct {
	mu   sync.Mutex
	reqs []string
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err == nil {
		r.mu.Lock()
		r.reqs = append(r.reqs, req.Method+" "+req.URL.RequestURI()+" "+resp.Status)
		r.mu.Unlock()
	}
	return resp, err
}

func (r *recorder) matching(substr ...string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, l := range r.reqs {
		ok := true
		for _, s := range substr {
			ok = ok && strings.Contains(l, s)
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}

// TestCraneFlows drives the registry through go-containerregistry's crane package,
// the library behind the crane CLI: push, tags, catalog, cross-repo mount and copy,
// delete.
func TestCraneFlows(t *testing.T) {
	srv := startServer(t, "")
	rec := &recorder{}
	opts := []crane.Option{crane.Insecure, crane.WithTransport(rec), crane.WithContext(context.Background())}
	reg := srv.Addr

	img, err := random.Image(4096, 3)
	if err != nil {
		t.Fatal(err)
	}
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{"v1", "v2", "latest"} {
		if err := crane.Push(img, reg+"/team/app:"+tag, opts...); err != nil {
			t.Fatalf("push %s: %v", tag, err)
		}
	}
	if got, err := crane.Digest(reg+"/team/app:v1", opts...); err != nil || got != want.String() {
		t.Fatalf("digest = %s, %v; want %s", got, err, want)
	}

	tags, err := crane.ListTags(reg+"/team/app", opts...)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(tags)
	if !slices.Equal(tags, []string{"latest", "v1", "v2"}) {
		t.Fatalf("tags = %v", tags)
	}

	// Copy to another repository on the same registry: layers must be mounted,
	// not uploaded again.
	if err := crane.Copy(reg+"/team/app:v1", reg+"/other/app:copied", opts...); err != nil {
		t.Fatalf("copy: %v", err)
	}
	mounts := rec.matching("POST /v2/other/app/blobs/uploads/?", "mount=", "from=team%2Fapp", "201")
	if len(mounts) == 0 {
		t.Fatalf("no cross-repository mount during copy; requests:\n%s", strings.Join(rec.matching("/v2/other/app/"), "\n"))
	}
	if patches := rec.matching("PATCH /v2/other/app/blobs/uploads/"); len(patches) != 0 {
		t.Fatalf("copy re-uploaded blobs instead of mounting: %v", patches)
	}
	if got, err := crane.Digest(reg+"/other/app:copied", opts...); err != nil || got != want.String() {
		t.Fatalf("copied digest = %s, %v; want %s", got, err, want)
	}

	repos, err := crane.Catalog(reg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(repos)
	if !slices.Equal(repos, []string{"other/app", "team/app"}) {
		t.Fatalf("catalog = %v", repos)
	}

	// Delete by digest removes the manifest (and every tag pointing at it) from that repo only.
	if err := crane.Delete(reg+"/team/app@"+want.String(), opts...); err != nil {
		t.Fatalf("delete: %v", err)
	}
	_, err = crane.Head(reg+"/team/app:v1", opts...)
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != http.StatusNotFound {
		t.Fatalf("after delete, HEAD team/app:v1 = %v; want 404", err)
	}
	if got, err := crane.Digest(reg+"/other/app:copied", opts...); err != nil || got != want.String() {
		t.Fatalf("other repo affected by delete: %s, %v", got, err)
	}
}

// TestMultiArchIndexRoundTrip pushes an OCI image index with linux/amd64 and
// linux/arm64 images and reads back every manifest byte for byte.
func TestMultiArchIndexRoundTrip(t *testing.T) {
	srv := startServer(t, "")
	idx := multiArchIndex(t)
	ref, err := name.ParseReference(srv.Addr+"/multi/arch:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatalf("write index: %v", err)
	}

	wantRaw, _ := idx.RawManifest()
	wantDigest, _ := idx.Digest()
	desc, err := remote.Get(ref)
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest != wantDigest || !bytes.Equal(desc.Manifest, wantRaw) {
		t.Fatalf("index not byte-identical: digest %s want %s", desc.Digest, wantDigest)
	}
	if desc.MediaType != types.OCIImageIndex {
		t.Fatalf("media type = %s", desc.MediaType)
	}
	im, _ := idx.IndexManifest()
	for _, d := range im.Manifests {
		child, err := remote.Get(ref.Context().Digest(d.Digest.String()))
		if err != nil {
			t.Fatalf("get %s: %v", d.Platform, err)
		}
		sub, _ := idx.Image(d.Digest)
		subRaw, _ := sub.RawManifest()
		if !bytes.Equal(child.Manifest, subRaw) {
			t.Fatalf("%s manifest not byte-identical", d.Platform)
		}
		// Every layer is there and verifies against its digest.
		pulled, err := child.Image()
		if err != nil {
			t.Fatal(err)
		}
		layers, _ := pulled.Layers()
		for _, l := range layers {
			rc, err := l.Compressed()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := drain(rc); err != nil {
				t.Fatalf("%s layer: %v", d.Platform, err)
			}
			rc.Close()
		}
	}
	// Selecting a platform through the index works like docker pull --platform does.
	arm, err := remote.Image(ref, remote.WithPlatform(v1.Platform{OS: "linux", Architecture: "arm64"}))
	if err != nil {
		t.Fatal(err)
	}
	armDigest, _ := arm.Digest()
	if armDigest != im.Manifests[1].Digest {
		t.Fatalf("arm64 resolved to %s, want %s", armDigest, im.Manifests[1].Digest)
	}
}

// multiArchIndex builds an OCI index of two random images for linux/amd64 and linux/arm64.
func multiArchIndex(t testing.TB) v1.ImageIndex {
	t.Helper()
	var adds []mutate.IndexAddendum
	for _, arch := range []string{"amd64", "arm64"} {
		// An all-OCI image (manifest, config and layer media types), as buildx makes them.
		img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
		for range 2 {
			l, err := random.Layer(2048, types.OCILayer)
			if err != nil {
				t.Fatal(err)
			}
			if img, err = mutate.AppendLayers(img, l); err != nil {
				t.Fatal(err)
			}
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture = "linux", arch
		img, err = mutate.ConfigFile(img, cf)
		if err != nil {
			t.Fatal(err)
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
	return withoutArtifactTypes(t, idx)
}

// writeLayout writes idx as the one entry of a new OCI layout and returns its directory.
func writeLayout(t testing.TB, idx v1.ImageIndex, opts ...layout.Option) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendIndex(idx, opts...); err != nil {
		t.Fatal(err)
	}
	return dir
}

// multiArchLayout is an OCI layout holding a new two-platform index.
func multiArchLayout(t testing.TB) (string, v1.ImageIndex) {
	t.Helper()
	idx := multiArchIndex(t)
	return writeLayout(t, idx), idx
}

// plainIndex is an index whose raw manifest we wrote ourselves.
type plainIndex struct {
	base v1.ImageIndex
	raw  []byte
}

func (p plainIndex) MediaType() (types.MediaType, error)         { return p.base.MediaType() }
func (p plainIndex) Image(h v1.Hash) (v1.Image, error)           { return p.base.Image(h) }
func (p plainIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) { return p.base.ImageIndex(h) }

func (p plainIndex) RawManifest() ([]byte, error) { return p.raw, nil }
func (p plainIndex) IndexManifest() (*v1.IndexManifest, error) {
	return v1.ParseIndexManifest(bytes.NewReader(p.raw))
}
func (p plainIndex) Digest() (v1.Hash, error) {
	h, _, err := v1.SHA256(bytes.NewReader(p.raw))
	return h, err
}
func (p plainIndex) Size() (int64, error) { return int64(len(p.raw)), nil }

// withoutArtifactTypes drops the artifactType go-containerregistry copies from each
// image's config media type into the index descriptors. Images built by docker
// buildx carry none, and skopeo 1.9 refuses to copy an index that has them without
// rewriting it (which would change the digest we check).
func withoutArtifactTypes(t testing.TB, idx v1.ImageIndex) v1.ImageIndex {
	t.Helper()
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	im = im.DeepCopy()
	for i := range im.Manifests {
		im.Manifests[i].ArtifactType = ""
	}
	raw, err := json.Marshal(im)
	if err != nil {
		t.Fatal(err)
	}
	return plainIndex{base: idx, raw: raw}
}
