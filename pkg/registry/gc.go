package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/idpbuilder/idpbuilder/pkg/registryapi"
)

// Online garbage collection.
//
// A run has two phases. The mark reads the whole store without any lock:
// every repository's tags, manifest revisions and blob links, every blob in
// the blob store, and every manifest's content. The sweep then decides, with
// the write gate closed (commits wait, reads do not), what nothing reaches
// any more, and moves it into a trash directory (a rename each, to keep the
// gate's closing short); the trash is emptied once the gate is open again.
//
// What is kept: every tag's manifest and everything reachable from it (an
// index's manifests, a manifest's config and layers, the subject of a kept
// referrer, and the referrers of every kept manifest, transitively); without
// Untagged every manifest that is not a referrer as well; anything younger
// than the grace period; and anything a request touched after the run began.
//
// Why nothing in use is lost:
//   - The touch log opens with the gate closed, so every commit is either
//     wholly before the run (the mark sees what it wrote) or noted in the log
//     before it finishes. A noted digest, and everything it reaches, is kept.
//   - A manifest PUT holds the gate while distribution checks that what it
//     names exists, so it either completes before the sweep (and is noted) or
//     after it (and is refused with MANIFEST_BLOB_UNKNOWN, never stored
//     dangling).
//   - A blob or manifest read is noted before it is served. The sweep
//     publishes what it will delete before deleting it; from then on reads of
//     it answer 404. A read noted after the sweep's decision but before the
//     publication makes the sweep decide again. So a run never deletes what
//     a client saw answer 200 while it ran; one that saw 404 uploads it again.
//   - Content younger than the grace period is never deleted: it protects a
//     push whose blobs were uploaded before the run began and whose manifest
//     comes after it. With no grace such a push fails cleanly (its manifest is
//     refused) and succeeds when retried.
//
// The mark aborts on any read error: unreadable is never taken for absent.

// ErrGCRunning is returned when a garbage collection is asked for while one
// is running.
var ErrGCRunning = errors.New("a garbage collection is already running")

// gcError is a failed run: Public is safe to show any caller (no machine
// paths); the wrapped error, for the log, has everything.
type gcError struct {
	Public string
	Err    error
}

func (e *gcError) Error() string { return e.Public + ": " + e.Err.Error() }
func (e *gcError) Unwrap() error { return e.Err }

// collector runs garbage collection over the engine's storage.
type collector struct {
	eng     *engine
	dataDir string
	log     *slog.Logger
	grace   time.Duration
	gate    *writeGate
	track   gcTracker
	history *gcHistory
	// tell is the manifest layer's: deletions reach the same listeners (the
	// referrers index, and any other) as an API DELETE.
	tell func(context.Context, ManifestEvent) error

	// afterRun, when set, runs after every run that was not a dry run, even a
	// failed one (it may have deleted some): the quota re-reads usage.
	afterRun func(context.Context) error

	running atomic.Bool
	// hook, when set (tests), is called between the phases: "marked" after
	// the mark, "published" once the sweep has published its decision and
	// before it deletes (the write gate is closed then).
	hook func(stage string)
}

func newCollector(eng *engine, opts Options, log *slog.Logger, history *gcHistory) *collector {
	return &collector{eng: eng, dataDir: opts.DataDir, log: log, grace: opts.GCGrace, gate: newWriteGate(), history: history}
}

// gcHistory keeps the last run and the listeners; it outlives Close/Open.
type gcHistory struct {
	mu        sync.Mutex
	last      *registryapi.GCResult
	listeners []func(registryapi.GCResult)
}

func (h *gcHistory) done(res registryapi.GCResult) {
	h.mu.Lock()
	if !res.DryRun {
		r := res
		h.last = &r
	}
	ls := slices.Clone(h.listeners)
	h.mu.Unlock()
	for _, fn := range ls {
		fn(res)
	}
}

// GC runs one garbage collection (see the notes at the top of gc.go). It returns
// ErrGCRunning when another run is not finished. A failed run's result says
// how far it got.
func (r *Registry) GC(ctx context.Context, req registryapi.GCRequest) (registryapi.GCResult, error) {
	r.mu.Lock()
	c := r.gc
	r.mu.Unlock()
	if c == nil {
		return registryapi.GCResult{}, errNotOpen
	}
	if err := req.Validate(); err != nil {
		return registryapi.GCResult{}, err
	}
	return c.run(ctx, req)
}

