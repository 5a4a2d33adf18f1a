package registryapi

// QuotaStatus is a registry's storage quotas and the disk under its data
// directory, as Registry.QuotaStatus reports them.
type QuotaStatus struct {
	// Enabled is true when a registry-wide or per-repository limit is set;
	// without one the registry does not count usage, and Used and
	// Repositories are empty.
	Enabled bool `json:"enabled"`
	// Limit is the registry-wide limit in bytes; 0 means none.
	Limit int64 `json:"limit,omitempty"`
	// RepoLimit is the limit of each repository in bytes; 0 means none.
	RepoLimit int64 `json:"repoLimit,omitempty"`
	// Used is what the repositories hold, each blob (layer, config,
	// manifest) counted once however many repositories link it.
	Used int64 `json:"used"`
	// Repositories is the usage of every repository, largest first, when
	// RepoLimit is set.
	Repositories []RepositoryUsage `json:"repositories,omitempty"`
	// Disk is the filesystem of the data directory.
	Disk DiskStatus `json:"disk"`
}

// RepositoryUsage is what one repository holds, each blob counted once.
type RepositoryUsage struct {
	Name string `json:"name"`
	Used int64  `json:"used"`
}

// DiskStatus is the filesystem holding the registry's data directory.
type DiskStatus struct {
	// Total and Free are the filesystem's size and the bytes available to
	// the registry.
	Total int64 `json:"total"`
	Free  int64 `json:"free"`
	// Reserve is the free space uploads must leave for manifests, tags and
	// upload bookkeeping.
	Reserve int64 `json:"reserve"`
	// Full is true while free space is under the reserve, or while the last
	// write refused for lack of space (in the last ten minutes) still would
	// not fit; Reason then says so in a sentence.
	Full   bool   `json:"full"`
	Reason string `json:"reason,omitempty"`
}
