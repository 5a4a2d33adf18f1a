package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Page sizes.
const (
	reposPerPage = 50
	tagsPerPage  = 100
)

// crumb is a link in a namespace path.
type crumb struct{ Name, URL string }

type repoRow struct {
	Name      string
	URL       string
	Namespace []crumb // the name's namespaces, each a filter link
	Base      string  // the last path component
	Tags      int
	Size      int64
	LastPush  time.Time
	Age       string
}

type namespaceCount struct {
	Name  string
	URL   string
	Count int
}

type pager struct {
	Total, From, To, Page, Pages int
	Prev, Next                   string
}

// paginate cuts n items into pages of size and says which items page p shows.
func paginate(n, size, p int, link func(int) string) (pager, int, int) {
	pages := max(1, (n+size-1)/size)
	p = min(max(p, 1), pages)
	from, to := (p-1)*size, min(p*size, n)
	pg := pager{Total: n, From: from + 1, To: to, Page: p, Pages: pages}
	if n == 0 {
		pg.From = 0
	}
	if p > 1 {
		pg.Prev = link(p - 1)
	}
	if p < pages {
		pg.Next = link(p + 1)
	}
	return pg, from, to
}

type reposPage struct {
	page
	Query      string
	Namespace  string
	Crumbs     []crumb
	Namespaces []namespaceCount
	Rows       []repoRow
	Pager      pager
	Empty      bool // the registry holds nothing at all
}

func reposURL(query, ns string, p int) string {
	v := url.Values{}
	if query != "" {
		v.Set("q", query)
	}
	if ns != "" {
		v.Set("ns", ns)
	}
	if p > 1 {
		v.Set("page", strconv.Itoa(p))
	}
	if len(v) == 0 {
		return Prefix
	}
	return Prefix + "?" + v.Encode()
}

func repoURL(name string) string { return Prefix + "repo/" + name }

func manifestURL(repo, ref string) string { return Prefix + "repo/" + repo + "/-/manifest/" + ref }

func deleteURL(repo string, v url.Values) string {
	u := Prefix + "repo/" + repo + "/-/delete"
	if len(v) > 0 {
		u += "?" + v.Encode()
	}
	return u
}

// namespaceCrumbs links each namespace of a name (all but its last component).
func namespaceCrumbs(name string) []crumb {
	parts := strings.Split(name, "/")
	out := make([]crumb, 0, len(parts)-1)
	for i := range len(parts) - 1 {
		ns := strings.Join(parts[:i+1], "/")
		out = append(out, crumb{Name: parts[i], URL: reposURL("", ns, 1)})
	}
	return out
}

// repositories lists repositories: search (q, a substring of the name),
// namespace (ns, a path prefix), 50 to a page.
func (h *Handler) repositories(q *request) {
	query := strings.TrimSpace(q.r.URL.Query().Get("q"))
	ns := strings.Trim(q.r.URL.Query().Get("ns"), "/")
	if ns != "" && !validRepository(ns) {
		ns = ""
	}
	pageNo, _ := strconv.Atoi(q.r.URL.Query().Get("page"))

	all, err := h.src.Repositories(q.ctx)
	if err != nil {
		h.fail(q, err, "repository list")
		return
	}
	lq := strings.ToLower(query)
	var match []string
	children := map[string]int{}
	for _, name := range all {
		rest := name
		if ns != "" {
			var ok bool
			if rest, ok = strings.CutPrefix(name, ns+"/"); !ok {
				continue
			}
		}
		if lq != "" && !strings.Contains(name, lq) {
			continue
		}
		match = append(match, name)
		if first, _, nested := strings.Cut(rest, "/"); nested {
			children[first]++
		}
	}
	data := reposPage{page: h.page(q, "Repositories", "repos"), Query: query, Namespace: ns, Empty: len(all) == 0}
	if ns != "" {
		data.Crumbs = namespaceCrumbs(ns + "/x") // every component of ns
		data.Title = ns + "/ · Repositories"
	}
	for name, n := range children {
		full := name
		if ns != "" {
			full = ns + "/" + name
		}
		data.Namespaces = append(data.Namespaces, namespaceCount{Name: name, URL: reposURL(query, full, 1), Count: n})
	}
	slices.SortFunc(data.Namespaces, func(a, b namespaceCount) int { return strings.Compare(a.Name, b.Name) })
	var from, to int
	data.Pager, from, to = paginate(len(match), reposPerPage, pageNo, func(p int) string { return reposURL(query, ns, p) })
	// Only the repositories shown are summarized.
	sums, err := h.summaries(q.ctx, match[from:to])
	if err != nil {
		h.fail(q, err, "repository list")
		return
	}
	for _, r := range sums {
		data.Rows = append(data.Rows, repoRow{
			Name: r.Name, URL: repoURL(r.Name), Namespace: namespaceCrumbs(r.Name), Base: r.Name[strings.LastIndex(r.Name, "/")+1:],
			Tags: r.Tags, Size: r.Size, LastPush: r.LastPush, Age: formatAge(r.LastPush, q.now),
		})
	}
	data.Flash = h.flashFrom(q)
	h.render(q, http.StatusOK, "repositories", data)
}

