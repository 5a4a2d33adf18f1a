package registry

import (
	"cmp"
	"slices"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/idpbuilder/idpbuilder/pkg/registryapi"
)

type planOptions struct {
	untagged bool
	keepTags int
	repoGlob string
	// cutoff: content modified after it is within the grace period.
	cutoff time.Time
}

// gcPlan is what a sweep deletes, in the order it deletes it: tags, then
// manifests, then blob links, then blobs, then emptied repositories. Each
// list is sorted, so a dry run and the real run list the same things alike.
type gcPlan struct {
	tags      []plannedTag
	manifests []plannedManifest
	layers    []plannedLink
	blobs     []digest.Digest
	repos     []string
	doomed    *doomedSet
}

type plannedTag struct {
	repo, tag string
	target    digest.Digest
}

type plannedManifest struct {
	repo      string
	canonical digest.Digest
	paths     []digest.Digest // revision links: the canonical digest and aliases
	history   []historyEntry  // tag history entries naming it
	info      *manifestInfo
}

// historyEntry is a tag's record that it once pointed at path.
type historyEntry struct {
	tag  string
	path digest.Digest
}

type plannedLink struct {
	repo         string
	path, target digest.Digest
}

// makePlan decides what to delete from the snapshot, the touch log and the
// content the log's commits point at. It reads nothing from storage, so a
// sweep can decide again cheaply.
func makePlan(s *snapshot, ts []touch, extra map[digest.Digest]bool, o planOptions) *gcPlan {
	young := func(t time.Time) bool { return t.After(o.cutoff) }
	touched := map[string]map[digest.Digest]bool{}
	touchedTags := map[repoTag]bool{}
	active := map[string]bool{}
	keepData := map[digest.Digest]bool{}
	for d := range extra {
		keepData[d] = true
	}
	for _, t := range ts {
		switch t.kind {
		case touchRead, touchCommit:
			if touched[t.repo] == nil {
				touched[t.repo] = map[digest.Digest]bool{}
			}
			touched[t.repo][t.digest] = true
			keepData[t.digest] = true
		case touchTag:
			touchedTags[repoTag{t.repo, t.tag}] = true
		case touchRepo:
			active[t.repo] = true
		}
	}

	p := &gcPlan{doomed: &doomedSet{links: map[repoDigest]bool{}, manifests: map[repoDigest]bool{}, tags: map[repoTag]bool{}}}
	for _, name := range sortedKeys(s.repos) {
		rs := s.repos[name]
		tch := map[digest.Digest]bool{}
		for d := range touched[name] {
			tch[d] = true
			if l, ok := rs.layers[d]; ok {
				tch[l.target] = true
			}
			if l, ok := rs.revisions[d]; ok {
				tch[l.target] = true
			}
		}
		canon := func(d digest.Digest) (digest.Digest, bool) {
			l, ok := rs.revisions[d]
			return l.target, ok
		}
		paths := map[digest.Digest][]digest.Digest{}
		for pth, l := range rs.revisions {
			paths[l.target] = append(paths[l.target], pth)
		}

		tagDel := retention(name, rs, touchedTags, o)

		live := map[digest.Digest]bool{}
		var queue []digest.Digest
		keep := func(c digest.Digest) {
			if !live[c] {
				live[c] = true
				queue = append(queue, c)
			}
		}
		tagged, untaggedNow := map[digest.Digest]bool{}, map[digest.Digest]int{}
		for t, l := range rs.tags {
			c, ok := canon(l.target)
			if !ok {
				continue
			}
			if tagDel[t] {
				untaggedNow[c]++
				continue
			}
			tagged[c] = true
			keep(c)
		}
		referrers := map[digest.Digest][]digest.Digest{}
		for c, ps := range paths {
			doc := s.docs[c].parsed()
			if doc != nil && doc.Subject != nil {
				if sc, ok := canon(doc.Subject.Digest); ok {
					referrers[sc] = append(referrers[sc], c)
				}
			}
			root := tch[c]
			for _, pth := range ps {
				root = root || young(rs.revisions[pth].mtime)
			}
			// Without Untagged every manifest but a referrer is a root, except
			// one whose tags this run's retention deleted.
			if !o.untagged && (doc == nil || doc.Subject == nil) && (untaggedNow[c] == 0 || tagged[c]) {
				root = true
			}
			if root {
				keep(c)
			}
		}
		refBlobs := map[digest.Digest]bool{}
		for len(queue) > 0 {
			c := queue[len(queue)-1]
			queue = queue[:len(queue)-1]
			for _, r := range referrers[c] {
				keep(r)
			}
			doc := s.docs[c].parsed()
			if doc == nil {
				continue
			}
			if doc.Config != nil {
				refBlobs[doc.Config.Digest] = true
			}
			for _, l := range doc.Layers {
				refBlobs[l.Digest] = true
			}
			for _, m := range doc.Manifests {
				if mc, ok := canon(m.Digest); ok {
					keep(mc)
				} else {
					refBlobs[m.Digest] = true // an index may name blobs too
				}
			}
			if doc.Subject != nil {
				if sc, ok := canon(doc.Subject.Digest); ok {
					keep(sc)
				}
			}
		}
		for d := range refBlobs {
			if l, ok := rs.layers[d]; ok {
				refBlobs[l.target] = true
			}
		}

		for _, c := range sortedDigestKeys(paths) {
			if live[c] {
				keepData[c] = true
				continue
			}
			pm := plannedManifest{repo: name, canonical: c, paths: slices.Sorted(slices.Values(paths[c])), info: s.docs[c]}
			p.doomed.manifests[repoDigest{name, c}] = true
			for _, pth := range pm.paths {
				p.doomed.manifests[repoDigest{name, pth}] = true
				for _, t := range rs.tagIndex[pth] {
					if !tagDel[t] {
						pm.history = append(pm.history, historyEntry{tag: t, path: pth})
					}
				}
			}
			p.manifests = append(p.manifests, pm)
		}
		keptLinks := 0
		for _, pth := range sortedDigestKeys(rs.layers) {
			l := rs.layers[pth]
			if refBlobs[pth] || refBlobs[l.target] || live[l.target] || young(l.mtime) || tch[pth] || tch[l.target] {
				keepData[l.target] = true
				keptLinks++
				continue
			}
			p.layers = append(p.layers, plannedLink{repo: name, path: pth, target: l.target})
			p.doomed.links[repoDigest{name, pth}] = true
		}
		for _, t := range sortedKeys(tagDel) {
			p.tags = append(p.tags, plannedTag{repo: name, tag: t, target: rs.tags[t].target})
			p.doomed.tags[repoTag{name, t}] = true
		}
		if len(rs.tags) == len(tagDel) && len(live) == 0 && keptLinks == 0 && !rs.uploads && !active[name] {
			p.repos = append(p.repos, name)
		}
	}
	for _, d := range sortedDigestKeys(s.blobs) {
		if !keepData[d] && !young(s.blobs[d].mtime) {
			p.blobs = append(p.blobs, d)
		}
	}
	return p
}

