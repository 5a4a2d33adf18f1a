package registry

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/idpbuilder/idpbuilder/pkg/registryapi"
)

// planFacts is what the sweep needs to know about what it may delete, read
// before the write gate closes: manifest payloads (for the manifest
// events) and, per blob, its size and what deleting it frees on disk.
type planFacts struct {
	payloads  map[digest.Digest][]byte
	blobSize  map[digest.Digest]int64
	blobBytes map[digest.Digest]int64
}

// prepare reads the facts for everything p deletes.
func (c *collector) prepare(ctx context.Context, p *gcPlan, s *snapshot) (*planFacts, error) {
	f := &planFacts{payloads: map[digest.Digest][]byte{}, blobSize: map[digest.Digest]int64{}, blobBytes: map[digest.Digest]int64{}}
	for _, m := range p.manifests {
		if _, ok := f.payloads[m.canonical]; ok {
			continue
		}
		b, err := c.eng.driver.GetContent(ctx, blobDataPath(m.canonical))
		if err != nil && !isPathNotFound(err) {
			return nil, &gcError{Public: "garbage collection stopped: cannot read manifest " + m.canonical.String() + " of " + m.repo, Err: err}
		}
		f.payloads[m.canonical] = b
	}
	for _, b := range p.blobs {
		size := s.blobs[b].size
		f.blobSize[b] = size
		// A blob frees its content and the directory it is kept in.
		freed := size
		if fi, err := os.Lstat(filepath.Join(c.dataDir, filepath.FromSlash(blobDir(b)))); err == nil {
			freed += fi.Size()
		}
		f.blobBytes[b] = freed
	}
	return f, nil
}

// Result entries, one per planned item.

func tagEntry(t plannedTag) registryapi.GCTag {
	return registryapi.GCTag{Repository: t.repo, Tag: t.tag, Digest: t.target.String()}
}

func manifestEntry(m plannedManifest) registryapi.GCManifest {
	e := registryapi.GCManifest{Repository: m.repo, Digest: m.canonical.String()}
	for _, pth := range m.paths {
		if pth != m.canonical {
			e.Aliases = append(e.Aliases, pth.String())
		}
	}
	if m.info != nil {
		e.Size = m.info.size
		if doc := m.info.doc; doc != nil {
			e.MediaType = doc.MediaType
			if doc.Subject != nil {
				e.Subject = doc.Subject.Digest.String()
			}
		}
	}
	return e
}

func layerEntry(l plannedLink) registryapi.GCLayer {
	return registryapi.GCLayer{Repository: l.repo, Digest: l.path.String()}
}

// report fills a dry run's result: everything the plan would delete.
func (c *collector) report(p *gcPlan, f *planFacts, res *registryapi.GCResult) {
	for _, t := range p.tags {
		res.Tags = append(res.Tags, tagEntry(t))
	}
	for _, m := range p.manifests {
		res.Manifests = append(res.Manifests, manifestEntry(m))
	}
	for _, l := range p.layers {
		res.Layers = append(res.Layers, layerEntry(l))
	}
	for _, b := range p.blobs {
		res.Blobs = append(res.Blobs, registryapi.GCBlob{Digest: b.String(), Size: f.blobSize[b]})
		res.BytesFreed += f.blobBytes[b]
	}
	res.Repositories = append(res.Repositories, p.repos...)
}

// gcTrashRoot holds what sweeps moved aside, until they delete it.
const gcTrashRoot = "/" + metaDir + "/gc-trash"