// summaries summarizes repositories, a few at a time, in the order given;
// repositories deleted meanwhile are left out.
func (h *Handler) summaries(ctx context.Context, names []string) ([]Repository, error) {
	out := make([]Repository, len(names))
	errs := make([]error, len(names))
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(8, len(names)) {
		wg.Go(func() {
			for i := range work {
				out[i], errs[i] = h.src.Repository(ctx, names[i])
			}
		})
	}
	for i := range names {
		work <- i
	}
	close(work)
	wg.Wait()
	kept := out[:0]
	for i, r := range out {
		switch {
		case errors.Is(errs[i], ErrNotFound):
		case errs[i] != nil:
			return nil, errs[i]
		default:
			kept = append(kept, r)
		}
	}
	return kept, nil
}

// badge counts the referrers of one kind.
type badge struct {
	Kind  RefKind
	Label string
	Count int
}

type tagRow struct {
	Name       string
	URL        string
	Digest     string
	Short      string
	Kind       Kind
	KindLabel  string
	Artifact   string // artifactType, for artifacts
	Size       int64
	Platforms  []Platform
	Attests    int
	Created    time.Time
	CreatedAge string
	Pushed     time.Time
	PushedAge  string
	Badges     []badge
	Pull       Command
	DeleteURL  string
	SharedWith []string
}

type repoPage struct {
	page
	Repo      string
	Crumbs    []crumb
	Sort      string
	Rows      []tagRow
	Pager     pager
	DeleteURL string
	Untagged  bool
}

// referrerBadges counts a digest's referrers by kind.
func (h *Handler) referrerBadges(q *request, repo, digest string) ([]badge, error) {
	refs, err := h.src.Referrers(q.ctx, repo, digest)
	if err != nil {
		return nil, err
	}
	counts := map[RefKind]int{}
	for _, d := range refs {
		counts[classifyReferrer(d.ArtifactType)]++
	}
	var out []badge
	for _, k := range []RefKind{RefSignature, RefSBOM, RefAttestation, RefOther} {
		if n := counts[k]; n > 0 {
			out = append(out, badge{Kind: k, Label: k.Label(), Count: n})
		}
	}
	return out, nil
}

