package ui

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/idpbuilder/idpbuilder/pkg/registryapi"
)

// Garbage collection lists are long on a big registry: the page shows the
// first of each and says how many more there are.
const gcListShown = 50

type storagePage struct {
	page
	Stats      *registryapi.Stats
	StatsError string
	StatsAge   string
	Largest    []largestRow
	Quota      *registryapi.QuotaStatus
	DiskUsed   int64
	QuotaRepos []quotaRow
	Health     registryapi.Health
	LastGC     *gcView
	Result     *gcView // the run or preview just made
	Untagged   bool
	GCError    string
}

type largestRow struct {
	Name      string
	URL       string
	Tags      int
	Manifests int
	Bytes     int64
}

type quotaRow struct {
	Name       string
	URL        string
	Used       int64
	Limit      int64
	OverWarned bool // at 90% or more
}

// gcView is a garbage collection result as the page shows it.
type gcView struct {
	registryapi.GCResult
	When        string
	Duration    string
	Manifests   []registryapi.GCManifest
	MoreMan     int
	BlobBytes   int64
	NothingToDo bool
}

func newGCView(res registryapi.GCResult, now time.Time) *gcView {
	v := &gcView{GCResult: res, When: formatAge(res.StartedAt, now), Duration: (time.Duration(res.DurationMS) * time.Millisecond).String()}
	v.Manifests = res.Manifests[:min(gcListShown, len(res.Manifests))]
	v.MoreMan = len(res.Manifests) - len(v.Manifests)
	for _, b := range res.Blobs {
		v.BlobBytes += b.Size
	}
	v.NothingToDo = len(res.Manifests) == 0 && len(res.Blobs) == 0 && len(res.Layers) == 0 && len(res.Tags) == 0 && len(res.Repositories) == 0
	return v
}

// storage shows usage, quotas, the largest repositories, the last garbage
// collection, a form to preview and run one, and the detailed health.
func (h *Handler) storage(q *request) {
	h.renderStorage(q, http.StatusOK, nil, "", q.r.URL.Query().Get("untagged") == "1")
}

func (h *Handler) renderStorage(q *request, status int, result *gcView, gcErr string, untagged bool) {
	data := storagePage{page: h.page(q, "Storage", "storage"), Result: result, GCError: gcErr, Untagged: untagged}
	if st, err := h.src.Stats(q.ctx); err != nil {
		// Statistics come from a background walk: right after a start
		// there are none yet. The page says so; the log has any error.
		h.log.Debug("ui: statistics", "err", err)
		data.StatsError = "The usage statistics are being computed; reload in a moment."
	} else {
		data.Stats = &st
		data.StatsAge = formatAge(st.UpdatedAt, q.now)
		for _, r := range st.Largest {
			data.Largest = append(data.Largest, largestRow{Name: r.Name, URL: repoURL(r.Name), Tags: r.Tags, Manifests: r.Manifests, Bytes: r.Bytes})
		}
	}
	if qs, err := h.src.Quota(q.ctx); err != nil {
		h.log.Warn("ui: quota status", "err", err)
	} else {
		data.Quota = &qs
		data.DiskUsed = qs.Disk.Total - qs.Disk.Free
		if qs.RepoLimit > 0 {
			for _, r := range qs.Repositories[:min(10, len(qs.Repositories))] {
				data.QuotaRepos = append(data.QuotaRepos, quotaRow{Name: r.Name, URL: repoURL(r.Name), Used: r.Used, Limit: qs.RepoLimit,
					OverWarned: r.Used*10 >= qs.RepoLimit*9})
			}
		}
	}
	if last := h.src.LastGC(); last != nil {
		data.LastGC = newGCView(*last, q.now)
	}
	data.Health = h.src.Health(q.ctx)
	slices.SortStableFunc(data.Health.Checks, func(a, b registryapi.HealthCheck) int { return strings.Compare(a.Name, b.Name) })
	data.Flash = h.flashFrom(q)
	h.render(q, status, "storage", data)
}

// gc previews (dry_run=1) or runs a garbage collection: POST only, with what
// deleting needs.
func (h *Handler) gc(q *request) {
	if q.r.Method != http.MethodPost {
		q.w.Header().Set("Allow", "POST")
		h.renderError(q, http.StatusMethodNotAllowed, "Garbage collection starts from the button on the storage page.")
		return
	}
	if !h.canWrite(q) {
		h.toLogin(q)
		return
	}
	req := registryapi.GCRequest{DryRun: q.r.PostForm.Get("dry_run") == "1", Untagged: q.r.PostForm.Get("untagged") == "1"}
	res, err := h.src.GC(q.ctx, q.user, req)
	switch {
	case errors.Is(err, ErrBusy):
		h.renderStorage(q, http.StatusConflict, nil, "A garbage collection is already running; try again when it has finished.", req.Untagged)
		return
	case err != nil && res.StartedAt.IsZero():
		h.log.Error("ui: garbage collection", "err", err)
		h.renderStorage(q, http.StatusInternalServerError, nil, "The garbage collection could not run; the registry's log has the details.", req.Untagged)
		return
	case err != nil:
		// A run that stopped says how far it got (and why, without paths).
		h.renderStorage(q, http.StatusInternalServerError, newGCView(res, q.now), "The garbage collection stopped: "+res.Error, req.Untagged)
		return
	}
	if req.DryRun {
		h.renderStorage(q, http.StatusOK, newGCView(res, q.now), "", req.Untagged)
		return
	}
	// A real run changed the store: back to the page (a reload must not run
	// it again), where the last run's details are.
	h.setFlash(q, flashPlain, fmt.Sprintf("Garbage collection deleted %d manifest(s) and %d blob(s), freeing %s.",
		len(res.Manifests), len(res.Blobs), formatSize(res.BytesFreed)))
	http.Redirect(q.w, q.r, Prefix+"storage#last-gc", http.StatusSeeOther)
}