// execute deletes what the plan says, in its order, adding each item to the
// result once it is gone, and returns the trash directory the deleted
// links and blobs were moved to (a rename each: commits wait for no more).
// Stopping half way leaves a consistent store: a manifest goes before the
// blobs it names, a link before its content.
func (c *collector) execute(ctx context.Context, p *gcPlan, f *planFacts, res *registryapi.GCResult) (string, error) {
	trash := fmt.Sprintf("%s/%d", gcTrashRoot, time.Now().UnixNano())
	n := 0
	discard := func(pth string) error {
		n++
		err := c.eng.driver.Move(ctx, pth, fmt.Sprintf("%s/%d", trash, n))
		if err != nil && !isPathNotFound(err) {
			return fmt.Errorf("move %s aside: %w", pth, err)
		}
		return nil
	}
	storageErr := func(what string, err error) error {
		return &gcError{Public: "garbage collection stopped while deleting " + what, Err: err}
	}
	for _, t := range p.tags {
		repo, err := c.eng.repository(ctx, t.repo)
		if err == nil {
			err = repo.Tags(ctx).Untag(ctx, t.tag)
		}
		if err != nil && !isPathNotFound(err) {
			return trash, storageErr("tag "+t.repo+":"+t.tag, err)
		}
		if err := c.tell(ctx, ManifestEvent{Action: TagDeleted, Repository: t.repo, Tag: t.tag}); err != nil {
			return trash, storageErr("tag "+t.repo+":"+t.tag, err)
		}
		res.Tags = append(res.Tags, tagEntry(t))
	}
	for _, m := range p.manifests {
		if err := c.deleteManifest(ctx, m, f.payloads[m.canonical], discard); err != nil {
			return trash, storageErr("manifest "+m.canonical.String()+" of "+m.repo, err)
		}
		res.Manifests = append(res.Manifests, manifestEntry(m))
	}
	for _, l := range p.layers {
		if err := discard(linkDir(l.repo, "_layers", l.path)); err != nil {
			return trash, storageErr("blob link "+l.path.String()+" of "+l.repo, err)
		}
		res.Layers = append(res.Layers, layerEntry(l))
	}
	for _, b := range p.blobs {
		if err := discard(blobDir(b)); err != nil {
			return trash, storageErr("blob "+b.String(), err)
		}
		res.Blobs = append(res.Blobs, registryapi.GCBlob{Digest: b.String(), Size: f.blobSize[b]})
		res.BytesFreed += f.blobBytes[b]
	}
	for _, name := range p.repos {
		if err := c.removeRepository(ctx, name); err != nil {
			return trash, storageErr("repository "+name, err)
		}
		res.Repositories = append(res.Repositories, name)
	}
	return trash, nil
}

// emptyTrash deletes a sweep's trash directory ("" is none).
func (c *collector) emptyTrash(dir string) error {
	if dir == "" {
		return nil
	}
	return c.remove(context.Background(), dir)
}

// deleteManifest removes every revision link of a manifest and the tag
// history entries naming it, then tells the manifest listeners, as an API
// DELETE does.
func (c *collector) deleteManifest(ctx context.Context, m plannedManifest, payload []byte, discard func(string) error) error {
	for _, h := range m.history {
		if err := discard(repositoriesRoot + "/" + m.repo + "/_manifests/tags/" + h.tag + "/index/" + string(h.path.Algorithm()) + "/" + h.path.Encoded()); err != nil {
			return err
		}
	}
	for _, pth := range m.paths {
		if err := discard(linkDir(m.repo, "_manifests/revisions", pth)); err != nil {
			return err
		}
	}
	ev := ManifestEvent{Action: ManifestDeleted, Repository: m.repo, Digest: m.canonical, Payload: payload}
	if doc, e := parseManifest(payload); e == nil {
		ev = ev.withDoc(doc)
	}
	return c.tell(ctx, ev)
}

// removeRepository removes a repository that has nothing left, and the
// directories above it that it leaves empty (a repository nested in it has
// its own directory there, so those stay).
func (c *collector) removeRepository(ctx context.Context, name string) error {
	dir := repositoriesRoot + "/" + name
	for _, sub := range []string{"_manifests", "_layers", "_uploads"} {
		if err := c.remove(ctx, dir+"/"+sub); err != nil {
			return err
		}
	}
	for ; dir != repositoriesRoot; dir = path.Dir(dir) {
		children, err := c.eng.driver.List(ctx, dir)
		if isPathNotFound(err) {
			continue
		}
		if err != nil {
			return err
		}
		if len(children) > 0 {
			return nil
		}
		if err := c.remove(ctx, dir); err != nil {
			return err
		}
	}
	return nil
}

// remove deletes a path of the storage with everything under it; a missing
// one is already removed.
func (c *collector) remove(ctx context.Context, p string) error {
	if err := c.eng.driver.Delete(ctx, p); err != nil && !isPathNotFound(err) {
		return fmt.Errorf("delete %s: %w", p, err)
	}
	return nil
}

// linkDir is the directory of a link in a repository: kind is "_layers" or
// "_manifests/revisions".
func linkDir(repo, kind string, d digest.Digest) string {
	return fmt.Sprintf("%s/%s/%s/%s/%s", repositoriesRoot, repo, kind, d.Algorithm(), d.Encoded())
}

// blobDir is the directory a blob's data is kept in.
func blobDir(d digest.Digest) string { return path.Dir(blobDataPath(d)) }

var errNotOpen = errors.New("registry is not open")
