package registryapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"
)

// GCPath is the garbage collection endpoint: POST a GCRequest, get a GCResult.
const GCPath = "/api/v1/gc"

// Error codes of the admin API, in the OCI error body
// {"errors":[{"code":…,"message":…}]}.
const (
	CodeInvalidRequest = "INVALID_REQUEST" // 400: the request body is wrong
	CodeGCRunning      = "GC_RUNNING"      // 409: another run is not finished
	CodeGCFailed       = "GC_FAILED"       // 500: the run stopped; the result says how far it got
)

// DefaultGCGrace is how old content must be before garbage collection may
// delete it, unless the registry or the request says otherwise.
const DefaultGCGrace = time.Hour

// GCRequest asks for one garbage collection run.
type GCRequest struct {
	// DryRun reports what would be deleted and deletes nothing.
	DryRun bool `json:"dry_run,omitempty"`
	// Untagged deletes manifests that no tag reaches (directly, through an
	// index, or as a referrer of such a manifest).
	Untagged bool `json:"untagged,omitempty"`
	// Grace overrides the registry's grace period; nil keeps it.
	Grace *Duration `json:"grace,omitempty"`
	// KeepTags, when > 0, deletes all but the KeepTags most recently pushed
	// tags of each repository matching Repo before collecting.
	KeepTags int `json:"keep_tags,omitempty"`
	// Repo is a glob of repository names for KeepTags: "*" matches within one
	// path component, "**" any number of components ("ci/*", "team/**").
	// Empty means every repository.
	Repo string `json:"repo,omitempty"`
}

// Validate checks the request's fields.
func (r GCRequest) Validate() error {
	if r.Grace != nil && *r.Grace < 0 {
		return fmt.Errorf("grace %s is negative", time.Duration(*r.Grace))
	}
	if r.KeepTags < 0 {
		return fmt.Errorf("keep_tags %d is negative", r.KeepTags)
	}
	if r.Repo != "" {
		if r.KeepTags == 0 {
			return errors.New("repo selects the repositories for keep_tags: give keep_tags too")
		}
		if err := ValidateRepoGlob(r.Repo); err != nil {
			return err
		}
	}
	return nil
}

// ValidateRepoGlob checks a repository glob.
func ValidateRepoGlob(glob string) error {
	if glob == "" {
		return errors.New("repository glob is empty")
	}
	for seg := range strings.SplitSeq(glob, "/") {
		if seg == "" {
			return fmt.Errorf("repository glob %q has an empty path component", glob)
		}
		if seg == "**" {
			continue
		}
		if strings.Contains(seg, "**") {
			return fmt.Errorf("repository glob %q: ** must be a whole path component", glob)
		}
		if _, err := path.Match(seg, ""); err != nil {
			return fmt.Errorf("repository glob %q: %w", glob, err)
		}
	}
	return nil
}

// MatchRepo reports whether repo matches glob (see GCRequest.Repo); an empty
// glob matches every repository. A malformed glob matches nothing.
func MatchRepo(glob, repo string) bool {
	if glob == "" {
		return true
	}
	return matchSegments(strings.Split(glob, "/"), strings.Split(repo, "/"))
}

func matchSegments(glob, name []string) bool {
	for len(glob) > 0 {
		if glob[0] == "**" {
			for i := 0; i <= len(name); i++ {
				if matchSegments(glob[1:], name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, err := path.Match(glob[0], name[0]); err != nil || !ok {
			return false
		}
		glob, name = glob[1:], name[1:]
	}
	return len(name) == 0
}

// GCResult is what one run deleted (or, for a dry run, would delete). Lists
// are sorted and never null.
type GCResult struct {
	DryRun   bool     `json:"dry_run"`
	Untagged bool     `json:"untagged"`
	Grace    Duration `json:"grace"`
	KeepTags int      `json:"keep_tags,omitempty"`
	Repo     string   `json:"repo,omitempty"`

	StartedAt time.Time `json:"started_at"`
	// DurationMS is the whole run; SweepMS the part during which pushes and
	// deletes waited.
	DurationMS int64 `json:"duration_ms"`
	MarkMS     int64 `json:"mark_ms"`
	SweepMS    int64 `json:"sweep_ms"`

	// Tags deleted by retention (KeepTags).
	Tags []GCTag `json:"tags"`
	// Manifests deleted, each with every digest it was stored under.
	Manifests []GCManifest `json:"manifests"`
	// Layers are blob links removed from repositories: the blob is no
	// longer part of that repository (its content may live on elsewhere).
	Layers []GCLayer `json:"layers"`
	// Blobs are contents deleted from the blob store.
	Blobs []GCBlob `json:"blobs"`
	// Repositories left with nothing in them, removed.
	Repositories []string `json:"repositories"`
	// BytesFreed is the apparent size of the blob files and their directories
	// removed from the blob store: what `du -sb` of it drops by.
	BytesFreed int64 `json:"bytes_freed"`

	// Error, when set, says why the run stopped; the lists hold what was
	// deleted before it did (nothing when the mark failed).
	Error string `json:"error,omitempty"`
}

// GCTag is a tag deleted by retention.
type GCTag struct {
	Repository string `json:"repository"`
	Tag        string `json:"tag"`
	Digest     string `json:"digest"`
}

// GCManifest is a deleted manifest.
type GCManifest struct {
	Repository string `json:"repository"`
	Digest     string `json:"digest"`
	// Aliases are its other digests (e.g. the sha512 it was pushed by).
	Aliases   []string `json:"aliases,omitempty"`
	MediaType string   `json:"media_type,omitempty"`
	Size      int64    `json:"size"`
	// Subject is set for a referrer (a signature, an SBOM).
	Subject string `json:"subject,omitempty"`
}

// GCLayer is a blob link removed from a repository.
type GCLayer struct {
	Repository string `json:"repository"`
	Digest     string `json:"digest"`
}

// GCBlob is a deleted blob.
type GCBlob struct {
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
}

// Duration is a time.Duration written as Go writes it ("1h0m0s", "30s").
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string such as "90s" or "1h".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"30s\" or \"1h\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration (use e.g. 30s, 5m, 1h)", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a string (sigs.k8s.io/yaml goes
// through JSON, so this is for YAML encoders that do not).
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }
