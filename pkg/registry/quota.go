package registry

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"

	"github.com/idpbuilder/idpbuilder/internal/units"
	"github.com/idpbuilder/idpbuilder/pkg/registryapi"
)

// QuotaError is a write refused because it would take the registry, or one
// repository, past its storage quota.
type QuotaError struct {
	// Repository is the repository whose quota it is; empty for the
	// registry-wide quota.
	Repository string
	// Used is what is stored, plus what uploads in flight have reserved.
	Used int64
	// Requested is what the write would add; AtLeast says it is a lower
	// bound (a body of unknown length, cut short when it passed the limit).
	Requested int64
	AtLeast   bool
	Limit     int64
}

const quotaErrorPrefix = "this write would pass "

func (e *QuotaError) Error() string {
	scope := "the registry's storage quota"
	if e.Repository != "" {
		scope = fmt.Sprintf("the storage quota of repository %q", e.Repository)
	}
	req := units.Bytes(e.Requested)
	if e.AtLeast {
		req = "at least " + req
	}
	return fmt.Sprintf(quotaErrorPrefix+"%s: %s used, %s requested, limit %s; delete images (and collect garbage) to make room",
		scope, units.Bytes(e.Used), req, units.Bytes(e.Limit))
}

// quota counts what the repositories hold and refuses writes that would pass
// the limits. A blob counts once however many repositories link it (registry
// wide) and once per repository that links it (per repository); layers,
// configs and manifests are all blobs. Usage is read from the store when it is
// first needed, kept current as writes succeed, and read again for a
// repository after a delete in it (and for all of them by reload, after GC).
type quota struct {
	limit, repoLimit int64
	dataDir          string
	eng              *engine
	log              *slog.Logger

	// mu guards the counts. It is held across a rescan, so a write that
	// lands meanwhile is either seen by the scan or recorded after it: never
	// lost. Records are idempotent.
	mu      sync.Mutex
	loaded  bool
	blobs   map[digest.Digest]*blobUse // canonical digest -> use
	repos   map[string]*repoUse
	used    int64 // sum of the sizes of the blobs some repository links
	pending int64 // bytes reserved by writes in flight (registry wide)
	dirty   map[string]bool
}

type blobUse struct {
	size  int64
	repos int // how many repositories link it
}

type repoUse struct {
	blobs   map[digest.Digest]int64
	used    int64
	pending int64
}

func newQuota(limit, repoLimit int64, dataDir string, eng *engine, log *slog.Logger) *quota {
	return &quota{limit: limit, repoLimit: repoLimit, dataDir: dataDir, eng: eng, log: log, dirty: map[string]bool{}}
}

// ensureLocked loads the counts if they are not loaded and rescans the
// repositories marked dirty. Checks log a storage error and go on with the
// counts as they are: a quota that cannot be read must not stop every push.
func (q *quota) ensureLocked(ctx context.Context) error {
	// The scan serves every request waiting on mu: the one that happens to
	// run it going away must not abort it.
	ctx = context.WithoutCancel(ctx)
	if !q.loaded {
		if err := q.loadLocked(ctx); err != nil {
			q.log.Error("read storage usage for quotas", "err", err)
			return fmt.Errorf("read storage usage: %w", err)
		}
	}
	for repo := range q.dirty {
		blobs, err := q.scanRepository(ctx, repo)
		if err != nil {
			q.log.Error("read storage usage of a repository for quotas", "repository", repo, "err", err)
			return fmt.Errorf("read storage usage of %s: %w", repo, err)
		}
		q.setRepositoryLocked(repo, blobs)
		delete(q.dirty, repo)
	}
	return nil
}

// reload reads every repository's usage from the store again, for garbage
// collection to call after a run: what it swept is no longer counted.
func (q *quota) reload(ctx context.Context) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.loadLocked(ctx)
}

func (q *quota) loadLocked(ctx context.Context) error {
	q.blobs, q.repos, q.used = map[digest.Digest]*blobUse{}, map[string]*repoUse{}, 0
	q.loaded = false
	err := q.forEachRepository(ctx, repositoriesRoot, func(repo string) error {
		blobs, err := q.scanRepository(ctx, repo)
		if err != nil {
			return err
		}
		q.setRepositoryLocked(repo, blobs)
		return nil
	})
	if err != nil {
		return err
	}
	// Pending reservations are the requests' own: they survive a reload.
	q.loaded, q.dirty = true, map[string]bool{}
	q.log.Debug("storage usage read", "repositories", len(q.repos), "blobs", len(q.blobs), "bytes", q.used)
	return nil
}

