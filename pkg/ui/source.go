package ui

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/idpbuilder/idpbuilder/pkg/registryapi"
)

// Source is the registry as the UI sees it: the UI never talks to the registry
// over HTTP and never opens its storage itself. pkg/registry implements it
// (registry.UISource) over the engine's storage and the referrers index, and
// sends deletes through its own handler stack so every listener sees them.
type Source interface {
	// Repositories lists the name of every repository, sorted.
	Repositories(ctx context.Context) ([]string, error)
	// Repository summarizes one repository; ErrNotFound when there is none.
	Repository(ctx context.Context, name string) (Repository, error)
	// Tags lists a repository's tags; ErrNotFound when there is no such repository.
	Tags(ctx context.Context, repo string) ([]Tag, error)
	// Manifest reads a manifest by tag or digest; ErrNotFound when it is not stored.
	Manifest(ctx context.Context, repo, reference string) (Manifest, error)
	// Blob reads a blob of repo (an image config) when it is at most limit bytes;
	// ErrNotFound when it is not there, ErrTooLarge when it is bigger.
	Blob(ctx context.Context, repo, digest string, limit int64) ([]byte, error)
	// Referrers lists the manifests whose subject is digest.
	Referrers(ctx context.Context, repo, digest string) ([]Descriptor, error)

	// DeleteTag, DeleteManifest and DeleteRepository change the store as the
	// registry's own DELETE requests do; user is who asked (for the log).
	DeleteTag(ctx context.Context, user, repo, tag string) error
	DeleteManifest(ctx context.Context, user, repo, digest string) error
	DeleteRepository(ctx context.Context, user, repo string) (RepositoryDeletion, error)

	// Policy is who must log in: PolicyNone, PolicyPush or PolicyAll.
	Policy() Policy
	// Login checks a password through the registry's own login gate (its
	// failed-login budgets included). client is the caller's IP address.
	Login(ctx context.Context, client, user, password string) (Identity, error)
	// Current reports whether an identity from Login still holds: the user
	// exists and has the same password.
	Current(id Identity) bool

	// Stats is the registry's usage statistics, as recomputed in the
	// background (Pending says a refresh is on its way).
	Stats(ctx context.Context) (registryapi.Stats, error)
	// Quota is the storage quotas' usage and the disk of the data directory.
	Quota(ctx context.Context) (registryapi.QuotaStatus, error)
	// Health runs the registry's detailed health checks.
	Health(ctx context.Context) registryapi.Health
	// GC runs one garbage collection (a dry run deletes nothing) for user;
	// ErrBusy when one is running.
	GC(ctx context.Context, user string, req registryapi.GCRequest) (registryapi.GCResult, error)
	// LastGC is the last garbage collection that was not a dry run; nil before one.
	LastGC() *registryapi.GCResult
}

// Policy says who must log in.
type Policy string

// The registry's auth policies.
const (
	PolicyNone Policy = "none" // nobody
	PolicyPush Policy = "push" // pushing and deleting need a user
	PolicyAll  Policy = "all"  // everything needs a user
)

// Repository is one repository of the list.
type Repository struct {
	Name string
	Tags int
	// Size is the bytes of every manifest and blob the repository's manifests
	// reference, each counted once.
	Size int64
	// LastPush is when a tag or manifest was last written (zero when unknown).
	LastPush time.Time
}

// Tag is a tag and the manifest it points at.
type Tag struct {
	Name   string
	Digest string
	// Pushed is when the tag was last pointed at its manifest.
	Pushed time.Time
}

// Manifest is a stored manifest as pushed.
type Manifest struct {
	Digest    string
	MediaType string
	Payload   []byte
}

// Descriptor describes a referrer (as the referrers API lists it).
type Descriptor struct {
	MediaType    string
	Digest       string
	Size         int64
	ArtifactType string
	Annotations  map[string]string
}

// Identity is a logged-in user. Stamp changes when the user's password does.
type Identity struct {
	User  string
	Stamp string
}

// RepositoryDeletion is what deleting a repository did.
type RepositoryDeletion struct {
	Manifests int // manifests deleted
	// Remaining lists tags pushed while the repository was being deleted; the
	// repository stays when it is not empty.
	Remaining []string
}

// Errors a Source returns.
var (
	ErrNotFound       = errors.New("not found")
	ErrTooLarge       = errors.New("too large to show")
	ErrBadCredentials = errors.New("invalid user name or password")
	ErrBusy           = errors.New("a garbage collection is already running")
)

// RetryError is a login refused by a failed-login budget before any check.
type RetryError struct{ After time.Duration }

func (e *RetryError) Error() string {
	return fmt.Sprintf("too many failed logins: try again in %s", e.After.Round(time.Second))
}
