package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/idpbuilder/idpbuilder/internal/atomicfile"
)

// Referrers pagination: a page holds at most this many descriptors, and stays
// under the manifest size clients accept.
const (
	referrersPageMax   = 1000
	referrersPageBytes = maxManifestSize - 64<<10
)

// referrersIndex records, for every subject digest of every repository, the
// descriptors of the manifests that name it as their subject.
//
// It lives under the data dir's own state (.idpbuilder/referrers), one small
// JSON file per subject, each replaced atomically. The "complete" marker says
// the files cover everything stored: when it is missing (first start, or the
// index was deleted) the index is rebuilt by a scan of the stored manifests,
// and a damaged file makes its repository be rescanned.
type referrersIndex struct {
	dir string
	eng *engine
	log *slog.Logger

	mu    sync.Mutex // serialises changes: read, modify, write of one file
	cache sync.Map   // subjectKey -> []v1.Descriptor, sorted by digest
}

type subjectFile struct {
	Subject   digest.Digest   `json:"subject"`
	Referrers []v1.Descriptor `json:"referrers"`
}

const referrersMarker = "complete"

func newReferrersIndex(dataDir string, eng *engine, log *slog.Logger) *referrersIndex {
	return &referrersIndex{dir: filepath.Join(dataDir, metaDir, "referrers"), eng: eng, log: log}
}

// open makes sure the index covers the stored manifests, rebuilding it if not.
func (x *referrersIndex) open(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(x.dir, referrersMarker)); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("referrers index: %w", err)
	}
	start := time.Now()
	x.log.Debug("referrers index missing: rebuilding it from the stored manifests")
	if err := os.RemoveAll(filepath.Join(x.dir, "repositories")); err != nil {
		return fmt.Errorf("referrers index: %w", err)
	}
	repos, refs := 0, 0
	err := x.eng.forEachRepository(ctx, func(repo string) error {
		n, err := x.rebuildRepository(ctx, repo)
		repos++
		refs += n
		return err
	})
	if err != nil {
		return fmt.Errorf("rebuild referrers index: %w", err)
	}
	if err := os.MkdirAll(x.dir, 0o700); err != nil {
		return fmt.Errorf("referrers index: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(x.dir, referrersMarker), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o600); err != nil {
		return fmt.Errorf("referrers index: %w", err)
	}
	lvl := slog.LevelDebug // a new data dir: nothing to say
	if repos > 0 {
		lvl = slog.LevelInfo
	}
	x.log.Log(ctx, lvl, "referrers index rebuilt from the stored manifests", "repositories", repos, "referrers", refs, "duration", time.Since(start).Round(time.Millisecond))
	return nil
}

// rebuildRepository rewrites a repository's files from its stored manifests.
func (x *referrersIndex) rebuildRepository(ctx context.Context, repo string) (int, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.rebuildRepositoryLocked(ctx, repo)
}

func (x *referrersIndex) rebuildRepositoryLocked(ctx context.Context, repo string) (int, error) {
	found := map[digest.Digest]map[digest.Digest]v1.Descriptor{}
	err := x.eng.forEachManifest(ctx, repo, func(dgst digest.Digest) error {
		mediaType, payload, ok, err := x.eng.manifest(ctx, repo, dgst)
		if err != nil || !ok {
			return err
		}
		doc, e := parseManifest(payload)
		if e != nil || doc.Subject == nil {
			return nil
		}
		// A manifest pushed by a sha512 digest is stored under its sha256 with
		// the sha512 as an alias: record it once, under the alias it was pushed by.
		if dgst.Algorithm() == digest.Canonical {
			for _, alg := range []digest.Algorithm{digest.SHA384, digest.SHA512} {
				if ok, _ := x.eng.linkExists(ctx, manifestRevisionLinkPath(repo, alg.FromBytes(payload))); ok {
					return nil
				}
			}
		}
		if doc.MediaType != "" {
			mediaType = doc.MediaType
		}
		d := referrerDescriptor(dgst, mediaType, payload, doc.artifactType(), doc.Annotations)
		if found[doc.Subject.Digest] == nil {
			found[doc.Subject.Digest] = map[digest.Digest]v1.Descriptor{}
		}
		found[doc.Subject.Digest][dgst] = d
		return nil
	})
	if err != nil {
		return 0, err
	}
	if err := os.RemoveAll(x.repoDir(repo)); err != nil {
		return 0, err
	}
	// Forget cached lists of this repository (subjects that lost all their
	// referrers included); writeLocked caches the rebuilt ones.
	x.cache.Range(func(k, _ any) bool {
		if strings.HasPrefix(k.(string), repo+"@") {
			x.cache.Delete(k)
		}
		return true
	})
	n := 0
	for subject, refs := range found {
		list := make([]v1.Descriptor, 0, len(refs))
		for _, d := range refs {
			list = append(list, d)
		}
		n += len(list)
		if err := x.writeLocked(repo, subject, list); err != nil {
			return n, err
		}
	}
	return n, nil
}