// retention picks the tags keep-tags deletes from a repository: all but the
// most recently pushed (by the modification time of the tag's link, which
// every push of the tag rewrites; ties by name, later names first), never
// one that shares its manifest with a kept tag, never one pushed since the
// run began.
func retention(name string, rs *repoState, touchedTags map[repoTag]bool, o planOptions) map[string]bool {
	del := map[string]bool{}
	if o.keepTags <= 0 || len(rs.tags) <= o.keepTags || !registryapi.MatchRepo(o.repoGlob, name) {
		return del
	}
	tags := sortedKeys(rs.tags)
	slices.SortStableFunc(tags, func(a, b string) int {
		if c := rs.tags[b].mtime.Compare(rs.tags[a].mtime); c != 0 {
			return c
		}
		return cmp.Compare(b, a)
	})
	kept := map[digest.Digest]bool{}
	for i, t := range tags {
		if i < o.keepTags || touchedTags[repoTag{name, t}] {
			kept[rs.tags[t].target] = true
		}
	}
	for _, t := range tags[o.keepTags:] {
		if !kept[rs.tags[t].target] && !touchedTags[repoTag{name, t}] {
			del[t] = true
		}
	}
	return del
}

// hitBy reports whether any of ts (noted after the plan was made) touches
// something the plan deletes.
func (p *gcPlan) hitBy(ts []touch) bool {
	for _, t := range ts {
		switch t.kind {
		case touchRead, touchCommit:
			k := repoDigest{t.repo, t.digest}
			// A read of anything else is of a link that stays (and so does
			// its content) or of nothing.
			if p.doomed.links[k] || p.doomed.manifests[k] {
				return true
			}
		case touchTag:
			if p.doomed.tags[repoTag{t.repo, t.tag}] {
				return true
			}
		case touchRepo:
			if slices.Contains(p.repos, t.repo) {
				return true
			}
		}
	}
	return false
}

func (m *manifestInfo) parsed() *manifestDoc {
	if m == nil {
		return nil
	}
	return m.doc
}

func sortedDigestKeys[V any](m map[digest.Digest]V) []digest.Digest {
	keys := make([]digest.Digest, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
