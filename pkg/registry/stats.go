package registry

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"path"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
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
	eng             *engine
	log             *slog.Logger
	quiet, maxDelay time.Duration

	snap  atomic.Pointer[usage]
	kick  chan struct{}
	walks atomic.Int64 // storage walks done, for tests

	mu      sync.Mutex
	wanted  uint64        // bumped by every write
	done    uint64        // the value of wanted the last refresh started from
	updated chan struct{} // closed (and replaced) when a refresh ends
	lastErr error

	// refs caches parsed manifests by digest (content never changes);
	// only the refresh loop touches it.
	refs map[digest.Digest]manifestRefs

	stop    context.CancelFunc
	stopped chan struct{}
}

func newStatsKeeper(eng *engine, log *slog.Logger, quiet time.Duration) *statsKeeper {
	if quiet <= 0 {
		quiet = defaultStatsQuiet
	}
	return &statsKeeper{
		eng: eng, log: log, quiet: quiet, maxDelay: max(defaultStatsMaxDelay, quiet),
		kick: make(chan struct{}, 1), wanted: 1, updated: make(chan struct{}),
		refs: map[digest.Digest]manifestRefs{}, stopped: make(chan struct{}),
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
		s.refresh(ctx)
		select {
		case <-ctx.Done():
			return
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

func (s *statsKeeper) refresh(ctx context.Context) {
	s.mu.Lock()
	gen := s.wanted
	s.mu.Unlock()
	start := time.Now()
	s.walks.Add(1)
	u, err := s.walk(ctx)
	if ctx.Err() != nil {
		return // closing
	}
	if err != nil {
		s.log.Warn("usage statistics: walking the storage failed; keeping the previous numbers", "err", err)
	} else {
		s.snap.Store(u)
		s.log.Debug("usage statistics refreshed", "duration", time.Since(start), "repositories", u.repositories, "blobs", u.blobs)
	}
	s.mu.Lock()
	s.done, s.lastErr = gen, err
	close(s.updated)
	s.updated = make(chan struct{})
	s.mu.Unlock()
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

// walk computes the usage from storage. Content that disappears while it
// walks (a concurrent delete or GC) is skipped, not an error.
func (s *statsKeeper) walk(ctx context.Context) (*usage, error) {
	u := &usage{at: time.Now()}
	drv := s.eng.driver
	err := drv.Walk(ctx, storageRoot+"/blobs", func(fi storagedriver.FileInfo) error {
		if !fi.IsDir() && path.Base(fi.Path()) == "data" {
			u.blobs++
			u.uniqueBytes += fi.Size()
		}
		return nil
	})
	if err != nil && !isPathNotFound(err) {
		return nil, err
	}

	seen := make(map[digest.Digest]manifestRefs, len(s.refs))
	err = s.eng.forEachRepository(ctx, func(repo string) error {
		rs := registryapi.RepositoryStats{Name: repo}
		tags, err := listNames(ctx, drv, repositoriesRoot+"/"+repo+"/_manifests/tags")
		if err != nil {
			return err
		}
		rs.Tags = len(tags)
		revs, err := listNames(ctx, drv, repositoriesRoot+"/"+repo+"/_manifests/revisions/"+string(digest.Canonical))
		if err != nil {
			return err
		}
		held := map[digest.Digest]int64{}
		for _, hex := range revs {
			d := digest.NewDigestFromEncoded(digest.Canonical, hex)
			if d.Validate() != nil {
				continue
			}
			// Deleting a manifest removes its revision's link, not the directory.
			if ok, err := s.eng.linkExists(ctx, manifestRevisionLinkPath(repo, d)); err != nil || !ok {
				if err != nil {
					return err
				}
				continue
			}
			refs, ok, err := s.manifestRefs(ctx, d)
			if err != nil {
				return err
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
		u.repositories++
		u.tags += rs.Tags
		u.manifests += rs.Manifests
		u.logicalBytes += rs.Bytes
		u.repos = append(u.repos, rs)
		return ctx.Err()
	})
	if err != nil {
		return nil, err
	}
	s.refs = seen // forget manifests no repository holds any more
	slices.SortFunc(u.repos, func(a, b registryapi.RepositoryStats) int {
		return cmp.Or(cmp.Compare(b.Bytes, a.Bytes), cmp.Compare(a.Name, b.Name))
	})
	return u, nil
}

// manifestRefs returns what manifest d references, parsed once; ok is false
// when its content is gone.
func (s *statsKeeper) manifestRefs(ctx context.Context, d digest.Digest) (manifestRefs, bool, error) {
	if refs, ok := s.refs[d]; ok {
		return refs, true, nil
	}
	payload, err := s.eng.driver.GetContent(ctx, blobDataPath(d))
	if isPathNotFound(err) {
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

// listNames lists the entries of a storage directory by name; a missing
// directory has none.
func listNames(ctx context.Context, drv storagedriver.StorageDriver, dir string) ([]string, error) {
	paths, err := drv.List(ctx, dir)
	if isPathNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	names := make([]string, len(paths))
	for i, p := range paths {
		names[i] = path.Base(p)
	}
	return names, nil
}

// errStatsUnavailable is returned before the first successful refresh.
var errStatsUnavailable = errors.New("usage statistics are not available yet")

// Stats returns the usage statistics. With fresh, it first waits (up to
// ctx) for the refresh that writes made due, so the numbers include every
// write that was answered before the call.
func (r *Registry) Stats(ctx context.Context, fresh bool) (registryapi.Stats, error) {
	r.mu.Lock()
	keeper, m := r.stats, r.metrics
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
		StartedAt: r.started, UpdatedAt: u.at, Pending: keeper.pending(),
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
