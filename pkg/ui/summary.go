package ui

import (
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"
)

// summary is what a tag row shows about a manifest. Manifests never change
// under their digest, so summaries are kept (LRU) by repository and digest.
type summary struct {
	Kind         Kind
	ArtifactType string
	MediaType    string
	// Size is the config and layers of an image or artifact (for an index, see Platforms).
	Size         int64
	Platforms    []Platform
	Attestations []Attestation
	Created      time.Time
	Subject      string
}

type summaryCache struct {
	mu    sync.Mutex
	max   int
	order *list.List // front: most recently used
	items map[string]*list.Element
}

type summaryEntry struct {
	key string
	val *summary
}

func newSummaryCache(max int) *summaryCache {
	return &summaryCache{max: max, order: list.New(), items: map[string]*list.Element{}}
}

func (c *summaryCache) get(key string) (*summary, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		c.order.MoveToFront(e)
		return e.Value.(*summaryEntry).val, true
	}
	return nil, false
}

func (c *summaryCache) put(key string, s *summary) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		e.Value.(*summaryEntry).val = s
		c.order.MoveToFront(e)
		return
	}
	c.items[key] = c.order.PushFront(&summaryEntry{key, s})
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.items, last.Value.(*summaryEntry).key)
	}
}

// ForgetSummaries drops what the UI knows of manifests (benchmarks of a
// first view use it).
func (h *Handler) ForgetSummaries() {
	h.sums.mu.Lock()
	defer h.sums.mu.Unlock()
	h.sums.order.Init()
	clear(h.sums.items)
}

// summarize describes the manifest repo@digest, reading the platforms' manifests
// of an index and the image config for its creation time.
func (h *Handler) summarize(ctx context.Context, repo, digest string) (*summary, error) {
	key := repo + "@" + digest
	if s, ok := h.sums.get(key); ok {
		return s, nil
	}
	m, err := h.src.Manifest(ctx, repo, digest)
	if err != nil {
		return nil, err
	}
	doc, err := parseDoc(m)
	if err != nil {
		return nil, err
	}
	s := &summary{Kind: doc.kind(), ArtifactType: doc.artifactType(), MediaType: doc.MediaType, Size: doc.blobSize()}
	if doc.Subject != nil {
		s.Subject = doc.Subject.Digest.String()
	}
	if t, err := time.Parse(time.RFC3339, doc.Annotations[annotationCreated]); err == nil {
		s.Created = t
	}
	if doc.isIndex() {
		s.Platforms, s.Attestations = splitIndex(doc.Manifests)
		for i := range s.Platforms {
			p := &s.Platforms[i]
			cm, err := h.src.Manifest(ctx, repo, p.Digest)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			cd, err := parseDoc(cm)
			if err != nil {
				continue
			}
			p.Size, p.SizeKnown = cd.blobSize(), true
			if s.Created.IsZero() && cd.Config != nil {
				s.Created = h.configCreated(ctx, repo, cd.Config.Digest.String(), cd.Config.Size)
			}
		}
	} else if s.Kind == KindImage && s.Created.IsZero() && doc.Config != nil {
		s.Created = h.configCreated(ctx, repo, doc.Config.Digest.String(), doc.Config.Size)
	}
	h.sums.put(key, s)
	return s, nil
}

// configCreated is an image config's creation time (zero when unknown).
func (h *Handler) configCreated(ctx context.Context, repo, digest string, size int64) time.Time {
	if size > maxConfigBytes {
		return time.Time{}
	}
	b, err := h.src.Blob(ctx, repo, digest, maxConfigBytes)
	if err != nil {
		return time.Time{}
	}
	var c struct {
		Created *time.Time `json:"created"`
	}
	if json.Unmarshal(b, &c) != nil || c.Created == nil {
		return time.Time{}
	}
	return *c.Created
}

// Names as the distribution spec allows them (the registry checks them again).
var (
	nameComponent = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$`)
	tagPattern    = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
	digestPattern = regexp.MustCompile(`^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$`)
)

func validRepository(name string) bool {
	if name == "" || len(name) > 255 {
		return false
	}
	for c := range strings.SplitSeq(name, "/") {
		if !nameComponent.MatchString(c) {
			return false
		}
	}
	return true
}

func validTag(s string) bool    { return tagPattern.MatchString(s) }
func validDigest(s string) bool { return digestPattern.MatchString(s) }

func urlQueryEscape(s string) string { return url.QueryEscape(s) }
