package registry

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/configuration"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/idpbuilder/idpbuilder/internal/atomicfile"
)

// engine is distribution: its HTTP app, plus our own handle on the same
// storage. distribution keeps its driver private, so features it lacks
// (referrers, sha512 aliases, and later GC and quotas) open their own.
type engine struct {
	app    distributionApp
	driver storagedriver.StorageDriver
	ns     distribution.Namespace
}

func openEngine(ctx context.Context, opts Options, secret string) (*engine, error) {
	app, err := newApp(ctx, distributionConfig(opts, secret))
	if err != nil {
		return nil, err
	}
	drv, ns, err := openStorage(ctx, opts.DataDir)
	if err != nil {
		_ = app.Shutdown()
		return nil, fmt.Errorf("open storage: %w", err)
	}
	return &engine{app: app, driver: drv, ns: ns}, nil
}

func (e *engine) close() error { return e.app.Shutdown() }

// repository opens a repository of our own storage handle.
func (e *engine) repository(ctx context.Context, name string) (distribution.Repository, error) {
	named, err := reference.WithName(name)
	if err != nil {
		return nil, err
	}
	return e.ns.Repository(ctx, named)
}

// manifest reads a stored manifest's payload; ok is false when it is not stored.
func (e *engine) manifest(ctx context.Context, repo string, dgst digest.Digest) (mediaType string, payload []byte, ok bool, err error) {
	r, err := e.repository(ctx, repo)
	if err != nil {
		return "", nil, false, err
	}
	ms, err := r.Manifests(ctx)
	if err != nil {
		return "", nil, false, err
	}
	m, err := ms.Get(ctx, dgst)
	if err != nil {
		var unknown distribution.ErrManifestUnknownRevision
		if errors.As(err, &unknown) || errors.As(err, new(distribution.ErrManifestUnknown)) || isPathNotFound(err) {
			return "", nil, false, nil
		}
		return "", nil, false, err
	}
	mt, p, err := m.Payload()
	return mt, p, err == nil, err
}

// blobStat stats a blob linked into repo; ok is false when it is not there.
// The descriptor's digest is the canonical (sha256) one the blob is stored
// under, also when dgst is an alias such as its sha512.
func (e *engine) blobStat(ctx context.Context, repo string, dgst digest.Digest) (d v1.Descriptor, ok bool, err error) {
	r, err := e.repository(ctx, repo)
	if err != nil {
		return v1.Descriptor{}, false, err
	}
	d, err = r.Blobs(ctx).Stat(ctx, dgst)
	if errors.Is(err, distribution.ErrBlobUnknown) || isPathNotFound(err) {
		return v1.Descriptor{}, false, nil
	}
	if err != nil {
		return v1.Descriptor{}, false, err
	}
	return d, true, nil
}

// forEachRepository calls fn with every repository name.
func (e *engine) forEachRepository(ctx context.Context, fn func(string) error) error {
	en, ok := e.ns.(distribution.RepositoryEnumerator)
	if !ok {
		return errors.New("storage cannot enumerate repositories")
	}
	err := en.Enumerate(ctx, fn)
	if isPathNotFound(err) {
		return nil // no repository yet
	}
	return err
}

// forEachManifest calls fn with the digest of every manifest revision of repo.
func (e *engine) forEachManifest(ctx context.Context, repo string, fn func(digest.Digest) error) error {
	r, err := e.repository(ctx, repo)
	if err != nil {
		return err
	}
	ms, err := r.Manifests(ctx)
	if err != nil {
		return err
	}
	en, ok := ms.(distribution.ManifestEnumerator)
	if !ok {
		return errors.New("storage cannot enumerate manifests")
	}
	err = en.Enumerate(ctx, fn)
	if isPathNotFound(err) {
		return nil
	}
	return err
}

func isPathNotFound(err error) bool {
	return err != nil && errors.As(err, new(storagedriver.PathNotFoundError))
}

// The layout of links in distribution's tree (registry/storage/paths.go, which
// keeps it private). An alias of a stored blob or manifest under another digest
// algorithm is one more link file naming the canonical digest; distribution
// writes such links itself for blobs uploaded with ?digest=sha512:…, and reads
// them for manifests. TestLinkLayoutMatchesDistribution pins the layout.
const (
	storageRoot      = "/docker/registry/v2"
	repositoriesRoot = storageRoot + "/repositories"
)

// blobDataPath is where a blob's content is kept, under its canonical digest.
func blobDataPath(dgst digest.Digest) string {
	enc := dgst.Encoded()
	return fmt.Sprintf("%s/blobs/%s/%s/%s/data", storageRoot, dgst.Algorithm(), enc[:2], enc)
}

func layerLinkPath(repo string, dgst digest.Digest) string {
	return fmt.Sprintf("%s/%s/_layers/%s/%s/link", repositoriesRoot, repo, dgst.Algorithm(), dgst.Encoded())
}

