package ui

import (
	"net/http"
	"slices"
)

type storagePage struct {
	page
	Repositories int
	Tags         int
	Largest      []Repository
}

// storage shows what the registry holds.
func (h *Handler) storage(q *request) {
	names, err := h.src.Repositories(q.ctx)
	if err != nil {
		h.fail(q, err, "storage report")
		return
	}
	all, err := h.summaries(q.ctx, names)
	if err != nil {
		h.fail(q, err, "storage report")
		return
	}
	data := storagePage{page: h.page(q, "Storage", "storage"), Repositories: len(all)}
	for _, r := range all {
		data.Tags += r.Tags
	}
	data.Largest = slices.Clone(all)
	slices.SortStableFunc(data.Largest, func(a, b Repository) int { return int(min(max(b.Size-a.Size, -1), 1)) })
	data.Largest = data.Largest[:min(10, len(data.Largest))]
	data.Flash = h.flashFrom(q)
	h.render(q, http.StatusOK, "storage", data)
}

// gc runs garbage collection (POST).
func (h *Handler) gc(q *request) {
	h.renderError(q, http.StatusNotFound, "Garbage collection is not available in this build.")
}