func referrerDescriptor(dgst digest.Digest, mediaType string, payload []byte, artifactType string, annotations map[string]string) v1.Descriptor {
	return v1.Descriptor{MediaType: mediaType, Digest: dgst, Size: int64(len(payload)), ArtifactType: artifactType, Annotations: annotations}
}

func (x *referrersIndex) repoDir(repo string) string {
	return filepath.Join(x.dir, "repositories", filepath.FromSlash(repo), "_subjects")
}

func (x *referrersIndex) file(repo string, subject digest.Digest) string {
	return filepath.Join(x.repoDir(repo), subject.Algorithm().String(), subject.Encoded()+".json")
}

func subjectKey(repo string, subject digest.Digest) string { return repo + "@" + subject.String() }

// list returns the referrers of subject, sorted by digest.
func (x *referrersIndex) list(ctx context.Context, repo string, subject digest.Digest) ([]v1.Descriptor, error) {
	key := subjectKey(repo, subject)
	if v, ok := x.cache.Load(key); ok {
		return v.([]v1.Descriptor), nil
	}
	// Read under the lock: a read that raced a write could cache a stale list.
	x.mu.Lock()
	defer x.mu.Unlock()
	if v, ok := x.cache.Load(key); ok {
		return v.([]v1.Descriptor), nil
	}
	list, err := x.readRepairingLocked(ctx, repo, subject)
	if err != nil {
		return nil, err
	}
	x.cache.Store(key, list)
	return list, nil
}

// readRepairingLocked reads a subject's file; a damaged one makes the
// repository's part of the index be rebuilt first.
func (x *referrersIndex) readRepairingLocked(ctx context.Context, repo string, subject digest.Digest) ([]v1.Descriptor, error) {
	list, err := x.read(repo, subject)
	var damaged *damagedIndexError
	if errors.As(err, &damaged) {
		x.log.Warn("referrers index damaged: rebuilding the repository's part from its manifests", "repository", repo, "err", err)
		if _, err := x.rebuildRepositoryLocked(ctx, repo); err != nil {
			return nil, fmt.Errorf("rebuild referrers of %s: %w", repo, err)
		}
		list, err = x.read(repo, subject)
	}
	return list, err
}

type damagedIndexError struct{ err error }

func (e *damagedIndexError) Error() string { return "damaged referrers index file: " + e.err.Error() }

func (x *referrersIndex) read(repo string, subject digest.Digest) ([]v1.Descriptor, error) {
	b, err := os.ReadFile(x.file(repo, subject))
	if errors.Is(err, fs.ErrNotExist) {
		return []v1.Descriptor{}, nil
	}
	if err != nil {
		return nil, err
	}
	var f subjectFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, &damagedIndexError{err}
	}
	if f.Subject != subject {
		return nil, &damagedIndexError{fmt.Errorf("file for %s names subject %q", subject, f.Subject)}
	}
	if f.Referrers == nil {
		f.Referrers = []v1.Descriptor{}
	}
	return f.Referrers, nil
}

// writeLocked replaces a subject's file (or removes it when list is empty).
func (x *referrersIndex) writeLocked(repo string, subject digest.Digest, list []v1.Descriptor) error {
	slices.SortFunc(list, func(a, b v1.Descriptor) int { return strings.Compare(string(a.Digest), string(b.Digest)) })
	path := x.file(repo, subject)
	if len(list) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	} else {
		b, err := json.Marshal(subjectFile{Subject: subject, Referrers: list})
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return err
		}
		if err := atomicfile.Write(path, b, 0o600); err != nil {
			return err
		}
	}
	x.cache.Store(subjectKey(repo, subject), list)
	return nil
}

