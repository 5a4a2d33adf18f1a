package registryclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Source is something to push: exactly one of Image and Index is set.
type Source struct {
	Image v1.Image
	Index v1.ImageIndex
	// Name is the source's own name, if it has one (a Docker image's repo:tag),
	// used as the default destination.
	Name string
}

// Digest is the digest the pushed manifest will have.
func (s Source) Digest() (v1.Hash, error) {
	if s.Index != nil {
		return s.Index.Digest()
	}
	return s.Image.Digest()
}

// FromTarball reads an image tarball (docker save / crane pull format). When the
// tarball holds several images, tag picks one (empty: the only one).
func FromTarball(path, tag string) (Source, error) {
	var t *name.Tag
	if tag != "" {
		nt, err := name.NewTag(tag)
		if err != nil {
			return Source{}, fmt.Errorf("image %q in %s: %w", tag, path, err)
		}
		t = &nt
	}
	img, err := tarball.ImageFromPath(path, t)
	if err != nil {
		return Source{}, fmt.Errorf("read image tarball %s: %w", path, err)
	}
	src := Source{Image: img, Name: tag}
	if tag == "" {
		if m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(path) }); err == nil && len(m) == 1 && len(m[0].RepoTags) == 1 {
			src.Name = m[0].RepoTags[0]
		}
	}
	return src, nil
}

// FromLayout reads an OCI image layout directory. Its index.json must name exactly
// one image or index. platform ("os/arch[/variant]"), if set, selects one image
// from a multi-platform index; otherwise the index is pushed whole.
func FromLayout(dir, platform string) (Source, error) {
	root, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return Source{}, fmt.Errorf("read OCI layout %s: %w", dir, err)
	}
	rm, err := root.IndexManifest()
	if err != nil {
		return Source{}, fmt.Errorf("read OCI layout %s: %w", dir, err)
	}
	if len(rm.Manifests) != 1 {
		return Source{}, fmt.Errorf("OCI layout %s has %d entries in index.json; push needs exactly one", dir, len(rm.Manifests))
	}
	d := rm.Manifests[0]
	src := Source{Name: d.Annotations["org.opencontainers.image.ref.name"]}
	switch {
	case d.MediaType.IsIndex():
		idx, err := root.ImageIndex(d.Digest)
		if err != nil {
			return Source{}, err
		}
		if platform == "" {
			src.Index = idx
			return src, nil
		}
		img, err := selectPlatform(idx, platform)
		if err != nil {
			return Source{}, fmt.Errorf("OCI layout %s: %w", dir, err)
		}
		src.Image = img
		return src, nil
	case d.MediaType.IsImage():
		img, err := root.Image(d.Digest)
		if err != nil {
			return Source{}, err
		}
		src.Image = img
		return src, nil
	}
	return Source{}, fmt.Errorf("OCI layout %s: entry has media type %q, not an image or index", dir, d.MediaType)
}

func selectPlatform(idx v1.ImageIndex, platform string) (v1.Image, error) {
	want, err := v1.ParsePlatform(platform)
	if err != nil {
		return nil, fmt.Errorf("platform %q: %w", platform, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var have []string
	for _, m := range im.Manifests {
		if m.Platform == nil {
			continue
		}
		have = append(have, platformString(m.Platform))
		if m.Platform.Satisfies(*want) {
			return idx.Image(m.Digest)
		}
	}
	return nil, fmt.Errorf("no image for platform %s (the index has: %s)", platform, strings.Join(have, ", "))
}

// Destination resolves where to push: dest may be a full reference, or a
// repository path (with tag or digest) inside this registry; empty dest uses the
// source's own name.
func (c *Client) Destination(dest string, src Source) (name.Reference, error) {
	if dest == "" {
		if src.Name == "" {
			return nil, errors.New("the source has no name of its own: give a destination, e.g. myapp:v1")
		}
		dest = src.Name
		// A Docker name like docker.io/library/app:v1 becomes app:v1 here.
		if r, err := name.ParseReference(dest); err == nil {
			repo := r.Context().RepositoryStr()
			repo = strings.TrimPrefix(repo, "library/")
			dest = repo + ":" + r.Identifier()
		}
	}
	if !strings.HasPrefix(dest, c.Registry+"/") {
		dest = c.Registry + "/" + dest
	}
	ref, err := name.ParseReference(dest, c.nameOpts()...)
	if err != nil {
		return nil, fmt.Errorf("destination %q: %w", dest, err)
	}
	return ref, nil
}

// Push writes src to ref. Progress updates go to progress when it is not nil
// (go-containerregistry closes it when the push ends).
func (c *Client) Push(ctx context.Context, src Source, ref name.Reference, progress chan v1.Update) error {
	opts := c.remoteOpts(ctx)
	if progress != nil {
		opts = append(opts, remote.WithProgress(progress))
	}
	var err error
	if src.Index != nil {
		err = remote.WriteIndex(ref, src.Index, opts...)
	} else {
		err = remote.Write(ref, src.Image, opts...)
	}
	if err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	return nil
}

// Delete deletes the manifest ref names (by digest: a tag alone is not deleted
// by an OCI registry); its blobs stay until garbage collection.
func (c *Client) Delete(ctx context.Context, ref name.Reference) error {
	if err := remote.Delete(ref, c.remoteOpts(ctx)...); err != nil {
		return fmt.Errorf("delete %s: %w", ref, err)
	}
	return nil
}

// IsLayout reports whether path is an OCI image layout directory.
func IsLayout(path string) bool {
	_, err := os.Stat(filepath.Join(path, "oci-layout"))
	return err == nil
}
