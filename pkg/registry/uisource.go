package registry

import (
	"bytes"
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/idpbuilder/idpbuilder/pkg/auth"
	"github.com/idpbuilder/idpbuilder/pkg/registryapi"
	"github.com/idpbuilder/idpbuilder/pkg/ui"
)

// UISource is the registry as its web UI sees it (ui.Source). It reads the
// store directly (no HTTP round trip, no second copy of anything), and it
// deletes by sending DELETE requests into the registry's own handler stack
// below authentication: the manifest layer, its listeners (the referrers index
// and whatever else counts manifests) and distribution see exactly what an
// API client's DELETE would make them see. The UI checks who may delete before
// it asks, by the same policy the auth layer applies.
type UISource struct {
	reg      *Registry // for statistics, health and garbage collection
	eng      *engine
	dataDir  string
	refs     *referrersIndex
	log      *slog.Logger
	authOpts *AuthOptions
	login    *loginGate   // nil without auth
	core     http.Handler // the layers below authentication, over distribution
	gate     repoGate

	mu       sync.Mutex
	names    []string // sorted; nil: not listed yet, or a repository came or went
	namesGen uint64   // bumped when names is dropped
	repos    map[string]*uiRepo

	blobs *byteCache // manifests and image configs, by canonical digest
}

// uiRepo is what the UI shows of a repository, kept until a manifest event
// for the repository (a push, a delete) makes it stale.
type uiRepo struct {
	version uint64 // bumped by every event; a result computed across one is dropped
	summary *ui.Repository
	tags    []ui.Tag
}

func newUISource(r *Registry, eng *engine, refs *referrersIndex) *UISource {
	s := &UISource{
		reg: r, eng: eng, dataDir: r.opts.DataDir, refs: refs, log: r.log, authOpts: r.opts.Auth,
		gate:  repoGate{locks: map[string]*gateLock{}},
		repos: map[string]*uiRepo{},
		blobs: newByteCache(32 << 20),
	}
	// Every garbage collection (periodic ones too) may empty and remove
	// repositories: what the UI knew of them goes.
	r.OnGC(func(res registryapi.GCResult) {
		if !res.DryRun {
			s.forgetAll()
		}
	})
	return s
}

var _ ui.Source = (*UISource)(nil)

// onManifest is the UI's manifest listener: it forgets what it knew of the
// repository. It never fails a request.
func (s *UISource) onManifest(_ context.Context, ev ManifestEvent) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.staleLocked(ev.Repository)
	if ev.Action == ManifestPushed {
		// A new repository; or maybe, when no list is kept (one may be
		// being made), make sure that list is not kept.
		if _, found := slices.BinarySearch(s.names, ev.Repository); !found {
			s.forgetNamesLocked()
		}
	}
	return nil
}

// forgetAll drops everything the UI knew of the repositories.
func (s *UISource) forgetAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for repo := range s.repos {
		s.staleLocked(repo)
	}
	s.forgetNamesLocked()
}

func (s *UISource) forgetNamesLocked() {
	s.names = nil
	s.namesGen++
}

func (s *UISource) staleLocked(repo string) {
	e := s.repos[repo]
	if e == nil {
		e = &uiRepo{}
		s.repos[repo] = e
	}
	e.version++
	e.summary, e.tags = nil, nil
}

// Paths of distribution's layout (registry/storage/paths.go) the UI reads.
func repoManifestsPath(repo string) string { return repositoriesRoot + "/" + repo + "/_manifests" }
func tagsPath(repo string) string          { return repoManifestsPath(repo) + "/tags" }
func tagLinkPath(repo, tag string) string  { return tagsPath(repo) + "/" + tag + "/current/link" }
func revisionsPath(repo string, alg digest.Algorithm) string {
	return repoManifestsPath(repo) + "/revisions/" + alg.String()
}

