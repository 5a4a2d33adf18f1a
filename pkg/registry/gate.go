package registry

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/semaphore"
)

// writeGate keeps commits and the garbage collector's sweep apart. A commit
// (an upload's final PUT, a mount, a manifest PUT or DELETE, a tag or blob
// DELETE, an upload start) holds one unit while it changes storage; a sweep
// holds all of them. The semaphore is FIFO, so a waiting sweep holds up
// commits that arrive after it (they wait for the sweep only) and is not
// starved by a steady stream of them. Reads never touch it.
type writeGate struct{ sem *semaphore.Weighted }

// gateUnits bounds concurrent commits; no server gets near it.
const gateUnits = 1 << 30

func newWriteGate() *writeGate { return &writeGate{sem: semaphore.NewWeighted(gateUnits)} }

func (g *writeGate) enter(ctx context.Context) error { return g.sem.Acquire(ctx, 1) }
func (g *writeGate) leave()                          { g.sem.Release(1) }

// close waits for the commits in progress and keeps new ones out until open.
func (g *writeGate) close(ctx context.Context) error { return g.sem.Acquire(ctx, gateUnits) }
func (g *writeGate) open()                           { g.sem.Release(gateUnits) }

// touchKind says what a request did to something the collector may be about
// to delete.
type touchKind uint8

const (
	touchRead   touchKind = iota + 1 // a successful-looking HEAD or GET of a blob or manifest by digest
	touchCommit                      // a commit linked or named the digest in the repository
	touchTag                         // a manifest was pushed under the tag
	touchRepo                        // something was written to the repository
)

// touch is one entry of a run's touch log.
type touch struct {
	kind   touchKind
	repo   string
	digest digest.Digest
	tag    string
}

type repoDigest struct {
	repo   string
	digest digest.Digest
}

type repoTag struct{ repo, tag string }

// doomedSet is what a sweep is deleting, published before it deletes
// anything so that reads of it answer 404 instead of succeeding and then
// being relied on.
type doomedSet struct {
	links     map[repoDigest]bool // blob links, under the digest of their path
	manifests map[repoDigest]bool // manifest revisions, canonical and aliases
	tags      map[repoTag]bool
}

// gcTracker is what requests tell the collector while a run is open.
type gcTracker struct {
	// active mirrors open, so reads skip the lock when no run is open
	// (nearly always); a read that finds it false happened before the run.
	active  atomic.Bool
	mu      sync.Mutex
	open    bool
	touches []touch
	doomed  *doomedSet
}

// setOpen opens (or closes) the touch log, dropping what it held.
func (t *gcTracker) setOpen(open bool) {
	t.mu.Lock()
	t.open, t.touches, t.doomed = open, nil, nil
	t.active.Store(open)
	t.mu.Unlock()
}

func (t *gcTracker) record(tc ...touch) {
	if !t.active.Load() {
		return
	}
	t.mu.Lock()
	if t.open {
		t.touches = append(t.touches, tc...)
	}
	t.mu.Unlock()
}

func (t *gcTracker) isOpen() bool { return t.active.Load() }

// read notes a blob or manifest read and reports whether it addresses
// something a sweep is deleting (then it must answer 404).
func (t *gcTracker) read(rt Route) (doomed bool) {
	if !t.active.Load() {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if d := t.doomed; d != nil {
		switch {
		case rt.Kind == RouteBlob && d.links[repoDigest{rt.Repository, rt.Digest}]:
			return true
		case rt.Kind == RouteManifest && rt.Digest != "" && d.manifests[repoDigest{rt.Repository, rt.Digest}]:
			return true
		case rt.Kind == RouteManifest && rt.Digest == "" && d.tags[repoTag{rt.Repository, rt.Reference}]:
			return true
		}
	}
	if t.open && rt.Digest != "" {
		t.touches = append(t.touches, touch{kind: touchRead, repo: rt.Repository, digest: rt.Digest})
	}
	return false
}

// withGCGate makes commits pass the write gate and tells the tracker about
// reads and commits. A commit with a body enters the gate only once the body
// has been read to its end, so a slow upload does not hold up a sweep (nor,
// behind the sweep, everyone else's commits).
func (c *collector) withGCGate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt := routeOf(r)
		switch {
		case (rt.Kind == RouteBlob || rt.Kind == RouteManifest) && (r.Method == http.MethodGet || r.Method == http.MethodHead):
			if c.track.read(rt) {
				if rt.Kind == RouteBlob {
					writeOCIError(w, http.StatusNotFound, codeBlobUnknown, "blob unknown to registry")
				} else {
					writeOCIError(w, http.StatusNotFound, codeManifestUnknown, "manifest unknown to registry")
				}
				return
			}
			next.ServeHTTP(w, r)
		case isCommit(r, rt):
			c.serveCommit(w, r, rt, next)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

func isCommit(r *http.Request, rt Route) bool {
	switch rt.Kind {
	case RouteUpload:
		return r.Method == http.MethodPut || r.Method == http.MethodPost
	case RouteManifest:
		return r.Method == http.MethodPut || r.Method == http.MethodDelete
	case RouteBlob:
		return r.Method == http.MethodDelete
	}
	return false
}

func (c *collector) serveCommit(w http.ResponseWriter, r *http.Request, rt Route, next http.Handler) {
	var mu sync.Mutex
	entered := false
	enter := func() error {
		mu.Lock()
		defer mu.Unlock()
		if entered {
			return nil
		}
		if err := c.gate.enter(r.Context()); err != nil {
			return err
		}
		entered = true
		c.track.record(commitTouches(r, rt)...)
		return nil
	}
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		if entered {
			c.gate.leave()
		}
	}()
	if r.Method == http.MethodPut && r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
		r.Body = &gatedBody{ReadCloser: r.Body, enter: enter}
	} else if err := enter(); err != nil {
		// Only a request whose client went away gets here.
		writeOCIError(w, http.StatusServiceUnavailable, codeUnknown, "request cancelled while waiting for garbage collection")
		return
	}
	next.ServeHTTP(w, r)
}

// commitTouches are what a commit does, as far as its request tells; a
// manifest PUT's contents are told by its manifest event.
func commitTouches(r *http.Request, rt Route) []touch {
	ts := []touch{{kind: touchRepo, repo: rt.Repository}}
	q := r.URL.Query()
	switch {
	case rt.Kind == RouteUpload && r.Method == http.MethodPut:
		if d, err := digest.Parse(q.Get("digest")); err == nil {
			ts = append(ts, touch{kind: touchCommit, repo: rt.Repository, digest: d})
		}
	case rt.Kind == RouteUpload && r.Method == http.MethodPost:
		if d, err := digest.Parse(q.Get("mount")); err == nil {
			ts = append(ts, touch{kind: touchCommit, repo: rt.Repository, digest: d})
		}
	}
	return ts
}

// gatedBody enters the gate when the body ends: the handler commits right
// after reading it all.
type gatedBody struct {
	io.ReadCloser
	enter func() error
}

func (b *gatedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) {
		if gerr := b.enter(); gerr != nil {
			return n, gerr
		}
	}
	return n, err
}

// onManifest is the collector's manifest listener: a pushed manifest keeps
// what it names (and its tag) from a sweep decided without it.
func (c *collector) onManifest(_ context.Context, ev ManifestEvent) error {
	if ev.Action != ManifestPushed || !c.track.isOpen() {
		return nil
	}
	ts := []touch{
		{kind: touchCommit, repo: ev.Repository, digest: ev.Digest},
		{kind: touchCommit, repo: ev.Repository, digest: digest.Canonical.FromBytes(ev.Payload)},
	}
	if ev.Tag != "" {
		ts = append(ts, touch{kind: touchTag, repo: ev.Repository, tag: ev.Tag})
	}
	if doc, e := parseManifest(ev.Payload); e == nil {
		for _, d := range doc.references() {
			ts = append(ts, touch{kind: touchCommit, repo: ev.Repository, digest: d.Digest})
		}
	}
	c.track.record(ts...)
	return nil
}
