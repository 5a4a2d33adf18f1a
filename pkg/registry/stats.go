package registry

import (
	"cmp"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/idpbuilder/idpbuilder/pkg/registryapi"
)

// Usage statistics are recomputed from storage in the background, a short
// while after writes stop (statsQuiet), and at least every statsMaxDelay
// while writes go on. A request never walks the storage: it reads the last
// result, or, asked for fresh numbers, waits for the refresh already due.
//
// Why a debounced walk and not counters kept from manifest events: the
// numbers are then exact by construction, whatever changed the storage (GC,
// quota clean-ups, a restart, a manifest deleted behind a tag), with no
// feature having to report precise deltas; and the walk is cheap because
// manifests are immutable, so each is parsed once and remembered by digest.
// BenchmarkStatsRefresh measures it.
const (
	defaultStatsQuiet    = 500 * time.Millisecond
	defaultStatsMaxDelay = 5 * time.Second
	// largestRepositories is how many repositories the stats list by size.
	largestRepositories = 10
	// freshWaitLimit bounds how long a request for fresh numbers waits.
	freshWaitLimit = 10 * time.Second
)

// usage is one computation of what the storage holds.
type usage struct {
	at                                   time.Time
	repositories, tags, manifests, blobs int
	uniqueBytes, logicalBytes            int64
	repos                                []registryapi.RepositoryStats // largest first
}

// manifestRefs is what one stored manifest takes: itself and the blobs and
// manifests it references, by digest with their sizes.
type manifestRefs map[digest.Digest]int64

// statsKeeper keeps the usage statistics current.
type statsKeeper struct {
	dataDir         string
	log             *slog.Logger
	quiet, maxDelay time.Duration

	snap  atomic.Pointer[usage]
	kick  chan struct{}
	walks atomic.Int64 // storage walks done, for tests

	mu      sync.Mutex
	wanted  uint64        // bumped by every write
	done    uint64        // the value of wanted the last refresh started from
	updated chan struct{} // closed (and replaced) when a refresh ends

	// Caches by digest (content never changes), kept for what the last walk
	// saw; only the refresh loop touches them.
	sizes map[digest.Digest]int64
	refs  map[digest.Digest]manifestRefs

	stop    context.CancelFunc
	stopped chan struct{}
}

func newStatsKeeper(dataDir string, log *slog.Logger, quiet time.Duration) *statsKeeper {
	if quiet <= 0 {
		quiet = defaultStatsQuiet
	}
	return &statsKeeper{
		dataDir: dataDir, log: log, quiet: quiet, maxDelay: max(defaultStatsMaxDelay, quiet),
		kick: make(chan struct{}, 1), wanted: 1, updated: make(chan struct{}),
		sizes: map[digest.Digest]int64{}, refs: map[digest.Digest]manifestRefs{}, stopped: make(chan struct{}),
	}
}

// start runs the refresh loop until close; the first refresh starts at once.
func (s *statsKeeper) start(ctx context.Context) {
	ctx, s.stop = context.WithCancel(context.WithoutCancel(ctx))
	go s.run(ctx)
}

func (s *statsKeeper) close() {
	if s.stop != nil {
		s.stop()
		<-s.stopped
	}
}

// invalidate says the storage changed: a refresh follows once writes pause.
func (s *statsKeeper) invalidate() {
	s.mu.Lock()
	s.wanted++
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *statsKeeper) run(ctx context.Context) {
	defer close(s.stopped)
	quiet := time.NewTimer(time.Hour)
	deadline := time.NewTimer(time.Hour)
	defer quiet.Stop()
	defer deadline.Stop()
	for {
		var retry <-chan time.Time
		if !s.refresh(ctx) {
			retry = time.After(s.maxDelay) // a failed walk is retried without waiting for a write
		}
		select {
		case <-ctx.Done():
			return
		case <-retry:
			continue
		case <-s.kick:
		}
		quiet.Reset(s.quiet)
		deadline.Reset(s.maxDelay)
	debounce:
		for {
			select {
			case <-ctx.Done():
				return
			case <-s.kick:
				quiet.Reset(s.quiet)
			case <-quiet.C:
				break debounce
			case <-deadline.C:
				break debounce
			}
		}
	}
}

// refresh walks the storage once; false when the walk failed.
func (s *statsKeeper) refresh(ctx context.Context) bool {
	s.mu.Lock()
	gen := s.wanted
	s.mu.Unlock()
	start := time.Now()
	s.walks.Add(1)
	u, err := s.walk(ctx)
	if ctx.Err() != nil {
		return true // closing
	}
	if err != nil {
		s.log.Warn("usage statistics: walking the storage failed; keeping the previous numbers", "err", err)
	} else {
		s.snap.Store(u)
		s.log.Debug("usage statistics refreshed", "duration", time.Since(start), "repositories", u.repositories, "blobs", u.blobs)
	}
	s.mu.Lock()
	s.done = gen // a failed walk ends the wait too: the answer is the last numbers
	close(s.updated)
	s.updated = make(chan struct{})
	s.mu.Unlock()
	return err == nil
}

// current is the last computed usage, nil before the first refresh.
func (s *statsKeeper) current() *usage { return s.snap.Load() }

// pending reports whether writes happened after the last refresh started.
func (s *statsKeeper) pending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.done < s.wanted
}

// wait returns once a refresh that started after every write so far has
// ended (fresh), or once there is any result at all (!fresh), or when ctx ends.
func (s *statsKeeper) wait(ctx context.Context, fresh bool) error {
	s.mu.Lock()
	target := s.wanted
	s.mu.Unlock()
	for {
		s.mu.Lock()
		ready := s.done >= target || (!fresh && s.done > 0)
		ch := s.updated
		s.mu.Unlock()
		if ready {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// walk computes the usage from storage. It reads the data dir directly (the
// filesystem layout distribution writes, as the blob files layer does) and
// stats only blobs it has not seen: through the storage driver, which stats
// every directory entry and times each call, a walk of 1,000 images took
// 500 ms instead of 60. Content that disappears while it walks (a concurrent
// delete or GC) is skipped.
func (s *statsKeeper) walk(ctx context.Context) (*usage, error) {
	u := &usage{at: time.Now()}
	root := filepath.Join(s.dataDir, filepath.FromSlash(storageRoot))
	sizes := make(map[digest.Digest]int64, len(s.sizes))
	if err := s.walkBlobs(ctx, filepath.Join(root, "blobs"), sizes, u); err != nil {
		return nil, err
	}
	refs := make(map[digest.Digest]manifestRefs, len(s.refs))
	err := walkRepositories(ctx, filepath.Join(root, "repositories"), "", func(repo, dir string) error {
		rs, err := s.repository(ctx, repo, dir, refs)
		if err != nil {
			return err
		}
		u.repositories++
		u.tags += rs.Tags
		u.manifests += rs.Manifests
		u.logicalBytes += rs.Bytes
		u.repos = append(u.repos, rs)
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Forget what is gone; content never changes, so the rest stays valid.
	s.sizes, s.refs = sizes, refs
	slices.SortFunc(u.repos, func(a, b registryapi.RepositoryStats) int {
		return cmp.Or(cmp.Compare(b.Bytes, a.Bytes), cmp.Compare(a.Name, b.Name))
	})
	return u, nil
}

// walkBlobs counts the content store: blobs/<alg>/<2 hex>/<hex>/data. A
// blob's size is read once; its directory's presence says it is still there
// (distribution moves a finished upload into place, and deletes the
// directory with the blob).
func (s *statsKeeper) walkBlobs(ctx context.Context, dir string, sizes map[digest.Digest]int64, u *usage) error {
	algs, err := readDirNames(dir)
	if err != nil {
		return err
	}
	for _, alg := range algs {
		prefixes, err := readDirNames(filepath.Join(dir, alg))
		if err != nil {
			return err
		}
		for _, p := range prefixes {
			if err := ctx.Err(); err != nil {
				return err
			}
			encs, err := readDirNames(filepath.Join(dir, alg, p))
			if err != nil {
				return err
			}
			for _, enc := range encs {
				d := digest.NewDigestFromEncoded(digest.Algorithm(alg), enc)
				size, ok := s.sizes[d]
				if !ok {
					fi, err := os.Stat(filepath.Join(dir, alg, p, enc, "data"))
					if errors.Is(err, fs.ErrNotExist) {
						continue
					}
					if err != nil {
						return err
					}
					size = fi.Size()
				}
				sizes[d] = size
				u.blobs++
				u.uniqueBytes += size
			}
		}
	}
	return nil
}

// walkRepositories calls fn for every repository under dir: a directory with
// a _manifests directory, as distribution's catalog finds them.
func walkRepositories(ctx context.Context, dir, name string, fn func(repo, dir string) error) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if e.Name() == "_manifests" && name != "" {
			if err := fn(name, dir); err != nil {
				return err
			}
			continue
		}
		if strings.HasPrefix(e.Name(), "_") {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := walkRepositories(ctx, filepath.Join(dir, e.Name()), path.Join(name, e.Name()), fn); err != nil {
			return err
		}
	}
	return nil
}

// repository counts one repository's tags and manifests and the bytes its
// manifests reference.
func (s *statsKeeper) repository(ctx context.Context, repo, dir string, seen map[digest.Digest]manifestRefs) (registryapi.RepositoryStats, error) {
	rs := registryapi.RepositoryStats{Name: repo}
	tags, err := readDirNames(filepath.Join(dir, "_manifests", "tags"))
	if err != nil {
		return rs, err
	}
	rs.Tags = len(tags)
	revDir := filepath.Join(dir, "_manifests", "revisions", string(digest.Canonical))
	revs, err := readDirNames(revDir)
	if err != nil {
		return rs, err
	}
	held := map[digest.Digest]int64{}
	for _, enc := range revs {
		d := digest.NewDigestFromEncoded(digest.Canonical, enc)
		if d.Validate() != nil {
			continue
		}
		// Deleting a manifest removes its revision's link, not the directory.
		if _, err := os.Lstat(filepath.Join(revDir, enc, "link")); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return rs, err
		}
		refs, ok, err := s.manifestRefs(d)
		if err != nil {
			return rs, err
		}
		if !ok {
			continue
		}
		seen[d] = refs
		rs.Manifests++
		for rd, size := range refs {
			held[rd] = size
		}
	}
	for _, size := range held {
		rs.Bytes += size
	}
	return rs, ctx.Err()
}

// manifestRefs returns what manifest d references, parsed once; ok is false
// when its content is gone.
func (s *statsKeeper) manifestRefs(d digest.Digest) (manifestRefs, bool, error) {
	if refs, ok := s.refs[d]; ok {
		return refs, true, nil
	}
	payload, err := os.ReadFile(filepath.Join(s.dataDir, filepath.FromSlash(blobDataPath(d))))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	refs := manifestRefs{d: int64(len(payload))}
	doc, e := parseManifest(payload)
	if e != nil {
		// distribution stored it, so it is some manifest we do not parse
		// (schema 1): it counts for itself.
		return refs, true, nil
	}
	add := func(desc v1.Descriptor) {
		if len(desc.URLs) == 0 { // non-distributable layers are not stored here
			refs[desc.Digest] = desc.Size
		}
	}
	if doc.Config != nil {
		add(*doc.Config)
	}
	for _, l := range doc.Layers {
		add(l)
	}
	for _, l := range doc.Manifests {
		add(l)
	}
	return refs, true, nil
}

// readDirNames lists a directory's entry names; a missing directory has none.
func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return names, err
}

// errStatsUnavailable is returned before the first successful refresh.
var errStatsUnavailable = errors.New("usage statistics are not available yet")

// Stats returns the usage statistics. With fresh, it first waits (up to
// ctx) for the refresh that writes made due, so the numbers include every
// write that was answered before the call.
func (r *Registry) Stats(ctx context.Context, fresh bool) (registryapi.Stats, error) {
	r.mu.Lock()
	keeper, m, started := r.stats, r.metrics, r.started
	r.mu.Unlock()
	if keeper == nil {
		return registryapi.Stats{}, errors.New("the registry is not open")
	}
	waitErr := keeper.wait(ctx, fresh)
	u := keeper.current()
	if u == nil {
		if waitErr != nil {
			return registryapi.Stats{}, waitErr
		}
		return registryapi.Stats{}, errStatsUnavailable
	}
	st := registryapi.Stats{
		StartedAt: started, UpdatedAt: u.at, Pending: keeper.pending(),
		Repositories: u.repositories, Tags: u.tags, Manifests: u.manifests, Blobs: u.blobs,
		UniqueBytes: u.uniqueBytes, LogicalBytes: u.logicalBytes,
		Largest: slices.Clone(u.repos[:min(len(u.repos), largestRepositories)]),
		LastGC:  r.sources.gcSummary(),
		Quota:   r.sources.quotaSummary(),
	}
	if st.Largest == nil {
		st.Largest = []registryapi.RepositoryStats{}
	}
	if m != nil {
		st.Pushes, st.Pulls = m.pushes.Load(), m.pulls.Load()
		st.BlobUploads = m.blobUploads.Load()
	}
	return st, nil
}

// serveStats answers GET /api/v1/stats.
func (r *Registry) serveStats(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeOCIError(w, http.StatusMethodNotAllowed, codeUnsupported, "statistics answer GET only")
		return
	}
	fresh := req.URL.Query().Get("fresh") == "true"
	ctx, cancel := context.WithTimeout(req.Context(), freshWaitLimit)
	defer cancel()
	st, err := r.Stats(ctx, fresh)
	if err != nil {
		r.log.Warn("usage statistics unavailable", "err", err)
		w.Header().Set("Retry-After", "1")
		writeOCIError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "usage statistics are being computed; retry in a moment")
		return
	}
	writeOpsJSON(w, http.StatusOK, st)
}