// forEachRepository calls fn with every repository under dir (a path
// relative to the data dir, e.g. repositoriesRoot) that links blobs or
// manifests. distribution's catalog lists only repositories with manifests,
// but a push refused half way leaves a repository with layers only, and they
// count. The tree is read directly, not through distribution's storage
// driver, which costs ten times as much per file (BenchmarkQuotaLoad).
func (q *quota) forEachRepository(ctx context.Context, dir string, fn func(string) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	children, err := os.ReadDir(q.path(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	isRepo := slices.ContainsFunc(children, func(c fs.DirEntry) bool { return c.Name() == "_layers" || c.Name() == "_manifests" })
	if isRepo {
		if err := fn(strings.TrimPrefix(dir, repositoriesRoot+"/")); err != nil {
			return err
		}
	}
	for _, c := range children {
		if !c.IsDir() || strings.HasPrefix(c.Name(), "_") {
			continue
		}
		if err := q.forEachRepository(ctx, dir+"/"+c.Name(), fn); err != nil {
			return err
		}
	}
	return nil
}

// path is where a path of distribution's layout is on disk.
func (q *quota) path(p string) string { return filepath.Join(q.dataDir, filepath.FromSlash(p)) }

// scanRepository reads which blobs a repository links: its layer links and
// manifest revision links, each resolved to the canonical digest it names
// (an alias under sha512 names the same blob as its sha256), with the size
// of the blob's data. A link to data that is gone counts nothing.
func (q *quota) scanRepository(ctx context.Context, repo string) (map[digest.Digest]int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := map[digest.Digest]int64{}
	for _, sub := range []string{"_layers", "_manifests/revisions"} {
		dir := q.path(repositoriesRoot + "/" + repo + "/" + sub)
		algs, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, alg := range algs {
			entries, err := os.ReadDir(filepath.Join(dir, alg.Name()))
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, err
			}
			for _, e := range entries {
				link := filepath.Join(dir, alg.Name(), e.Name(), "link")
				content, err := os.ReadFile(link)
				if errors.Is(err, fs.ErrNotExist) {
					continue // a directory without a link is not linked
				}
				if err != nil {
					return nil, err
				}
				d, err := digest.Parse(strings.TrimSpace(string(content)))
				if err != nil {
					q.log.Debug("unreadable link ignored by quotas", "path", link, "err", err)
					continue
				}
				if _, seen := out[d]; seen {
					continue
				}
				size, err := q.blobSize(d)
				if errors.Is(err, fs.ErrNotExist) {
					continue
				}
				if err != nil {
					return nil, err
				}
				out[d] = size
			}
		}
	}
	return out, nil
}

// blobSize is a blob's size: known already (content is immutable), or
// stat'ed. Callers hold mu.
func (q *quota) blobSize(d digest.Digest) (int64, error) {
	if b := q.blobs[d]; b != nil {
		return b.size, nil
	}
	fi, err := os.Stat(q.path(blobDataPath(d)))
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// setRepositoryLocked replaces what a repository links.
func (q *quota) setRepositoryLocked(repo string, blobs map[digest.Digest]int64) {
	ru := q.repos[repo]
	if ru == nil {
		ru = &repoUse{blobs: map[digest.Digest]int64{}}
		q.repos[repo] = ru
	}
	for d := range ru.blobs {
		if _, ok := blobs[d]; !ok {
			q.unlinkLocked(ru, d)
		}
	}
	for d, size := range blobs {
		q.linkLocked(ru, d, size)
	}
	if len(ru.blobs) == 0 && ru.pending == 0 {
		delete(q.repos, repo)
	}
}

func (q *quota) linkLocked(ru *repoUse, d digest.Digest, size int64) {
	if _, ok := ru.blobs[d]; ok {
		return
	}
	ru.blobs[d] = size
	ru.used += size
	b := q.blobs[d]
	if b == nil {
		b = &blobUse{size: size}
		q.blobs[d] = b
	}
	if b.repos == 0 {
		q.used += size
	}
	b.repos++
}

func (q *quota) unlinkLocked(ru *repoUse, d digest.Digest) {
	size, ok := ru.blobs[d]
	if !ok {
		return
	}
	delete(ru.blobs, d)
	ru.used -= size
	if b := q.blobs[d]; b != nil {
		if b.repos--; b.repos <= 0 {
			q.used -= b.size
			delete(q.blobs, d)
		}
	}
}

// record counts a blob a write has just linked into repo.
func (q *quota) record(repo string, d digest.Digest, size int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.loaded {
		return // the first load will read it from the store
	}
	ru := q.repos[repo]
	if ru == nil {
		ru = &repoUse{blobs: map[digest.Digest]int64{}}
		q.repos[repo] = ru
	}
	q.linkLocked(ru, d, size)
}

// markDirty has a repository's usage read again before it is next trusted:
// after a delete, or a write that failed half way.
func (q *quota) markDirty(repo string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.dirty[repo] = true
}

// counted reports whether a blob already counts registry wide and in repo.
func (q *quota) counted(ctx context.Context, repo string, d digest.Digest) (inRegistry, inRepo bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	_ = q.ensureLocked(ctx)
	if d == "" {
		return false, false
	}
	_, inRegistry = q.blobs[d]
	if ru := q.repos[repo]; ru != nil {
		_, inRepo = ru.blobs[d]
	}
	return inRegistry, inRepo
}

// reservation holds quota for a write in flight, so that concurrent writes
// cannot pass a limit together.
type reservation struct {
	q          *quota
	repo       string
	registry   bool // counts against the registry-wide quota
	repository bool // counts against the repository's quota
	bytes      int64
}

// reserve reserves n bytes in repo (for each scope the blob is new to) or
// says which quota they would pass.
func (q *quota) reserve(ctx context.Context, repo string, n int64, registry, repository bool) (*reservation, *QuotaError) {
	res := &reservation{q: q, repo: repo, registry: registry, repository: repository}
	q.mu.Lock()
	defer q.mu.Unlock()
	_ = q.ensureLocked(ctx)
	if err := res.growLocked(n, false); err != nil {
		return nil, err
	}
	return res, nil
}

// grow reserves n more bytes of a body of unknown length.
func (res *reservation) grow(n int64) error {
	res.q.mu.Lock()
	defer res.q.mu.Unlock()
	if err := res.growLocked(n, true); err != nil {
		return err // not a nil *QuotaError in an interface
	}
	return nil
}

func (res *reservation) growLocked(n int64, atLeast bool) *QuotaError {
	q := res.q
	ru := q.repos[res.repo]
	if n <= 0 {
		return nil // an empty body, or a blob that is all there already
	}
	if res.registry && q.limit > 0 && q.used+q.pending+n > q.limit {
		return &QuotaError{Used: q.used + q.pending - res.bytes, Requested: res.bytes + n, AtLeast: atLeast, Limit: q.limit}
	}
	if res.repository && q.repoLimit > 0 {
		var used int64
		if ru != nil {
			used = ru.used + ru.pending
		}
		if used+n > q.repoLimit {
			return &QuotaError{Repository: res.repo, Used: used - res.bytes, Requested: res.bytes + n, AtLeast: atLeast, Limit: q.repoLimit}
		}
	}
	if res.registry {
		q.pending += n
	}
	if res.repository {
		if ru == nil {
			ru = &repoUse{blobs: map[digest.Digest]int64{}}
			q.repos[res.repo] = ru
		}
		ru.pending += n
	}
	res.bytes += n
	return nil
}

// release gives the reservation back (after the write was recorded, or failed).
func (res *reservation) release() {
	q := res.q
	q.mu.Lock()
	defer q.mu.Unlock()
	if res.registry {
		q.pending -= res.bytes
	}
	if ru := q.repos[res.repo]; ru != nil && res.repository {
		ru.pending -= res.bytes
		if len(ru.blobs) == 0 && ru.pending == 0 {
			delete(q.repos, res.repo)
		}
	}
	res.bytes = 0
}

// status reports the usage.
func (q *quota) status(ctx context.Context) (registryapi.QuotaStatus, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := q.ensureLocked(ctx); err != nil {
		return registryapi.QuotaStatus{}, err
	}
	st := registryapi.QuotaStatus{Enabled: true, Limit: q.limit, RepoLimit: q.repoLimit, Used: q.used}
	if q.repoLimit > 0 {
		for name, ru := range q.repos {
			if len(ru.blobs) > 0 {
				st.Repositories = append(st.Repositories, registryapi.RepositoryUsage{Name: name, Used: ru.used})
			}
		}
		slices.SortFunc(st.Repositories, func(a, b registryapi.RepositoryUsage) int {
			return cmp.Or(cmp.Compare(b.Used, a.Used), strings.Compare(a.Name, b.Name))
		})
	}
	return st, nil
}

// QuotaStatus reports the storage quotas, what the repositories use, and the
// disk under the data dir. Without a quota only the disk is reported.
func (r *Registry) QuotaStatus(ctx context.Context) (registryapi.QuotaStatus, error) {
	r.mu.Lock()
	q, disk := r.quota, r.disk
	r.mu.Unlock()
	if disk == nil {
		return registryapi.QuotaStatus{}, errors.New("registry not open")
	}
	var st registryapi.QuotaStatus
	if q != nil {
		var err error
		if st, err = q.status(ctx); err != nil {
			return registryapi.QuotaStatus{}, err
		}
	}
	st.Disk = disk.status()
	return st, nil
}

// withQuota refuses blob uploads, cross-repository mounts and manifest PUTs
// that would pass a quota with 403 DENIED, and deletes what a refused upload
// had stored. It counts what succeeds.
func withQuota(next http.Handler, q *quota) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt := routeOf(r)
		switch {
		case rt.Kind == RouteUpload && rt.Reference != "" && (r.Method == http.MethodPatch || r.Method == http.MethodPut):
			q.serveUploadWrite(next, w, r, rt)
		case rt.Kind == RouteUpload && r.Method == http.MethodPost && r.URL.Query().Get("mount") != "" && r.URL.Query().Get("from") != "":
			q.serveMount(next, w, r, rt)
		case rt.Kind == RouteManifest && r.Method == http.MethodPut:
			q.serveManifestPut(next, w, r, rt)
		case (rt.Kind == RouteManifest && !rt.IsTag() || rt.Kind == RouteBlob) && r.Method == http.MethodDelete:
			sw := &statusWriter{ResponseWriter: w}
			next.ServeHTTP(sw, r)
			if sw.status == http.StatusAccepted {
				q.markDirty(rt.Repository)
			}
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// serveUploadWrite is a PATCH of upload data or the PUT that completes an
// upload. What counts is everything the upload holds once the request is
// done: what earlier chunks stored plus this body, unless the PUT names a blob
// that already counts.
func (q *quota) serveUploadWrite(next http.Handler, w http.ResponseWriter, r *http.Request, rt Route) {
	ctx := r.Context()
	var d digest.Digest
	if r.Method == http.MethodPut {
		d, _ = digest.Parse(r.URL.Query().Get("digest"))
	}
	inRegistry, inRepo := q.counted(ctx, rt.Repository, d)
	if inRegistry && inRepo {
		next.ServeHTTP(w, r) // nothing new to count
		return
	}
	held, err := q.eng.uploadSize(ctx, rt.Repository, rt.Reference)
	if err != nil {
		q.log.Warn("read upload size for quotas", "repository", rt.Repository, "err", err)
	}
	known := max(r.ContentLength, 0)
	res, qerr := q.reserve(ctx, rt.Repository, held+known, !inRegistry, !inRepo)
	if qerr != nil {
		q.refuse(w, r, rt, qerr, true)
		return
	}
	defer res.release()
	var body *guardedBody
	if r.ContentLength < 0 {
		body = &guardedBody{ReadCloser: r.Body, take: res.grow}
		r.Body = body
	}
	hw := &heldWriter{ResponseWriter: w, hold: func(int) bool { return body != nil && body.err != nil }}
	next.ServeHTTP(hw, r)
	var cut *QuotaError
	if body != nil && errors.As(body.err, &cut) {
		q.refuse(w, r, rt, cut, true)
		return
	}
	switch {
	case hw.status == http.StatusCreated:
		q.recordStored(ctx, rt.Repository, d)
	case hw.status >= 500:
		q.markDirty(rt.Repository)
	}
}

// recordStored counts a blob an upload or mount has just stored in repo,
// under its canonical digest and size.
func (q *quota) recordStored(ctx context.Context, repo string, d digest.Digest) {
	desc, ok, err := q.eng.blobStat(ctx, repo, d)
	if err != nil || !ok {
		q.markDirty(repo)
		return
	}
	q.record(repo, desc.Digest, desc.Size)
}

// serveMount is a cross-repository mount: the blob is stored already, so it
// counts against the target repository's quota only.
func (q *quota) serveMount(next http.Handler, w http.ResponseWriter, r *http.Request, rt Route) {
	ctx := r.Context()
	qs := r.URL.Query()
	d, err := digest.Parse(qs.Get("mount"))
	from := qs.Get("from")
	if err != nil || validateName(from) != nil {
		next.ServeHTTP(w, r)
		return
	}
	desc, ok, err := q.eng.blobStat(ctx, from, d)
	if err != nil || !ok {
		next.ServeHTTP(w, r) // no mount: distribution starts a plain upload
		return
	}
	inRegistry, inRepo := q.counted(ctx, rt.Repository, desc.Digest)
	if inRegistry && inRepo {
		next.ServeHTTP(w, r)
		return
	}
	res, qerr := q.reserve(ctx, rt.Repository, desc.Size, !inRegistry, !inRepo)
	if qerr != nil {
		q.refuse(w, r, rt, qerr, false)
		return
	}
	defer res.release()
	sw := &statusWriter{ResponseWriter: w}
	next.ServeHTTP(sw, r)
	if sw.status == http.StatusCreated {
		q.record(rt.Repository, desc.Digest, desc.Size)
	}
}

// serveManifestPut counts a manifest as the blob distribution stores it as.
func (q *quota) serveManifestPut(next http.Handler, w http.ResponseWriter, r *http.Request, rt Route) {
	ctx := r.Context()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		// The manifest layer reports it (too big, or cut off).
		r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), errReader{err}))
		next.ServeHTTP(w, r)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	d := digest.Canonical.FromBytes(body)
	inRegistry, inRepo := q.counted(ctx, rt.Repository, d)
	if inRegistry && inRepo {
		next.ServeHTTP(w, r)
		return
	}
	res, qerr := q.reserve(ctx, rt.Repository, int64(len(body)), !inRegistry, !inRepo)
	if qerr != nil {
		q.refuse(w, r, rt, qerr, false)
		return
	}
	defer res.release()
	sw := &statusWriter{ResponseWriter: w}
	next.ServeHTTP(sw, r)
	switch {
	case sw.status == http.StatusCreated:
		q.record(rt.Repository, d, int64(len(body)))
	case sw.status >= 500:
		q.markDirty(rt.Repository)
	}
}