// LastGC is the result of the last garbage collection that was not a dry
// run (failed ones included); nil before the first.
func (r *Registry) LastGC() *registryapi.GCResult {
	r.gcHistory.mu.Lock()
	defer r.gcHistory.mu.Unlock()
	if r.gcHistory.last == nil {
		return nil
	}
	res := *r.gcHistory.last
	return &res
}

// OnGC registers fn to be told after every garbage collection run, dry runs
// (DryRun set) and failed runs (Error set) included. fn runs on the
// collecting goroutine after the run: keep it short.
func (r *Registry) OnGC(fn func(registryapi.GCResult)) {
	r.gcHistory.mu.Lock()
	defer r.gcHistory.mu.Unlock()
	r.gcHistory.listeners = append(r.gcHistory.listeners, fn)
}

func (c *collector) run(ctx context.Context, req registryapi.GCRequest) (registryapi.GCResult, error) {
	if !c.running.CompareAndSwap(false, true) {
		return registryapi.GCResult{}, ErrGCRunning
	}
	defer c.running.Store(false)
	grace := c.grace
	if req.Grace != nil {
		grace = time.Duration(*req.Grace)
	}
	res := registryapi.GCResult{
		DryRun: req.DryRun, Untagged: req.Untagged, Grace: registryapi.Duration(grace),
		KeepTags: req.KeepTags, Repo: req.Repo, StartedAt: time.Now().UTC(),
		Tags: []registryapi.GCTag{}, Manifests: []registryapi.GCManifest{}, Layers: []registryapi.GCLayer{},
		Blobs: []registryapi.GCBlob{}, Repositories: []string{},
	}
	err := c.collect(ctx, req, grace, &res)
	res.DurationMS = time.Since(res.StartedAt).Milliseconds()
	if err != nil {
		var ge *gcError
		if !errors.As(err, &ge) {
			ge = &gcError{Public: "garbage collection stopped", Err: err}
		}
		res.Error = ge.Public + " (the registry's log has the details)"
		c.log.Error("garbage collection failed", "err", err, "dry_run", req.DryRun,
			"deleted_manifests", len(res.Manifests), "deleted_blobs", len(res.Blobs))
		err = ge
	} else {
		c.log.Info("garbage collection finished", "dry_run", req.DryRun, "untagged", req.Untagged, "grace", grace,
			"tags", len(res.Tags), "manifests", len(res.Manifests), "layers", len(res.Layers), "blobs", len(res.Blobs),
			"repositories", len(res.Repositories), "bytes_freed", res.BytesFreed,
			"duration", time.Duration(res.DurationMS)*time.Millisecond, "sweep", time.Duration(res.SweepMS)*time.Millisecond)
	}
	if !req.DryRun && c.afterRun != nil {
		if aerr := c.afterRun(context.WithoutCancel(ctx)); aerr != nil {
			c.log.Error("reading storage usage after garbage collection", "err", aerr)
		}
	}
	c.history.done(res)
	return res, err
}

func (c *collector) collect(ctx context.Context, req registryapi.GCRequest, grace time.Duration, res *registryapi.GCResult) error {
	// Open the touch log with no commit in progress.
	if err := c.gate.close(ctx); err != nil {
		return err
	}
	c.track.setOpen(true)
	start := time.Now()
	c.gate.open()
	defer c.track.setOpen(false)

	// Trash a crashed run left behind.
	if err := c.emptyTrash(gcTrashRoot); err != nil {
		return &gcError{Public: "garbage collection could not empty the trash of an earlier run", Err: err}
	}
	snap, err := c.mark(ctx)
	res.MarkMS = time.Since(start).Milliseconds()
	if err != nil {
		return err
	}
	if c.hook != nil {
		c.hook("marked")
	}
	opts := planOptions{untagged: req.Untagged, keepTags: req.KeepTags, repoGlob: req.Repo, cutoff: start.Add(-grace)}

	// Decide once before the gate closes, and read what deleting that would
	// need (payloads, sizes): the sweep's own decision, with more touches,
	// can only delete less.
	c.track.mu.Lock()
	ts := slices.Clone(c.track.touches)
	c.track.mu.Unlock()
	extra := map[digest.Digest]bool{}
	if err := c.resolveCommits(ctx, snap, ts, extra); err != nil {
		return err
	}
	pre := makePlan(snap, ts, extra, opts)
	facts, err := c.prepare(ctx, pre, snap)
	if err != nil {
		return err
	}
	if req.DryRun {
		c.report(pre, facts, res)
		return nil
	}

	trash, err := c.sweep(ctx, snap, ts, extra, opts, facts, res)
	// Moved aside under the gate, deleted after it: commits wait for
	// renames only.
	if rerr := c.emptyTrash(trash); rerr != nil && err == nil {
		err = &gcError{Public: "garbage collection deleted what it reported but could not empty its trash", Err: rerr}
	}
	return err
}