// Repositories lists every repository's name. The list is kept until a
// repository comes or goes.
func (s *UISource) Repositories(ctx context.Context) ([]string, error) {
	names, err := s.repositoryNames(ctx)
	if err != nil {
		return nil, err
	}
	return slices.Clone(names), nil
}

// Repository summarizes a repository: tag count, size, last push. It is kept
// until a manifest event for the repository.
func (s *UISource) Repository(ctx context.Context, name string) (ui.Repository, error) {
	if validateName(name) != nil {
		return ui.Repository{}, ui.ErrNotFound
	}
	s.mu.Lock()
	if e := s.repos[name]; e != nil && e.summary != nil {
		sum := *e.summary
		s.mu.Unlock()
		return sum, nil
	}
	s.mu.Unlock()
	sum, err := s.repository(ctx, name)
	if err != nil {
		return ui.Repository{}, err
	}
	if sum.Name == "" {
		return ui.Repository{}, ui.ErrNotFound
	}
	return sum, nil
}

func (s *UISource) repositoryNames(ctx context.Context) ([]string, error) {
	s.mu.Lock()
	names, gen := s.names, s.namesGen
	s.mu.Unlock()
	if names != nil {
		return names, nil
	}
	names, err := listRepositories(ctx, filepath.Join(s.dataDir, filepath.FromSlash(repositoriesRoot)))
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	s.mu.Lock()
	if s.namesGen == gen { // a repository that came or went meanwhile lists next time
		s.names = names
	}
	s.mu.Unlock()
	return names, nil
}