// tagRows describes tags, in the order given.
func (h *Handler) tagRows(q *request, repo string, tags []Tag, byDigest map[string][]string) ([]tagRow, error) {
	rows := make([]tagRow, 0, len(tags))
	for _, t := range tags {
		s, err := h.summarize(q.ctx, repo, t.Digest)
		if errors.Is(err, ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		row := tagRow{
			Name: t.Name, URL: manifestURL(repo, t.Name), Digest: t.Digest, Short: shortDigest(t.Digest),
			Kind: s.Kind, KindLabel: s.Kind.Label(), Size: s.Size, Platforms: s.Platforms, Attests: len(s.Attestations),
			Created: s.Created, CreatedAge: formatAge(s.Created, q.now), Pushed: t.Pushed, PushedAge: formatAge(t.Pushed, q.now),
			DeleteURL: deleteURL(repo, url.Values{"tag": {t.Name}}),
		}
		if s.Kind == KindArtifact || s.Kind == KindHelm {
			row.Artifact = s.ArtifactType
		}
		for _, other := range byDigest[t.Digest] {
			if other != t.Name {
				row.SharedWith = append(row.SharedWith, other)
			}
		}
		if row.Badges, err = h.referrerBadges(q, repo, t.Digest); err != nil {
			return nil, err
		}
		if cmds := q.ep.commands(repo, t.Name, s.Kind); len(cmds) > 0 {
			row.Pull = cmds[0]
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func tagsByDigest(tags []Tag) map[string][]string {
	m := map[string][]string{}
	for _, t := range tags {
		m[t.Digest] = append(m[t.Digest], t.Name)
	}
	return m
}

// repository shows a repository's tags, newest first or by name.
func (h *Handler) repository(q *request, repo string) {
	sortBy := q.r.URL.Query().Get("sort")
	if sortBy != "name" {
		sortBy = "newest"
	}
	pageNo, _ := strconv.Atoi(q.r.URL.Query().Get("page"))
	tags, err := h.src.Tags(q.ctx, repo)
	if err != nil {
		h.fail(q, err, "repository")
		return
	}
	if sortBy == "name" {
		slices.SortFunc(tags, func(a, b Tag) int { return strings.Compare(a.Name, b.Name) })
	} else {
		slices.SortStableFunc(tags, func(a, b Tag) int {
			if c := b.Pushed.Compare(a.Pushed); c != 0 {
				return c
			}
			return strings.Compare(a.Name, b.Name)
		})
	}
	data := repoPage{page: h.page(q, repo, "repos"), Repo: repo, Crumbs: namespaceCrumbs(repo), Sort: sortBy,
		DeleteURL: deleteURL(repo, nil)}
	var from, to int
	data.Pager, from, to = paginate(len(tags), tagsPerPage, pageNo, func(p int) string {
		return repoURL(repo) + "?" + url.Values{"sort": {sortBy}, "page": {strconv.Itoa(p)}}.Encode()
	})
	if data.Rows, err = h.tagRows(q, repo, tags[from:to], tagsByDigest(tags)); err != nil {
		h.fail(q, err, "repository")
		return
	}
	data.Flash = h.flashFrom(q)
	h.render(q, http.StatusOK, "repository", data)
}

type layerRow struct {
	Index     int
	Digest    string
	Short     string
	MediaType string
	Size      int64
	Title     string
}

type historyRow struct {
	Created   time.Time
	CreatedBy string
	Comment   string
	Empty     bool
}

// imageDetail is an image or artifact manifest's content.
type imageDetail struct {
	Digest       string
	ConfigDigest string
	ConfigType   string
	ConfigSize   int64
	Layers       []layerRow
	Size         int64
	// Image config (nil for artifacts and unreadable configs).
	Config     *imageConfig
	Created    time.Time
	Entrypoint string
	Cmd        string
	Env        []string
	Labels     []KeyValue
	Ports      []string
	History    []historyRow
	Chart      *helmConfig
	Raw        string
}

type refRow struct {
	Kind         RefKind
	Label        string
	ArtifactType string
	Digest       string
	Short        string
	Size         int64
	Created      string
	URL          string
}

type manifestPage struct {
	page
	Repo         string
	Crumbs       []crumb
	Ref          string
	Digest       string
	Short        string
	MediaType    string
	Kind         Kind
	KindLabel    string
	ArtifactType string
	Tags         []string
	Platforms    []Platform
	Attestations []Attestation
	Selected     string // the picked platform's digest
	Detail       *imageDetail
	Referrers    []refRow
	Subject      string
	SubjectURL   string
	Annotations  []KeyValue
	Raw          string
	Commands     []Command
	DeleteURL    string
	PlatformURL  string
}

// manifest shows one manifest: for an index its platforms (attestations apart)
// and the picked platform's image; config, layers, referrers and raw JSON.
func (h *Handler) manifest(q *request, repo, ref string) {
	m, err := h.src.Manifest(q.ctx, repo, ref)
	if err != nil {
		h.fail(q, err, "manifest")
		return
	}
	doc, err := parseDoc(m)
	if err != nil {
		h.fail(q, err, "manifest")
		return
	}
	tags, err := h.src.Tags(q.ctx, repo)
	if err != nil {
		h.fail(q, err, "manifest")
		return
	}
	kind := doc.kind()
	data := manifestPage{
		page: h.page(q, repo+manifestSep(ref)+ref, "repos"), Repo: repo, Crumbs: append(namespaceCrumbs(repo), crumb{Name: repo[strings.LastIndex(repo, "/")+1:], URL: repoURL(repo)}),
		Ref: ref, Digest: m.Digest, Short: shortDigest(m.Digest), MediaType: doc.MediaType,
		Kind: kind, KindLabel: kind.Label(), ArtifactType: doc.artifactType(), Tags: tagsByDigest(tags)[m.Digest],
		Annotations: sortedPairs(doc.Annotations), Raw: prettyJSON(m.Payload),
		Commands:  q.ep.commands(repo, ref, kind),
		DeleteURL: deleteURL(repo, url.Values{"digest": {m.Digest}}), PlatformURL: manifestURL(repo, ref),
	}
	if doc.Subject != nil {
		data.Subject = doc.Subject.Digest.String()
		data.SubjectURL = manifestURL(repo, data.Subject)
	}
	if doc.isIndex() {
		data.Platforms, data.Attestations = splitIndex(doc.Manifests)
		if s, err := h.summarize(q.ctx, repo, m.Digest); err == nil {
			data.Platforms = s.Platforms // with their sizes
		}
		data.Selected = q.r.URL.Query().Get("platform")
		if !slices.ContainsFunc(data.Platforms, func(p Platform) bool { return p.Digest == data.Selected }) {
			data.Selected = ""
			if len(data.Platforms) > 0 {
				data.Selected = data.Platforms[0].Digest
			}
		}
		if data.Selected != "" {
			cm, err := h.src.Manifest(q.ctx, repo, data.Selected)
			switch {
			case errors.Is(err, ErrNotFound):
			case err != nil:
				h.fail(q, err, "manifest")
				return
			default:
				if cd, err := parseDoc(cm); err == nil {
					data.Detail = h.detail(q, repo, cm, cd)
				}
			}
		}
	} else {
		data.Detail = h.detail(q, repo, m, doc)
	}
	refs, err := h.src.Referrers(q.ctx, repo, m.Digest)
	if err != nil {
		h.fail(q, err, "manifest")
		return
	}
	for _, d := range refs {
		k := classifyReferrer(d.ArtifactType)
		data.Referrers = append(data.Referrers, refRow{
			Kind: k, Label: k.Label(), ArtifactType: d.ArtifactType, Digest: d.Digest, Short: shortDigest(d.Digest),
			Size: d.Size, Created: d.Annotations[annotationCreated], URL: manifestURL(repo, d.Digest),
		})
	}
	h.render(q, http.StatusOK, "manifest", data)
}

func manifestSep(ref string) string {
	if strings.Contains(ref, ":") {
		return "@"
	}
	return ":"
}

// detail reads an image's (or artifact's) config and layers.
func (h *Handler) detail(q *request, repo string, m Manifest, doc *manifestDoc) *imageDetail {
	d := &imageDetail{Digest: m.Digest, Size: doc.blobSize(), Raw: prettyJSON(m.Payload)}
	for i, l := range doc.Layers {
		d.Layers = append(d.Layers, layerRow{Index: i + 1, Digest: l.Digest.String(), Short: shortDigest(l.Digest.String()),
			MediaType: l.MediaType, Size: l.Size, Title: l.Annotations[annotationTitle]})
	}
	if doc.Config == nil {
		return d
	}
	d.ConfigDigest, d.ConfigType, d.ConfigSize = doc.Config.Digest.String(), doc.Config.MediaType, doc.Config.Size
	kind := doc.kind()
	if kind != KindImage && kind != KindHelm {
		return d
	}
	b, err := h.src.Blob(q.ctx, repo, d.ConfigDigest, maxConfigBytes)
	if err != nil {
		if !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrTooLarge) {
			h.log.Warn("ui: read config", "repository", repo, "digest", d.ConfigDigest, "err", err)
		}
		return d
	}
	if kind == KindHelm {
		var c helmConfig
		if json.Unmarshal(b, &c) == nil {
			d.Chart = &c
		}
		return d
	}
	var c imageConfig
	if json.Unmarshal(b, &c) != nil {
		return d
	}
	d.Config = &c
	if c.Created != nil {
		d.Created = *c.Created
	}
	d.Entrypoint, d.Cmd = shellWords(c.Config.Entrypoint), shellWords(c.Config.Cmd)
	d.Env = c.Config.Env
	d.Labels = sortedPairs(c.Config.Labels)
	for p := range c.Config.ExposedPorts {
		d.Ports = append(d.Ports, p)
	}
	slices.Sort(d.Ports)
	for i, hi := range c.History {
		if i == maxHistoryShown {
			break
		}
		row := historyRow{CreatedBy: hi.CreatedBy, Comment: hi.Comment, Empty: hi.EmptyLayer}
		if hi.Created != nil {
			row.Created = *hi.Created
		}
		d.History = append(d.History, row)
	}
	return d
}

// shellWords renders an exec-form command as JSON, as a Dockerfile writes it.
func shellWords(args []string) string {
	if len(args) == 0 {
		return ""
	}
	b, _ := json.Marshal(args)
	return string(b)
}

func prettyJSON(b []byte) string {
	if len(b) > maxRawManifestDisplay {
		return string(b[:maxRawManifestDisplay]) + "\n… (truncated)"
	}
	var out bytes.Buffer
	if json.Indent(&out, b, "", "  ") != nil {
		return string(b)
	}
	return out.String()
}

type deletePage struct {
	page
	Repo       string
	Crumbs     []crumb
	What       string // tag, manifest or repository
	Tag        string
	Digest     string
	Short      string
	SharedWith []string // tag: other tags on the same manifest
	Tags       []string // manifest: the tags that go with it
	Referrers  int
	TagCount   int
	Size       int64
	Action     string
	Cancel     string
	Error      string
}

// delete confirms (GET) and performs (POST) the deletion of a tag, a manifest
// or a whole repository. Deleting needs what the registry's API needs.
func (h *Handler) delete(q *request, repo string) {
	if !h.canWrite(q) {
		h.toLogin(q)
		return
	}
	v := q.r.URL.Query()
	if q.r.Method == http.MethodPost {
		v = q.r.PostForm
	}
	data := deletePage{page: h.page(q, "Delete", "repos"), Repo: repo, Crumbs: namespaceCrumbs(repo), Action: deleteURL(repo, nil), Cancel: repoURL(repo)}
	tags, err := h.src.Tags(q.ctx, repo)
	if err != nil {
		h.fail(q, err, "repository")
		return
	}
	byDigest := tagsByDigest(tags)
	switch {
	case v.Get("tag") != "":
		data.What, data.Tag = "tag", v.Get("tag")
		i := slices.IndexFunc(tags, func(t Tag) bool { return t.Name == data.Tag })
		if !validTag(data.Tag) || i < 0 {
			h.renderError(q, http.StatusNotFound, "No such tag.")
			return
		}
		data.Digest, data.Short = tags[i].Digest, shortDigest(tags[i].Digest)
		for _, o := range byDigest[data.Digest] {
			if o != data.Tag {
				data.SharedWith = append(data.SharedWith, o)
			}
		}
		data.Title = "Delete tag " + repo + ":" + data.Tag
	case v.Get("digest") != "":
		data.What, data.Digest = "manifest", v.Get("digest")
		if !validDigest(data.Digest) {
			h.renderError(q, http.StatusNotFound, "No such manifest.")
			return
		}
		if _, err := h.src.Manifest(q.ctx, repo, data.Digest); err != nil {
			h.fail(q, err, "manifest")
			return
		}
		data.Short, data.Tags = shortDigest(data.Digest), byDigest[data.Digest]
		refs, err := h.src.Referrers(q.ctx, repo, data.Digest)
		if err != nil {
			h.fail(q, err, "manifest")
			return
		}
		data.Referrers = len(refs)
		data.Cancel = manifestURL(repo, data.Digest)
		data.Title = "Delete manifest " + repo + "@" + data.Short
	default:
		data.What, data.TagCount = "repository", len(tags)
		sum, err := h.src.Repository(q.ctx, repo)
		if err != nil {
			h.fail(q, err, "repository")
			return
		}
		data.Size = sum.Size
		data.Title = "Delete repository " + repo
	}
	if q.r.Method != http.MethodPost {
		h.render(q, http.StatusOK, "delete", data)
		return
	}

	user := q.user
	var msg string
	next := repoURL(repo)
	switch data.What {
	case "tag":
		err = h.src.DeleteTag(q.ctx, user, repo, data.Tag)
		msg = fmt.Sprintf("Deleted tag %s:%s.", repo, data.Tag)
	case "manifest":
		err = h.src.DeleteManifest(q.ctx, user, repo, data.Digest)
		msg = fmt.Sprintf("Deleted manifest %s@%s and its %d tag(s).", repo, data.Short, len(data.Tags))
	case "repository":
		if v.Get("confirm") != repo {
			data.Error = "Type the repository's name to confirm."
			h.render(q, http.StatusUnprocessableEntity, "delete", data)
			return
		}
		var res RepositoryDeletion
		res, err = h.src.DeleteRepository(q.ctx, user, repo)
		msg = fmt.Sprintf("Deleted repository %s (%d manifests).", repo, res.Manifests)
		next = Prefix
		if err == nil && len(res.Remaining) > 0 {
			msg = fmt.Sprintf("Deleted %d manifests of %s, but tags were pushed meanwhile and remain: %s.", res.Manifests, repo, strings.Join(res.Remaining, ", "))
			next = repoURL(repo)
		}
	}
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			h.renderError(q, http.StatusNotFound, "It is gone already: nothing was deleted.")
			return
		}
		h.log.Error("ui: delete", "repository", repo, "what", data.What, "err", err)
		data.Error = "The registry could not delete it: " + err.Error()
		h.render(q, http.StatusInternalServerError, "delete", data)
		return
	}
	h.setFlash(q, flashDeleted, msg)
	http.Redirect(q.w, q.r, next, http.StatusSeeOther)
}

// flashes travel in a short-lived cookie, never in the URL (a link cannot put
// words on the page). Their kind says whether the garbage collection hint
// follows.
const flashCookie = "idpbuilder_flash"

type flashKind byte

const (
	flashPlain   flashKind = 'p'
	flashDeleted flashKind = 'd' // something was deleted: remind of GC
)

func (h *Handler) setFlash(q *request, kind flashKind, msg string) {
	setCookie(q.w, q.r, flashCookie, string(kind)+url.QueryEscape(msg), 60)
}

func (h *Handler) flashFrom(q *request) *flash {
	c, err := q.r.Cookie(flashCookie)
	if err != nil {
		return nil
	}
	clearCookie(q.w, q.r, flashCookie)
	if c.Value == "" {
		return nil
	}
	msg, err := url.QueryUnescape(c.Value[1:])
	if err != nil || msg == "" || len(msg) > 2048 {
		return nil
	}
	return &flash{Message: msg, GCHint: flashKind(c.Value[0]) == flashDeleted}
}

type loginPage struct {
	page
	Next     string
	UserName string
	Error    string
	NoLogin  bool
}

// login shows the form and checks it through the registry's login gate.
func (h *Handler) login(q *request) {
	next := safeNext(q.r.URL.Query().Get("next"))
	if q.r.Method == http.MethodPost {
		next = safeNext(q.r.PostForm.Get("next"))
	}
	data := loginPage{page: h.page(q, "Log in", "login"), Next: next, NoLogin: h.src.Policy() == PolicyNone}
	if q.r.Method != http.MethodPost {
		if q.user != "" {
			http.Redirect(q.w, q.r, next, http.StatusSeeOther)
			return
		}
		h.render(q, http.StatusOK, "login", data)
		return
	}
	if data.NoLogin {
		h.render(q, http.StatusBadRequest, "login", data)
		return
	}
	user, pass := q.r.PostForm.Get("username"), q.r.PostForm.Get("password")
	data.UserName = user
	id, err := h.src.Login(q.ctx, clientIP(q.r), user, pass)
	if err != nil {
		var retry *RetryError
		status := http.StatusUnauthorized
		switch {
		case errors.As(err, &retry):
			status = http.StatusTooManyRequests
			q.w.Header().Set("Retry-After", strconv.Itoa(int(retry.After.Seconds()+0.999)))
			data.Error = err.Error() + "."
		case errors.Is(err, ErrBadCredentials):
			data.Error = "Invalid user name or password."
		default:
			status = http.StatusInternalServerError
			h.log.Error("ui: login", "err", err)
			data.Error = "The registry could not check the password; its log has the details."
		}
		h.render(q, status, "login", data)
		return
	}
	// A new session id at every login: a cookie planted before cannot become a session.
	if q.session != "" {
		h.sess.remove(q.session)
	}
	setCookie(q.w, q.r, sessionCookie, h.sess.create(id), int(sessionLifetime/time.Second))
	clearCookie(q.w, q.r, anonCookie)
	h.log.Info("ui: login", "user", id.User, "client", clientIP(q.r))
	http.Redirect(q.w, q.r, next, http.StatusSeeOther)
}

// logout ends the session (POST only: a link must not log anyone out).
func (h *Handler) logout(q *request) {
	if q.r.Method != http.MethodPost {
		q.w.Header().Set("Allow", "POST")
		h.renderError(q, http.StatusMethodNotAllowed, "Log out with the button.")
		return
	}
	if q.session != "" {
		h.sess.remove(q.session)
	}
	clearCookie(q.w, q.r, sessionCookie)
	http.Redirect(q.w, q.r, Prefix, http.StatusSeeOther)
}

func clientIP(r *http.Request) string {
	host := r.RemoteAddr
	if i := strings.LastIndex(host, ":"); i >= 0 {
		host = strings.Trim(host[:i], "[]")
	}
	return host
}
