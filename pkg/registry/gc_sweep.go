package registry

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"

	"github.com/opencontainers/go-digest"

	"github.com/idpbuilder/idpbuilder/pkg/registryapi"
)

// planReport is a plan as the result lists it, item by item in plan order.
type planReport struct {
	tags      []registryapi.GCTag
	manifests []registryapi.GCManifest
	layers    []registryapi.GCLayer
	blobs     []registryapi.GCBlob
	blobBytes []int64 // what deleting each blob frees on disk
}

// describe lists a plan for the result. It stats each blob's directory: a
// blob frees its content and the directory it is kept in.
func (c *collector) describe(p *gcPlan, s *snapshot) planReport {
	var r planReport
	for _, t := range p.tags {
		r.tags = append(r.tags, registryapi.GCTag{Repository: t.repo, Tag: t.tag, Digest: t.target.String()})
	}
	for _, m := range p.manifests {
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
		r.manifests = append(r.manifests, e)
	}
	for _, l := range p.layers {
		r.layers = append(r.layers, registryapi.GCLayer{Repository: l.repo, Digest: l.path.String()})
	}
	for _, b := range p.blobs {
		size := s.blobs[b].size
		r.blobs = append(r.blobs, registryapi.GCBlob{Digest: b.String(), Size: size})
		freed := size
		if fi, err := os.Lstat(filepath.Join(c.dataDir, filepath.FromSlash(blobDir(b)))); err == nil {
			freed += fi.Size()
		}
		r.blobBytes = append(r.blobBytes, freed)
	}
	return r
}

// report fills a dry run's result: everything the plan would delete.
func (c *collector) report(p *gcPlan, s *snapshot, res *registryapi.GCResult) {
	r := c.describe(p, s)
	res.Tags = append(res.Tags, r.tags...)
	res.Manifests = append(res.Manifests, r.manifests...)
	res.Layers = append(res.Layers, r.layers...)
	res.Blobs = append(res.Blobs, r.blobs...)
	res.Repositories = append(res.Repositories, p.repos...)
	for _, n := range r.blobBytes {
		res.BytesFreed += n
	}
}

// execute deletes what the plan says, in its order, adding each item to the
// result once it is gone. Stopping half way leaves a consistent store: a
// manifest goes before the blobs it names, a link before its content.
func (c *collector) execute(ctx context.Context, s *snapshot, p *gcPlan, res *registryapi.GCResult) error {
	r := c.describe(p, s)
	storageErr := func(what string, err error) error {
		return &gcError{Public: "garbage collection stopped while deleting " + what, Err: err}
	}
	for i, t := range p.tags {
		repo, err := c.eng.repository(ctx, t.repo)
		if err == nil {
			err = repo.Tags(ctx).Untag(ctx, t.tag)
		}
		if err != nil && !isPathNotFound(err) {
			return storageErr("tag "+t.repo+":"+t.tag, err)
		}
		if err := c.tell(ctx, ManifestEvent{Action: TagDeleted, Repository: t.repo, Tag: t.tag}); err != nil {
			return storageErr("tag "+t.repo+":"+t.tag, err)
		}
		res.Tags = append(res.Tags, r.tags[i])
	}
	for i, m := range p.manifests {
		if err := c.deleteManifest(ctx, m); err != nil {
			return storageErr("manifest "+m.canonical.String()+" of "+m.repo, err)
		}
		res.Manifests = append(res.Manifests, r.manifests[i])
	}
	for i, l := range p.layers {
		if err := c.remove(ctx, linkDir(l.repo, "_layers", l.path)); err != nil {
			return storageErr("blob link "+l.path.String()+" of "+l.repo, err)
		}
		res.Layers = append(res.Layers, r.layers[i])
	}
	for i, b := range p.blobs {
		if err := c.remove(ctx, blobDir(b)); err != nil {
			return storageErr("blob "+b.String(), err)
		}
		res.Blobs = append(res.Blobs, r.blobs[i])
		res.BytesFreed += r.blobBytes[i]
	}
	for _, name := range p.repos {
		if err := c.removeRepository(ctx, name); err != nil {
			return storageErr("repository "+name, err)
		}
		res.Repositories = append(res.Repositories, name)
	}
	return nil
}

// deleteManifest removes every revision link of a manifest and the tag
// history entries naming it, then tells the manifest listeners, as an API
// DELETE does.
func (c *collector) deleteManifest(ctx context.Context, m plannedManifest) error {
	payload, err := c.eng.driver.GetContent(ctx, blobDataPath(m.canonical))
	if err != nil && !isPathNotFound(err) {
		return err
	}
	for _, h := range m.history {
		if err := c.remove(ctx, repositoriesRoot+"/"+m.repo+"/_manifests/tags/"+h.tag+"/index/"+string(h.path.Algorithm())+"/"+h.path.Encoded()); err != nil {
			return err
		}
	}
	for _, pth := range m.paths {
		if err := c.remove(ctx, linkDir(m.repo, "_manifests/revisions", pth)); err != nil {
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