func manifestRevisionLinkPath(repo string, dgst digest.Digest) string {
	return fmt.Sprintf("%s/%s/_manifests/revisions/%s/%s/link", repositoriesRoot, repo, dgst.Algorithm(), dgst.Encoded())
}

// uploadDirPath is an upload's directory: its data, start time and hash states.
func uploadDirPath(repo, id string) string {
	return fmt.Sprintf("%s/%s/_uploads/%s", repositoriesRoot, repo, id)
}

// uploadSize is how many bytes an upload holds so far (0 when it has none or
// is gone).
func (e *engine) uploadSize(ctx context.Context, repo, id string) (int64, error) {
	fi, err := e.driver.Stat(ctx, uploadDirPath(repo, id)+"/data")
	if isPathNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// cancelUpload deletes an upload, data and all, as distribution's own
// cancel does once it has closed its writer (its Cancel also stores a hash
// state first, which a full disk cannot take, and logs an error for the
// writer it reopened). An upload that is gone already is no error.
func (e *engine) cancelUpload(ctx context.Context, repo, id string) error {
	if err := e.driver.Delete(ctx, uploadDirPath(repo, id)); err != nil && !isPathNotFound(err) {
		return err
	}
	return nil
}

// link writes an alias link: path then resolves to canonical.
func (e *engine) link(ctx context.Context, path string, canonical digest.Digest) error {
	return e.driver.PutContent(ctx, path, []byte(canonical.String()))
}

// linkExists reports whether an alias link is there.
func (e *engine) linkExists(ctx context.Context, path string) (bool, error) {
	_, err := e.driver.Stat(ctx, path)
	if isPathNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// distributionApp is distribution's HTTP app (handlers.App), named by what we
// use of it so that only engine_distribution.go links distribution's server.
type distributionApp interface {
	http.Handler
	Shutdown() error
}

// distributionConfig builds in code what configuration.Parse would produce from a
// file, including the defaults Parse fills in (without them the catalog is empty).
func distributionConfig(opts Options, secret string) *configuration.Configuration {
	cfg := &configuration.Configuration{}
	cfg.Log.Level = "warn"
	cfg.Catalog.MaxEntries = 1000
	cfg.Tags.MaxTags = 1000
	cfg.HTTP.Secret = secret
	cfg.HTTP.Addr = opts.Addr
	cfg.Storage = configuration.Storage{
		"filesystem": configuration.Parameters{"rootdirectory": opts.DataDir},
		"delete":     configuration.Parameters{"enabled": true},
		"maintenance": configuration.Parameters{
			// NewApp type-asserts these to map[any]any.
			"uploadpurging": map[any]any{
				"enabled":  true,
				"age":      opts.UploadPurgeAge.String(),
				"interval": purgeInterval(opts.UploadPurgeAge).String(),
				"dryrun":   false,
			},
		},
		// No blob descriptor cache: it would answer for blobs garbage
		// collection deleted behind its back (distribution's own GC has this
		// bug: 200 with an empty body). Stat on local disk is cheap.
	}
	// Layers with "urls" (non-distributable layers, e.g. Windows base layers) are
	// legitimate OCI content; without an allow list distribution rejects them with a 500.
	cfg.Validation.Manifests.URLs.Allow = []string{`^https?://`}
	return cfg
}

func purgeInterval(age time.Duration) time.Duration {
	if iv := age / 7; iv < 24*time.Hour {
		return max(iv, time.Minute)
	}
	return 24 * time.Hour
}

// metaDir holds idpbuilder's own files inside the data dir, beside distribution's "docker/".
const metaDir = ".idpbuilder"

// prepareDataDir creates the data dir, proves it writable and returns the upload
// secret. The secret is kept on disk so uploads interrupted by a restart can resume
// (distribution signs upload state with it).
func prepareDataDir(dir string) (string, error) {
	if dir == "" {
		return "", &DataDirError{Dir: dir, Err: errors.New("no directory given")}
	}
	meta := filepath.Join(dir, metaDir)
	if err := os.MkdirAll(meta, 0o700); err != nil {
		return "", &DataDirError{Dir: dir, Err: err}
	}
	if err := probeWritable(meta); err != nil {
		return "", &DataDirError{Dir: dir, Err: err}
	}
	path := filepath.Join(meta, "http-secret")
	b, err := os.ReadFile(path)
	if err == nil && len(b) >= 16 {
		return string(b), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", &DataDirError{Dir: dir, Err: err}
	}
	secret := rand.Text()
	if err := atomicfile.Write(path, []byte(secret), 0o600); err != nil {
		return "", &DataDirError{Dir: dir, Err: err}
	}
	return secret, nil
}

func probeWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return err
	}
	name := f.Name()
	_, werr := f.Write([]byte("ok"))
	cerr := f.Close()
	rerr := os.Remove(name)
	return errors.Join(werr, cerr, rerr)
}