// refuse answers 403 DENIED and, for an upload, deletes what it stored.
func (q *quota) refuse(w http.ResponseWriter, r *http.Request, rt Route, qerr *QuotaError, upload bool) {
	if upload {
		if err := q.eng.cancelUpload(context.WithoutCancel(r.Context()), rt.Repository, rt.Reference); err != nil {
			q.log.Error("delete an upload refused by a quota", "repository", rt.Repository, "err", err)
		}
	}
	q.log.Info("write refused by a quota", "repository", rt.Repository, "method", r.Method, "route", rt.Kind.String(), "reason", qerr.Error())
	writeOCIError(w, http.StatusForbidden, codeDenied, qerr.Error())
}

// isGuardRefusal reports whether a log message is about a body the quota or
// disk guard cut (distribution logs the failed read at error level).
func isGuardRefusal(msg string) bool {
	return strings.Contains(msg, quotaErrorPrefix) || strings.Contains(msg, diskFullErrorPrefix)
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// guardedBody passes a request body on, asking take for every chunk first.
// When take refuses, the chunk is dropped and the read fails with take's
// error, which the layer that set the guard then answers for.
type guardedBody struct {
	io.ReadCloser
	take func(n int64) error
	read int64
	err  error
}

func (b *guardedBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		if terr := b.take(int64(n)); terr != nil {
			b.err = terr
			return 0, terr
		}
		b.read += int64(n)
	}
	return n, err
}

// heldWriter holds the response back while hold says the request is refused
// by the layer that made it (a guarded body was cut): distribution still
// answers such a request with a 500 of its own, and still has the upload open
// until it returns. The layer then cleans up and answers itself.
type heldWriter struct {
	http.ResponseWriter
	hold   func(status int) bool
	status int
	held   bool
}

func (w *heldWriter) WriteHeader(code int) {
	if w.status != 0 {
		return
	}
	w.status = code
	if w.hold(code) {
		w.held = true
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *heldWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.held {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

func (w *heldWriter) Flush() {
	if w.held {
		return
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *heldWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ReadFrom passes through (sendfile, see readFromThrough) unless held.
func (w *heldWriter) ReadFrom(src io.Reader) (int64, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.held {
		return io.Copy(io.Discard, src)
	}
	return readFromThrough(w.ResponseWriter, src)
}