// listRepositories finds the repositories under distribution's repositories
// directory as its catalog does (a directory holding _manifests is one), with
// one ReadDir per directory and no stat: a thousand repositories list in
// milliseconds, where distribution's walk stats every entry.
func listRepositories(ctx context.Context, root string) ([]string, error) {
	names := []string{}
	var walk func(dir, prefix string) error
	walk = func(dir, prefix string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		entries, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // no repository yet, or one deleted meanwhile
		}
		if err != nil {
			return err
		}
		for _, e := range entries {
			switch n := e.Name(); {
			case !e.IsDir():
			case n == "_manifests":
				if prefix != "" {
					names = append(names, prefix)
				}
			case strings.HasPrefix(n, "_"):
			default:
				if err := walk(filepath.Join(dir, n), path.Join(prefix, n)); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(root, ""); err != nil {
		return nil, err
	}
	return names, nil
}

// repository computes one repository's summary (and keeps it, with its tags,
// unless an event arrived meanwhile).
func (s *UISource) repository(ctx context.Context, repo string) (ui.Repository, error) {
	s.mu.Lock()
	e := s.repos[repo]
	if e == nil {
		e = &uiRepo{}
		s.repos[repo] = e
	}
	version := e.version
	s.mu.Unlock()

	tags, err := s.readTags(ctx, repo)
	if err != nil {
		if errors.Is(err, ui.ErrNotFound) {
			return ui.Repository{}, nil
		}
		return ui.Repository{}, err
	}
	sum := ui.Repository{Name: repo, Tags: len(tags)}
	for _, t := range tags {
		if t.Pushed.After(sum.LastPush) {
			sum.LastPush = t.Pushed
		}
	}
	seen := map[digest.Digest]bool{}
	err = s.forEachRevision(ctx, repo, func(dgst digest.Digest, mod time.Time) error {
		if mod.After(sum.LastPush) {
			sum.LastPush = mod
		}
		payload, err := s.manifestPayload(ctx, dgst)
		if err != nil {
			if isPathNotFound(err) {
				return nil // deleted meanwhile
			}
			return err
		}
		if !seen[dgst] {
			seen[dgst] = true
			sum.Size += int64(len(payload))
		}
		doc, e := parseManifest(payload)
		if e != nil {
			return nil
		}
		if doc.Config != nil && !seen[doc.Config.Digest] {
			seen[doc.Config.Digest] = true
			sum.Size += doc.Config.Size
		}
		for _, l := range doc.Layers {
			if !seen[l.Digest] {
				seen[l.Digest] = true
				sum.Size += l.Size
			}
		}
		return nil
	})
	if err != nil {
		return ui.Repository{}, err
	}
	s.mu.Lock()
	if e.version == version {
		e.summary, e.tags = &sum, tags
	}
	s.mu.Unlock()
	return sum, nil
}

// forEachRevision calls fn with every canonical manifest revision of repo and
// when its link was written. Aliases (sha512 links) are the same content.
func (s *UISource) forEachRevision(ctx context.Context, repo string, fn func(digest.Digest, time.Time) error) error {
	dir := revisionsPath(repo, digest.Canonical)
	entries, err := s.eng.driver.List(ctx, dir)
	if isPathNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	slices.Sort(entries)
	for _, p := range entries {
		dgst := digest.NewDigestFromEncoded(digest.Canonical, path.Base(p))
		if dgst.Validate() != nil {
			continue
		}
		fi, err := s.eng.driver.Stat(ctx, p+"/link")
		if isPathNotFound(err) {
			continue
		}
		if err != nil {
			return err
		}
		if err := fn(dgst, fi.ModTime()); err != nil {
			return err
		}
	}
	return nil
}

// Tags lists a repository's tags.
func (s *UISource) Tags(ctx context.Context, repo string) ([]ui.Tag, error) {
	if validateName(repo) != nil {
		return nil, ui.ErrNotFound
	}
	s.mu.Lock()
	if e := s.repos[repo]; e != nil && e.tags != nil {
		tags := slices.Clone(e.tags)
		s.mu.Unlock()
		return tags, nil
	}
	e := s.repos[repo]
	if e == nil {
		e = &uiRepo{}
		s.repos[repo] = e
	}
	version := e.version
	s.mu.Unlock()
	tags, err := s.readTags(ctx, repo)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if e.version == version {
		e.tags = tags
	}
	s.mu.Unlock()
	return slices.Clone(tags), nil
}

func (s *UISource) readTags(ctx context.Context, repo string) ([]ui.Tag, error) {
	if _, err := s.eng.driver.Stat(ctx, repoManifestsPath(repo)); err != nil {
		if isPathNotFound(err) {
			return nil, ui.ErrNotFound
		}
		return nil, err
	}
	entries, err := s.eng.driver.List(ctx, tagsPath(repo))
	if isPathNotFound(err) {
		return []ui.Tag{}, nil
	}
	if err != nil {
		return nil, err
	}
	tags := make([]ui.Tag, 0, len(entries))
	for _, p := range entries {
		name := path.Base(p)
		link := tagLinkPath(repo, name)
		b, err := s.eng.driver.GetContent(ctx, link)
		if isPathNotFound(err) {
			continue // a tag being deleted
		}
		if err != nil {
			return nil, err
		}
		fi, err := s.eng.driver.Stat(ctx, link)
		if err != nil {
			if isPathNotFound(err) {
				continue
			}
			return nil, err
		}
		dgst, err := digest.Parse(strings.TrimSpace(string(b)))
		if err != nil {
			continue
		}
		tags = append(tags, ui.Tag{Name: name, Digest: dgst.String(), Pushed: fi.ModTime()})
	}
	slices.SortFunc(tags, func(a, b ui.Tag) int { return strings.Compare(a.Name, b.Name) })
	return tags, nil
}

// Manifest reads a manifest of repo by tag or digest.
func (s *UISource) Manifest(ctx context.Context, repo, reference string) (ui.Manifest, error) {
	if validateName(repo) != nil {
		return ui.Manifest{}, ui.ErrNotFound
	}
	var addressed digest.Digest
	if strings.Contains(reference, ":") {
		d, err := digest.Parse(reference)
		if err != nil {
			return ui.Manifest{}, ui.ErrNotFound
		}
		addressed = d
	} else {
		if !tagPattern.MatchString(reference) {
			return ui.Manifest{}, ui.ErrNotFound
		}
		b, err := s.eng.driver.GetContent(ctx, tagLinkPath(repo, reference))
		if isPathNotFound(err) {
			return ui.Manifest{}, ui.ErrNotFound
		}
		if err != nil {
			return ui.Manifest{}, err
		}
		if addressed, err = digest.Parse(strings.TrimSpace(string(b))); err != nil {
			return ui.Manifest{}, ui.ErrNotFound
		}
	}
	// The revision link says the manifest is in this repository, and names
	// its canonical digest (an alias links to it).
	b, err := s.eng.driver.GetContent(ctx, manifestRevisionLinkPath(repo, addressed))
	if isPathNotFound(err) {
		return ui.Manifest{}, ui.ErrNotFound
	}
	if err != nil {
		return ui.Manifest{}, err
	}
	canonical, err := digest.Parse(strings.TrimSpace(string(b)))
	if err != nil {
		return ui.Manifest{}, ui.ErrNotFound
	}
	payload, err := s.manifestPayload(ctx, canonical)
	if isPathNotFound(err) {
		return ui.Manifest{}, ui.ErrNotFound
	}
	if err != nil {
		return ui.Manifest{}, err
	}
	var head struct {
		MediaType string `json:"mediaType"`
	}
	_ = json.Unmarshal(payload, &head)
	return ui.Manifest{Digest: addressed.String(), MediaType: head.MediaType, Payload: payload}, nil
}

// manifestPayload reads a stored manifest's content by its canonical digest.
// Content never changes under its digest, so it is cached.
func (s *UISource) manifestPayload(ctx context.Context, canonical digest.Digest) ([]byte, error) {
	if b, ok := s.blobs.get(canonical); ok {
		return b, nil
	}
	b, err := s.eng.driver.GetContent(ctx, blobDataPath(canonical))
	if err != nil {
		return nil, err
	}
	s.blobs.put(canonical, b)
	return b, nil
}

// Blob reads a small blob linked into repo (an image config).
func (s *UISource) Blob(ctx context.Context, repo, dgstStr string, limit int64) ([]byte, error) {
	if validateName(repo) != nil {
		return nil, ui.ErrNotFound
	}
	dgst, err := digest.Parse(dgstStr)
	if err != nil {
		return nil, ui.ErrNotFound
	}
	b, err := s.eng.driver.GetContent(ctx, layerLinkPath(repo, dgst))
	if isPathNotFound(err) {
		return nil, ui.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	canonical, err := digest.Parse(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, ui.ErrNotFound
	}
	if c, ok := s.blobs.get(canonical); ok {
		return c, nil
	}
	fi, err := s.eng.driver.Stat(ctx, blobDataPath(canonical))
	if isPathNotFound(err) {
		return nil, ui.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if fi.Size() > limit {
		return nil, ui.ErrTooLarge
	}
	rd, err := s.eng.driver.Reader(ctx, blobDataPath(canonical), 0)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	c, err := io.ReadAll(io.LimitReader(rd, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(c)) > limit {
		return nil, ui.ErrTooLarge
	}
	s.blobs.put(canonical, c)
	return c, nil
}

// Referrers lists the manifests of repo whose subject is dgst.
func (s *UISource) Referrers(ctx context.Context, repo, dgstStr string) ([]ui.Descriptor, error) {
	if validateName(repo) != nil {
		return nil, ui.ErrNotFound
	}
	dgst, err := digest.Parse(dgstStr)
	if err != nil {
		return nil, ui.ErrNotFound
	}
	list, err := s.refs.list(ctx, repo, dgst)
	if err != nil {
		return nil, err
	}
	out := make([]ui.Descriptor, len(list))
	for i, d := range list {
		out[i] = ui.Descriptor{MediaType: d.MediaType, Digest: d.Digest.String(), Size: d.Size, ArtifactType: d.ArtifactType, Annotations: d.Annotations}
	}
	return out, nil
}

// DeleteTag deletes a tag as DELETE /v2/<repo>/manifests/<tag> does.
func (s *UISource) DeleteTag(ctx context.Context, user, repo, tag string) error {
	return s.dispatchDelete(ctx, user, repo, tag)
}

// DeleteManifest deletes a manifest (and the tags on it) as DELETE
// /v2/<repo>/manifests/<digest> does.
func (s *UISource) DeleteManifest(ctx context.Context, user, repo, dgst string) error {
	return s.dispatchDelete(ctx, user, repo, dgst)
}

// dispatchDelete sends a DELETE through the layers below authentication. The
// UI decided the user may delete, by the same policy.
func (s *UISource) dispatchDelete(ctx context.Context, user, repo, ref string) error {
	p := "/v2/" + repo + "/manifests/" + ref
	ri := &requestInfo{id: newRequestID(), route: parseRoute(p), user: user}
	if ri.route.Kind != RouteManifest || ri.route.Invalid != nil {
		return ui.ErrNotFound
	}
	req, err := http.NewRequestWithContext(context.WithValue(ctx, requestInfoKey{}, ri), http.MethodDelete, p, http.NoBody)
	if err != nil {
		return err
	}
	req.Host, req.RemoteAddr = "localhost", "127.0.0.1:0"
	rec := &uiRecorder{header: http.Header{}}
	s.core.ServeHTTP(rec, req)
	switch rec.status {
	case http.StatusAccepted:
		s.log.Info("deleted through the UI", "user", user, "repository", repo, "reference", ref, "request_id", ri.id)
		s.changed()
		return nil
	case http.StatusNotFound:
		return ui.ErrNotFound
	}
	var body struct {
		Errors []struct{ Code, Message string }
	}
	msg := fmt.Sprintf("status %d", rec.status)
	if json.Unmarshal(rec.body.Bytes(), &body) == nil && len(body.Errors) > 0 {
		msg = body.Errors[0].Code + ": " + body.Errors[0].Message
	}
	return fmt.Errorf("delete %s/%s: %s", repo, ref, msg)
}

// changed tells the usage statistics that the store changed. The metrics
// layer tells them of every API write; the UI's deletes enter the stack
// below it.
func (s *UISource) changed() {
	s.reg.mu.Lock()
	st := s.reg.stats
	s.reg.mu.Unlock()
	if st != nil {
		st.invalidate()
	}
}

// uiRecorder is a ResponseWriter for the UI's inner requests.
type uiRecorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *uiRecorder) Header() http.Header { return w.header }
func (w *uiRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}
func (w *uiRecorder) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	if w.body.Len() < 64<<10 {
		w.body.Write(b)
	}
	return len(b), nil
}

// DeleteRepository deletes every manifest of repo (each as an API DELETE
// would), then, while no manifest push to repo is in flight, removes the
// repository from the catalog if nothing was pushed meanwhile. Blobs and their
// links stay for garbage collection: a push that uploaded its layers and is
// about to send its manifest must still find them.
func (s *UISource) DeleteRepository(ctx context.Context, user, repo string) (ui.RepositoryDeletion, error) {
	var res ui.RepositoryDeletion
	if validateName(repo) != nil {
		return res, ui.ErrNotFound
	}
	if _, err := s.eng.driver.Stat(ctx, repoManifestsPath(repo)); err != nil {
		if isPathNotFound(err) {
			return res, ui.ErrNotFound
		}
		return res, err
	}
	var revs []digest.Digest
	if err := s.forEachRevision(ctx, repo, func(d digest.Digest, _ time.Time) error {
		revs = append(revs, d)
		return nil
	}); err != nil {
		return res, err
	}
	for _, d := range revs {
		switch err := s.dispatchDelete(ctx, user, repo, d.String()); {
		case err == nil:
			res.Manifests++
		case errors.Is(err, ui.ErrNotFound):
		default:
			return res, err
		}
	}

	unlock := s.gate.lock(repo)
	defer unlock()
	// Under the gate no manifest push to repo runs: what is here now was
	// pushed while the manifests were being deleted, and stays.
	tags, err := s.readTags(ctx, repo)
	if err != nil && !errors.Is(err, ui.ErrNotFound) {
		return res, err
	}
	for _, t := range tags {
		if _, err := s.Manifest(ctx, repo, t.Digest); err == nil {
			res.Remaining = append(res.Remaining, t.Name)
		}
	}
	var untagged int
	if err := s.forEachRevision(ctx, repo, func(digest.Digest, time.Time) error {
		untagged++
		return nil
	}); err != nil {
		return res, err
	}
	if len(res.Remaining) == 0 && untagged > 0 {
		res.Remaining = append(res.Remaining, fmt.Sprintf("%d untagged manifest(s)", untagged))
	}
	if len(res.Remaining) == 0 {
		if err := s.eng.driver.Delete(ctx, repoManifestsPath(repo)); err != nil && !isPathNotFound(err) {
			return res, fmt.Errorf("remove %s from the catalog: %w", repo, err)
		}
		s.log.Info("repository deleted through the UI", "user", user, "repository", repo, "manifests", res.Manifests)
		s.changed()
	}
	s.mu.Lock()
	s.staleLocked(repo)
	s.forgetNamesLocked()
	s.mu.Unlock()
	return res, nil
}

// Policy is the registry's auth policy.
func (s *UISource) Policy() ui.Policy {
	if s.authOpts == nil {
		return ui.PolicyNone
	}
	switch s.authOpts.Policy {
	case auth.PolicyPush:
		return ui.PolicyPush
	case auth.PolicyAll:
		return ui.PolicyAll
	}
	return ui.PolicyNone
}

// Login checks a password through the login gate the API uses, with its
// failed-login budgets: the UI is no way around them.
func (s *UISource) Login(ctx context.Context, client, user, password string) (ui.Identity, error) {
	if s.login == nil || s.authOpts == nil {
		return ui.Identity{}, ui.ErrBadCredentials
	}
	before, ok := s.stamp(user)
	good, retry, err := s.login.check(ctx, client, user, password)
	switch {
	case retry > 0:
		return ui.Identity{}, &ui.RetryError{After: retry}
	case err != nil:
		return ui.Identity{}, fmt.Errorf("check password: %w", err)
	case !good || !ok:
		return ui.Identity{}, ui.ErrBadCredentials
	}
	// A password changed during the check would make a session of the old one.
	if after, ok := s.stamp(user); !ok || after != before {
		return ui.Identity{}, ui.ErrBadCredentials
	}
	return ui.Identity{User: user, Stamp: before}, nil
}

// Current reports whether the user still exists with the same password.
func (s *UISource) Current(id ui.Identity) bool {
	stamp, ok := s.stamp(id.User)
	return ok && id.Stamp != "" && stamp == id.Stamp
}

// stamp identifies a user's current password (the verifier's credential
// stamp, as tokens carry it), without revealing it.
func (s *UISource) stamp(user string) (string, bool) {
	if s.authOpts == nil || s.authOpts.Verifier == nil {
		return "", false
	}
	stamp, ok, err := s.authOpts.Verifier.Stamp(user)
	if err != nil {
		s.log.Warn("ui: read users", "err", err)
		return "", false
	}
	return stamp, ok
}

// uiStatsWait bounds how long the storage page waits for statistics that
// count the latest writes; past it, it shows the last ones (marked pending).
const uiStatsWait = 2 * time.Second

// Stats is the registry's usage statistics, counting the latest writes when
// they can be had within uiStatsWait.
func (s *UISource) Stats(ctx context.Context) (registryapi.Stats, error) {
	ctx, cancel := context.WithTimeout(ctx, uiStatsWait)
	defer cancel()
	return s.reg.Stats(ctx, true)
}

// Quota is the quotas' usage and the disk of the data directory.
func (s *UISource) Quota(ctx context.Context) (registryapi.QuotaStatus, error) {
	return s.reg.QuotaStatus(ctx)
}

// Health runs the detailed health checks, as GET /health does.
func (s *UISource) Health(ctx context.Context) registryapi.Health {
	return s.reg.DetailedHealth(ctx)
}

// GC runs one garbage collection, the one POST /api/v1/gc runs. It goes on
// when the page that asked is closed: a run is never cut short by a browser.
func (s *UISource) GC(ctx context.Context, user string, req registryapi.GCRequest) (registryapi.GCResult, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Minute)
	defer cancel()
	res, err := s.reg.GC(ctx, req)
	if errors.Is(err, ErrGCRunning) {
		return res, ui.ErrBusy
	}
	if err == nil && !req.DryRun {
		s.log.Info("garbage collection run through the UI", "user", user, "untagged", req.Untagged,
			"manifests", len(res.Manifests), "blobs", len(res.Blobs), "bytes_freed", res.BytesFreed)
	}
	return res, err
}

// LastGC is the last garbage collection that was not a dry run.
func (s *UISource) LastGC() *registryapi.GCResult { return s.reg.LastGC() }

// repoGate lets a repository be emptied with no manifest push to it in flight:
// manifest PUTs hold a repository's gate shared, deleting the repository holds
// it alone for the moment it checks that it is empty and removes it.
type repoGate struct {
	mu    sync.Mutex
	locks map[string]*gateLock
}

type gateLock struct {
	rw   sync.RWMutex
	refs int
}

func (g *repoGate) acquire(repo string) *gateLock {
	g.mu.Lock()
	defer g.mu.Unlock()
	l := g.locks[repo]
	if l == nil {
		l = &gateLock{}
		g.locks[repo] = l
	}
	l.refs++
	return l
}

func (g *repoGate) release(repo string, l *gateLock) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if l.refs--; l.refs == 0 {
		delete(g.locks, repo)
	}
}

// lock holds repo's gate alone; it returns the unlock.
func (g *repoGate) lock(repo string) func() {
	l := g.acquire(repo)
	l.rw.Lock()
	return func() {
		l.rw.Unlock()
		g.release(repo, l)
	}
}

// wrap is the gate's layer: manifest PUTs hold their repository's gate shared.
func (g *repoGate) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt := routeOf(r)
		if rt.Kind != RouteManifest || r.Method != http.MethodPut {
			next.ServeHTTP(w, r)
			return
		}
		l := g.acquire(rt.Repository)
		l.rw.RLock()
		defer func() {
			l.rw.RUnlock()
			g.release(rt.Repository, l)
		}()
		next.ServeHTTP(w, r)
	})
}

// byteCache keeps immutable content (manifests, configs) by digest, least
// recently used first out, within a byte budget.
type byteCache struct {
	mu     sync.Mutex
	budget int
	used   int
	order  *list.List
	items  map[digest.Digest]*list.Element
}

type byteEntry struct {
	key digest.Digest
	val []byte
}

func newByteCache(budget int) *byteCache {
	return &byteCache{budget: budget, order: list.New(), items: map[digest.Digest]*list.Element{}}
}

func (c *byteCache) get(k digest.Digest) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[k]; ok {
		c.order.MoveToFront(e)
		return e.Value.(*byteEntry).val, true
	}
	return nil, false
}

func (c *byteCache) put(k digest.Digest, v []byte) {
	if len(v) > c.budget/16 {
		return // one big manifest must not flush everything else
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[k]; ok {
		return
	}
	c.items[k] = c.order.PushFront(&byteEntry{k, v})
	c.used += len(v)
	for c.used > c.budget {
		last := c.order.Back()
		c.order.Remove(last)
		e := last.Value.(*byteEntry)
		delete(c.items, e.key)
		c.used -= len(e.val)
	}
}