// update applies change to a subject's list under the lock.
func (x *referrersIndex) update(ctx context.Context, repo string, subject digest.Digest, change func([]v1.Descriptor) []v1.Descriptor) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	list, err := x.readRepairingLocked(ctx, repo, subject)
	if err != nil {
		return err
	}
	return x.writeLocked(repo, subject, change(slices.Clone(list)))
}

// onManifest is the index's manifest listener.
func (x *referrersIndex) onManifest(ctx context.Context, ev ManifestEvent) error {
	if ev.Subject == nil {
		return nil
	}
	switch ev.Action {
	case ManifestPushed:
		d := referrerDescriptor(ev.Digest, ev.MediaType, ev.Payload, ev.ArtifactType, ev.Annotations)
		return x.update(ctx, ev.Repository, ev.Subject.Digest, func(list []v1.Descriptor) []v1.Descriptor {
			list = slices.DeleteFunc(list, func(e v1.Descriptor) bool { return e.Digest == d.Digest })
			return append(list, d)
		})
	case ManifestDeleted:
		gone := map[digest.Digest]bool{ev.Digest: true}
		for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA384, digest.SHA512} {
			gone[alg.FromBytes(ev.Payload)] = true
		}
		return x.update(ctx, ev.Repository, ev.Subject.Digest, func(list []v1.Descriptor) []v1.Descriptor {
			return slices.DeleteFunc(list, func(e v1.Descriptor) bool { return gone[e.Digest] })
		})
	}
	return nil
}

// serve answers GET /v2/<name>/referrers/<digest>: an image index of the
// subject's referrers, optionally filtered by ?artifactType=, paginated with a
// Link header past a page.
func (x *referrersIndex) serve(w http.ResponseWriter, r *http.Request, rt Route) {
	all, err := x.list(r.Context(), rt.Repository, rt.Digest)
	if err != nil {
		x.log.Error("read referrers index", "repository", rt.Repository, "subject", rt.Digest, "err", err)
		writeOCIError(w, http.StatusInternalServerError, codeUnknown, "cannot read the referrers index")
		return
	}
	q := r.URL.Query()
	n := referrersPageMax
	if s := q.Get("n"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			writeOCIError(w, http.StatusBadRequest, codePaginationInvalid, "n must be a positive number")
			return
		}
		n = min(v, referrersPageMax)
	}
	list := all
	if at := q.Get("artifactType"); at != "" {
		list = slices.DeleteFunc(slices.Clone(all), func(d v1.Descriptor) bool { return d.ArtifactType != at })
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	if last := q.Get("last"); last != "" {
		i, _ := slices.BinarySearchFunc(list, last, func(d v1.Descriptor, t string) int { return strings.Compare(string(d.Digest), t) })
		for i < len(list) && string(list[i].Digest) <= last {
			i++
		}
		list = list[i:]
	}
	// One page: up to n descriptors, shrunk until it fits the size clients
	// accept for a manifest (it is one marshal unless annotations are huge).
	page := min(n, len(list))
	var body []byte
	for {
		manifests := []v1.Descriptor{}
		if page > 0 {
			manifests = list[:page:page]
		}
		var err error
		body, err = json.Marshal(v1.Index{
			Versioned: specs.Versioned{SchemaVersion: 2},
			MediaType: v1.MediaTypeImageIndex,
			Manifests: manifests,
		})
		if err != nil {
			writeOCIError(w, http.StatusInternalServerError, codeUnknown, "cannot encode the referrers list")
			return
		}
		if len(body) <= referrersPageBytes || page <= 1 {
			break
		}
		page = max(1, int(int64(page)*referrersPageBytes/int64(len(body)))-1)
	}
	if page < len(list) {
		next := url.Values{}
		next.Set("n", strconv.Itoa(n))
		next.Set("last", string(list[page-1].Digest))
		if at := q.Get("artifactType"); at != "" {
			next.Set("artifactType", at)
		}
		w.Header().Set("Link", fmt.Sprintf(`<%s?%s>; rel="next"`, r.URL.Path, next.Encode()))
	}
	w.Header().Set("Content-Type", v1.MediaTypeImageIndex)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}
