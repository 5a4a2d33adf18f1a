package registryapi

import "time"

// StatsPath is the usage statistics endpoint. A "fresh=true" query waits for
// the refresh that writes made pending (the CLI asks so; a polling UI does not).
const StatsPath = "/api/v1/stats"

// Stats is the body of GET /api/v1/stats.
type Stats struct {
	// StartedAt is when the registry process started; Pushes, Pulls and
	// BlobUploads count from then.
	StartedAt time.Time `json:"startedAt"`
	// UpdatedAt is when the storage numbers below were last computed.
	UpdatedAt time.Time `json:"updatedAt"`
	// Pending is true when writes happened after UpdatedAt and a refresh is
	// on its way.
	Pending bool `json:"pending,omitempty"`

	Repositories int `json:"repositories"`
	Tags         int `json:"tags"`
	// Manifests counts manifests per repository (one pushed to two
	// repositories counts twice).
	Manifests int `json:"manifests"`
	// Blobs and UniqueBytes are the content store: every blob (layers,
	// configs, manifests) once, as it is on disk, including content no
	// manifest references any more until garbage collection removes it.
	Blobs       int   `json:"blobs"`
	UniqueBytes int64 `json:"uniqueBytes"`
	// LogicalBytes sums over repositories what each one's manifests reference
	// (themselves, configs, layers): the space without cross-repository
	// deduplication.
	LogicalBytes int64 `json:"logicalBytes"`
	// Largest are the largest repositories by their logical bytes, largest first.
	Largest []RepositoryStats `json:"largestRepositories"`

	// Pushes and Pulls count manifest PUTs and GETs answered with success.
	Pushes      int64 `json:"pushes"`
	Pulls       int64 `json:"pulls"`
	BlobUploads int64 `json:"blobUploads"`

	// LastGC is the last garbage collection; absent when the registry has no
	// garbage collector or it has not run yet.
	LastGC *GCSummary `json:"lastGC,omitempty"`
	// Quota is storage quota usage; absent when no quota is set.
	Quota *QuotaSummary `json:"quota,omitempty"`
}

// RepositoryStats is one repository's share.
type RepositoryStats struct {
	Name      string `json:"name"`
	Tags      int    `json:"tags"`
	Manifests int    `json:"manifests"`
	Bytes     int64  `json:"bytes"`
}

// GCSummary is what stats and health tell about a garbage collection run.
type GCSummary struct {
	StartedAt        time.Time `json:"startedAt"`
	DurationMS       float64   `json:"durationMs"`
	DryRun           bool      `json:"dryRun,omitempty"`
	DeletedBlobs     int       `json:"deletedBlobs"`
	DeletedManifests int       `json:"deletedManifests"`
	FreedBytes       int64     `json:"freedBytes"`
	// Error is set when the run failed.
	Error string `json:"error,omitempty"`
}

// QuotaSummary is storage quota usage; a zero limit means none.
type QuotaSummary struct {
	UsedBytes  int64 `json:"usedBytes"`
	LimitBytes int64 `json:"limitBytes,omitempty"`
	// Repositories lists the repositories with a quota of their own.
	Repositories []RepositoryQuota `json:"repositories,omitempty"`
}

// RepositoryQuota is one repository's usage against its quota.
type RepositoryQuota struct {
	Name       string `json:"name"`
	UsedBytes  int64  `json:"usedBytes"`
	LimitBytes int64  `json:"limitBytes"`
}