// sweep decides with the write gate closed, publishes the decision and
// moves what it deletes into a trash directory; it returns that directory.
func (c *collector) sweep(ctx context.Context, snap *snapshot, ts []touch, extra map[digest.Digest]bool, opts planOptions, facts *planFacts, res *registryapi.GCResult) (string, error) {
	if err := c.gate.close(ctx); err != nil {
		return "", err
	}
	sweepStart := time.Now()
	defer func() {
		res.SweepMS = time.Since(sweepStart).Milliseconds()
		// Forget the decision before commits resume: what they write
		// anew must not read as deleted.
		c.track.mu.Lock()
		c.track.doomed = nil
		c.track.mu.Unlock()
		c.gate.open()
	}()
	// A cancelled caller no longer stops it half way.
	ctx = context.WithoutCancel(ctx)
	c.track.mu.Lock()
	all := slices.Clone(c.track.touches)
	c.track.mu.Unlock()
	if err := c.resolveCommits(ctx, snap, all[len(ts):], extra); err != nil {
		return "", err
	}
	ts = all
	// Decide, then publish the decision unless a read noted meanwhile hit
	// something in it; then decide again with that read. Only reads arrive
	// now (the gate is closed), and they need no storage access to resolve.
	var p *gcPlan
	for attempt := 0; ; attempt++ {
		p = makePlan(snap, ts, extra, opts)
		c.track.mu.Lock()
		newer := c.track.touches[len(ts):]
		if attempt >= 3 && p.hitBy(newer) {
			// Reads keep hitting it: decide holding the lock (reads wait
			// these few milliseconds, once).
			ts = slices.Clone(c.track.touches)
			p = makePlan(snap, ts, extra, opts)
			newer = nil
		}
		if !p.hitBy(newer) {
			c.track.doomed = p.doomed
			c.track.mu.Unlock()
			break
		}
		ts = slices.Clone(c.track.touches)
		c.track.mu.Unlock()
	}
	if c.hook != nil {
		c.hook("published")
	}
	return c.execute(ctx, p, facts, res)
}

// references are the descriptors a manifest or index names: config, layers,
// manifests and subject.
func (m *manifestDoc) references() []v1.Descriptor {
	var out []v1.Descriptor
	if m.Config != nil {
		out = append(out, *m.Config)
	}
	out = append(out, m.Layers...)
	out = append(out, m.Manifests...)
	if m.Subject != nil {
		out = append(out, *m.Subject)
	}
	return out
}

// ---- mark ----

// snapshot is what the mark read.
type snapshot struct {
	repos map[string]*repoState
	blobs map[digest.Digest]fileState
	docs  map[digest.Digest]*manifestInfo // by canonical digest
}

type fileState struct {
	size  int64
	mtime time.Time
}

type linkState struct {
	target digest.Digest
	mtime  time.Time
}

type repoState struct {
	layers    map[digest.Digest]linkState // blob links, by the digest of their path
	revisions map[digest.Digest]linkState // manifest revision links, likewise
	tags      map[string]linkState        // tag -> its current link
	tagIndex  map[digest.Digest][]string  // revision digest -> tags whose history names it
	uploads   bool                        // an upload is in progress
}

type manifestInfo struct {
	doc  *manifestDoc // nil when the content is missing
	size int64
}

func newRepoState() *repoState {
	return &repoState{layers: map[digest.Digest]linkState{}, revisions: map[digest.Digest]linkState{},
		tags: map[string]linkState{}, tagIndex: map[digest.Digest][]string{}}
}

const blobsRoot = storageRoot + "/blobs"

func (c *collector) mark(ctx context.Context) (*snapshot, error) {
	s := &snapshot{repos: map[string]*repoState{}, blobs: map[digest.Digest]fileState{}, docs: map[digest.Digest]*manifestInfo{}}
	if err := c.walkRepositories(ctx, repositoriesRoot, "", s); err != nil {
		return nil, err
	}
	if err := c.walkBlobs(ctx, s); err != nil {
		return nil, err
	}
	for _, name := range sortedKeys(s.repos) {
		for _, l := range s.repos[name].revisions {
			if _, done := s.docs[l.target]; done {
				continue
			}
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			info, err := c.readManifest(ctx, name, l.target)
			if err != nil {
				return nil, err
			}
			s.docs[l.target] = info
		}
	}
	return s, nil
}

// list lists a directory of the storage; a missing one is empty (it was
// deleted since its parent was listed, or never made).
func (c *collector) list(ctx context.Context, dir string) ([]string, error) {
	children, err := c.eng.driver.List(ctx, dir)
	if isPathNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, &gcError{Public: "garbage collection stopped: cannot read the storage", Err: fmt.Errorf("list %s: %w", dir, err)}
	}
	slices.Sort(children)
	return children, nil
}

// readLink reads a link file and its modification time; ok is false when it
// is not there.
func (c *collector) readLink(ctx context.Context, p string) (linkState, bool, error) {
	fi, err := c.eng.driver.Stat(ctx, p)
	if isPathNotFound(err) {
		return linkState{}, false, nil
	}
	if err != nil {
		return linkState{}, false, &gcError{Public: "garbage collection stopped: cannot read the storage", Err: fmt.Errorf("stat %s: %w", p, err)}
	}
	b, err := c.eng.driver.GetContent(ctx, p)
	if isPathNotFound(err) {
		return linkState{}, false, nil
	}
	if err != nil {
		return linkState{}, false, &gcError{Public: "garbage collection stopped: cannot read the storage", Err: fmt.Errorf("read %s: %w", p, err)}
	}
	// Links are replaced atomically (written beside, then renamed), so a
	// malformed one is damage, not a write in progress.
	d, err := digest.Parse(strings.TrimSpace(string(b)))
	if err != nil {
		return linkState{}, false, &gcError{Public: "garbage collection stopped: a damaged link in the storage", Err: fmt.Errorf("link %s: %w", p, err)}
	}
	return linkState{target: d, mtime: fi.ModTime()}, true, nil
}

// walkRepositories finds the repositories under dir (name is dir's repository
// name so far) and reads each one's links.
func (c *collector) walkRepositories(ctx context.Context, dir, name string, s *snapshot) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	children, err := c.list(ctx, dir)
	if err != nil {
		return err
	}
	repo := func() *repoState {
		rs := s.repos[name]
		if rs == nil {
			rs = newRepoState()
			s.repos[name] = rs
		}
		return rs
	}
	for _, child := range children {
		base := path.Base(child)
		switch {
		case name != "" && base == "_layers":
			if err := c.walkLinks(ctx, child, repo().layers); err != nil {
				return err
			}
		case name != "" && base == "_manifests":
			rs := repo()
			if err := c.walkLinks(ctx, child+"/revisions", rs.revisions); err != nil {
				return err
			}
			if err := c.walkTags(ctx, child+"/tags", rs); err != nil {
				return err
			}
		case name != "" && base == "_uploads":
			uploads, err := c.list(ctx, child)
			if err != nil {
				return err
			}
			repo().uploads = len(uploads) > 0
		case nameComponent.MatchString(base):
			fi, err := c.eng.driver.Stat(ctx, child)
			if isPathNotFound(err) {
				continue
			}
			if err != nil {
				return &gcError{Public: "garbage collection stopped: cannot read the storage", Err: err}
			}
			if !fi.IsDir() {
				continue
			}
			sub := base
			if name != "" {
				sub = name + "/" + base
			}
			if err := c.walkRepositories(ctx, child, sub, s); err != nil {
				return err
			}
		}
	}
	return nil
}

// walkLinks reads <dir>/<algorithm>/<encoded>/link files into links.
func (c *collector) walkLinks(ctx context.Context, dir string, links map[digest.Digest]linkState) error {
	algs, err := c.list(ctx, dir)
	if err != nil {
		return err
	}
	for _, algDir := range algs {
		encs, err := c.list(ctx, algDir)
		if err != nil {
			return err
		}
		for _, encDir := range encs {
			d := digest.NewDigestFromEncoded(digest.Algorithm(path.Base(algDir)), path.Base(encDir))
			if d.Validate() != nil {
				continue // not a link directory of distribution's
			}
			l, ok, err := c.readLink(ctx, encDir+"/link")
			if err != nil {
				return err
			}
			if ok {
				links[d] = l
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// walkTags reads each tag's current link and the revisions its history names.
func (c *collector) walkTags(ctx context.Context, dir string, rs *repoState) error {
	tags, err := c.list(ctx, dir)
	if err != nil {
		return err
	}
	for _, tagDir := range tags {
		tag := path.Base(tagDir)
		if !tagPattern.MatchString(tag) {
			continue
		}
		l, ok, err := c.readLink(ctx, tagDir+"/current/link")
		if err != nil {
			return err
		}
		if ok {
			rs.tags[tag] = l
		}
		history := map[digest.Digest]linkState{}
		if err := c.walkLinks(ctx, tagDir+"/index", history); err != nil {
			return err
		}
		for d := range history {
			rs.tagIndex[d] = append(rs.tagIndex[d], tag)
		}
	}
	return nil
}

// walkBlobs stats every blob's data file.
func (c *collector) walkBlobs(ctx context.Context, s *snapshot) error {
	algs, err := c.list(ctx, blobsRoot)
	if err != nil {
		return err
	}
	for _, algDir := range algs {
		prefixes, err := c.list(ctx, algDir)
		if err != nil {
			return err
		}
		for _, prefixDir := range prefixes {
			if err := ctx.Err(); err != nil {
				return err
			}
			encs, err := c.list(ctx, prefixDir)
			if err != nil {
				return err
			}
			for _, encDir := range encs {
				d := digest.NewDigestFromEncoded(digest.Algorithm(path.Base(algDir)), path.Base(encDir))
				if d.Validate() != nil {
					continue
				}
				fi, err := c.eng.driver.Stat(ctx, encDir+"/data")
				if isPathNotFound(err) {
					continue
				}
				if err != nil {
					return &gcError{Public: "garbage collection stopped: cannot read the storage", Err: err}
				}
				s.blobs[d] = fileState{size: fi.Size(), mtime: fi.ModTime()}
			}
		}
	}
	return nil
}

// readManifest reads and parses a stored manifest. Missing content is
// reported as such (the revision link dangles); content that cannot be read
// or parsed stops the run, since what it references is unknown.
func (c *collector) readManifest(ctx context.Context, repo string, dgst digest.Digest) (*manifestInfo, error) {
	b, err := c.eng.driver.GetContent(ctx, blobDataPath(dgst))
	if isPathNotFound(err) {
		c.log.Warn("garbage collection: a manifest revision names content that is not stored", "repository", repo, "digest", dgst)
		return &manifestInfo{}, nil
	}
	if err != nil {
		return nil, &gcError{Public: "garbage collection stopped: cannot read manifest " + dgst.String() + " of " + repo, Err: err}
	}
	if dgst.Validate() == nil && dgst.Algorithm().Available() && dgst.Algorithm().FromBytes(b) != dgst {
		return nil, &gcError{Public: "garbage collection stopped: the stored content of manifest " + dgst.String() + " of " + repo + " does not match its digest",
			Err: errors.New("digest mismatch")}
	}
	doc, e := parseManifest(b)
	if e != nil {
		return nil, &gcError{Public: "garbage collection stopped: manifest " + dgst.String() + " of " + repo + " cannot be parsed, so what it references is unknown", Err: e}
	}
	return &manifestInfo{doc: doc, size: int64(len(b))}, nil
}

// resolveCommits finds what commits noted by the touch log point at when
// the mark did not see their links: the content they keep.
func (c *collector) resolveCommits(ctx context.Context, s *snapshot, ts []touch, extra map[digest.Digest]bool) error {
	for _, t := range ts {
		if t.kind != touchCommit && t.kind != touchRead {
			continue
		}
		extra[t.digest] = true
		rs := s.repos[t.repo]
		if rs != nil {
			if _, ok := rs.layers[t.digest]; ok {
				continue
			}
			if _, ok := rs.revisions[t.digest]; ok {
				continue
			}
		}
		if t.kind == touchRead {
			continue // a read creates nothing; what it read was walked or is absent
		}
		for _, p := range []string{layerLinkPath(t.repo, t.digest), manifestRevisionLinkPath(t.repo, t.digest)} {
			l, ok, err := c.readLink(ctx, p)
			if err != nil {
				return err
			}
			if ok {
				extra[l.target] = true
			}
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
