// Package ui is the registry's web UI: server-rendered pages over a Source (the
// registry, in process), served at /ui/ on the registry's own address. Every
// asset is embedded; pages load nothing from anywhere else, run no inline script
// or style, and are sent with a Content-Security-Policy that forbids both.
package ui

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"path"
	"strings"
	"time"
)

//go:embed assets
var assets embed.FS

// Prefix is where the UI is mounted.
const Prefix = "/ui/"

// contentSecurityPolicy allows the page's own scripts, styles and images only:
// nothing inline, nothing from another origin, no framing.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Config configures the UI.
type Config struct {
	// ClusterHost is the host:port pods pull this registry's images by, for
	// kubectl commands (e.g. registry.local:5000); empty means the address the
	// browser used.
	ClusterHost string
	// Hosts are host names, besides localhost and IP addresses, the UI answers
	// to. Requests naming another host are refused, so a web page cannot reach
	// the UI through a DNS name rebound to this machine.
	Hosts []string
	// Logger receives the UI's own logs; nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Handler serves the UI.
type Handler struct {
	src    Source
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	pages  map[string]*template.Template
	static map[string]staticFile
	assetV string
	sess   *sessions
	sums   *summaryCache
}

type staticFile struct {
	body  []byte
	ctype string
}

// New returns the UI over src.
func New(src Source, cfg Config) (*Handler, error) {
	h := &Handler{src: src, cfg: cfg, log: cfg.Logger, now: cfg.Now, static: map[string]staticFile{}, pages: map[string]*template.Template{}}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.now == nil {
		h.now = time.Now
	}
	h.sess = newSessions(h.now)
	h.sums = newSummaryCache(4096)

	sum := sha256.New()
	err := fs.WalkDir(assets, "assets/static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		sum.Write(b)
		ctype := mime.TypeByExtension(path.Ext(p))
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		h.static[path.Base(p)] = staticFile{body: b, ctype: ctype}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ui assets: %w", err)
	}
	h.assetV = hex.EncodeToString(sum.Sum(nil))[:12]

	names, err := fs.Glob(assets, "assets/templates/page_*.html")
	if err != nil {
		return nil, fmt.Errorf("ui templates: %w", err)
	}
	for _, n := range names {
		t, err := template.New(path.Base(n)).Funcs(funcs).ParseFS(assets, "assets/templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("ui template %s: %w", n, err)
		}
		h.pages[strings.TrimSuffix(strings.TrimPrefix(path.Base(n), "page_"), ".html")] = t
	}
	return h, nil
}

var funcs = template.FuncMap{
	"size":  formatSize,
	"short": shortDigest,
	"iso":   func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"when": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"join": strings.Join,
	"add":  func(a, b int) int { return a + b },
}

// request is what every page knows about the request it answers.
type request struct {
	w       http.ResponseWriter
	r       *http.Request
	ctx     context.Context
	now     time.Time
	user    string // "" when anonymous
	session string // the session cookie, when logged in
	anon    string // the anonymous cookie, when not
	theme   string
	ep      endpoint
}

// ServeHTTP serves every path under /ui/.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", contentSecurityPolicy)
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	hd.Set("Cross-Origin-Resource-Policy", "same-origin")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	if !h.hostAllowed(r.Host) {
		http.Error(w, "the registry UI answers only to localhost, IP addresses and the registry's own names", http.StatusMisdirectedRequest)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, Prefix)
	if !ok {
		http.Redirect(w, r, Prefix, http.StatusFound)
		return
	}
	if name, ok := strings.CutPrefix(rest, "static/"); ok {
		h.serveStatic(w, r, name)
		return
	}
	hd.Set("Cache-Control", "no-store") // pages carry CSRF tokens and private data

	q := &request{w: w, r: r, ctx: r.Context(), now: h.now(), ep: newEndpoint(r.Host, r.TLS != nil, h.cfg.ClusterHost)}
	h.identify(q)

	if r.Method == http.MethodPost {
		if !h.checkCSRF(q) {
			h.renderError(q, http.StatusForbidden, "This form has expired or did not come from this page. Reload the page and try again.")
			return
		}
	} else if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hd.Set("Allow", "GET, HEAD, POST")
		h.renderError(q, http.StatusMethodNotAllowed, "Method not allowed.")
		return
	}

	switch {
	case rest == "login":
		h.login(q)
		return
	case rest == "logout":
		h.logout(q)
		return
	}
	if h.src.Policy() == PolicyAll && q.user == "" {
		h.toLogin(q)
		return
	}
	switch {
	case rest == "":
		h.onlyGet(q, h.repositories)
	case rest == "storage":
		h.onlyGet(q, h.storage)
	case rest == "storage/gc":
		h.gc(q)
	case strings.HasPrefix(rest, "repo/"):
		h.repoRoutes(q, strings.TrimPrefix(rest, "repo/"))
	default:
		h.renderError(q, http.StatusNotFound, "No such page.")
	}
}

// repoRoutes serves /ui/repo/<name>[/-/<action>...]: a repository name never
// has a "-" component, so "/-/" separates the name from the rest.
func (h *Handler) repoRoutes(q *request, rest string) {
	name, action, _ := strings.Cut(rest, "/-/")
	name = strings.TrimSuffix(name, "/")
	if !validRepository(name) {
		h.renderError(q, http.StatusNotFound, "No such repository.")
		return
	}
	switch {
	case action == "":
		h.onlyGet(q, func(q *request) { h.repository(q, name) })
	case strings.HasPrefix(action, "manifest/"):
		ref := strings.TrimPrefix(action, "manifest/")
		if !validTag(ref) && !validDigest(ref) {
			h.renderError(q, http.StatusNotFound, "No such manifest.")
			return
		}
		h.onlyGet(q, func(q *request) { h.manifest(q, name, ref) })
	case action == "delete":
		h.delete(q, name)
	default:
		h.renderError(q, http.StatusNotFound, "No such page.")
	}
}

func (h *Handler) onlyGet(q *request, page func(*request)) {
	if q.r.Method != http.MethodGet && q.r.Method != http.MethodHead {
		q.w.Header().Set("Allow", "GET, HEAD")
		h.renderError(q, http.StatusMethodNotAllowed, "Method not allowed.")
		return
	}
	page(q)
}

// hostAllowed accepts loopback names, IP literals and the configured names.
func (h *Handler) hostAllowed(hostport string) bool {
	host := hostport
	if hh, _, err := net.SplitHostPort(hostport); err == nil {
		host = hh
	}
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	for _, n := range h.cfg.Hosts {
		if strings.EqualFold(strings.TrimSuffix(n, "."), host) {
			return true
		}
	}
	return false
}

func (h *Handler) serveStatic(w http.ResponseWriter, r *http.Request, name string) {
	f, ok := h.static[name]
	if !ok || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", f.ctype)
	// Asset URLs carry the assets' hash: a new binary means new URLs.
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.body))
}

// identify finds the browser's session, ending it when it expired or its user
// was removed or changed password, and gives anonymous browsers a cookie for
// their CSRF tokens.
func (h *Handler) identify(q *request) {
	if c, err := q.r.Cookie(sessionCookie); err == nil {
		if s, ok := h.sess.lookup(c.Value); ok && h.src.Current(s.id) {
			q.user, q.session = s.id.User, c.Value
		} else {
			h.sess.remove(c.Value)
			clearCookie(q.w, q.r, sessionCookie)
		}
	}
	if c, err := q.r.Cookie(themeCookie); err == nil && (c.Value == "light" || c.Value == "dark") {
		q.theme = c.Value
	}
	if q.user != "" {
		return
	}
	if c, err := q.r.Cookie(anonCookie); err == nil && len(c.Value) >= 32 && len(c.Value) <= 128 {
		q.anon = c.Value
		return
	}
	q.anon = newToken()
	setCookie(q.w, q.r, anonCookie, q.anon, 0)
}

// csrf is the token forms of this page carry.
func (h *Handler) csrf(q *request) string {
	if q.user != "" {
		return h.sess.csrfToken("session", q.session)
	}
	return h.sess.csrfToken("anon", q.anon)
}

// checkCSRF refuses a POST whose token does not match the browser's cookie, or
// that a browser says came from another site.
func (h *Handler) checkCSRF(q *request) bool {
	if site := q.r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return false
	}
	if o := q.r.Header.Get("Origin"); o != "" && o != "null" {
		scheme := "http://"
		if q.r.TLS != nil {
			scheme = "https://"
		}
		if !strings.EqualFold(o, scheme+q.r.Host) {
			return false
		}
	}
	q.r.Body = http.MaxBytesReader(q.w, q.r.Body, 64<<10)
	if err := q.r.ParseForm(); err != nil {
		return false
	}
	return tokensEqual(q.r.PostForm.Get("csrf"), h.csrf(q))
}

// canWrite reports whether the browser may delete: the API needs a user for
// that under every policy but none.
func (h *Handler) canWrite(q *request) bool {
	return h.src.Policy() == PolicyNone || q.user != ""
}

func (h *Handler) toLogin(q *request) {
	next := q.r.URL.RequestURI()
	if q.r.Method != http.MethodGet {
		next = Prefix
		if ref := q.r.PostForm.Get("next"); ref != "" {
			next = ref
		}
	}
	http.Redirect(q.w, q.r, Prefix+"login?next="+urlQueryEscape(safeNext(next)), http.StatusSeeOther)
}

// page is what the layout needs from every page.
type page struct {
	Title     string
	Nav       string
	Theme     string
	User      string
	Policy    Policy
	CanWrite  bool
	CSRF      string
	Asset     string
	Here      string // this page's path and query, for "log in" links
	Flash     *flash
	LoginNext string // where the login form returns to (the template escapes it)
	PullHost  string // host:port clients pull from
	Secure    bool   // served over TLS
}

type flash struct {
	Message string
	GCHint  bool
}

func (h *Handler) page(q *request, title, nav string) page {
	return page{
		Title: title, Nav: nav, Theme: q.theme, User: q.user, Policy: h.src.Policy(),
		CanWrite: h.canWrite(q), CSRF: h.csrf(q), Asset: h.assetV, Here: q.r.URL.RequestURI(),
		LoginNext: safeNext(q.r.URL.RequestURI()), PullHost: q.ep.Host, Secure: q.r.TLS != nil,
	}
}

func (h *Handler) render(q *request, status int, name string, data any) {
	t, ok := h.pages[name]
	if !ok {
		h.log.Error("ui: no such template", "name", name)
		http.Error(q.w, "internal error", http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", data); err != nil {
		h.log.Error("ui: render page", "page", name, "err", err)
		http.Error(q.w, "internal error", http.StatusInternalServerError)
		return
	}
	q.w.Header().Set("Content-Type", "text/html; charset=utf-8")
	q.w.WriteHeader(status)
	if q.r.Method != http.MethodHead {
		_, _ = q.w.Write(buf.Bytes())
	}
}

type errorPage struct {
	page
	Status  int
	Message string
}

func (h *Handler) renderError(q *request, status int, msg string) {
	h.render(q, status, "error", errorPage{page: h.page(q, http.StatusText(status), ""), Status: status, Message: msg})
}

// fail renders a Source error: not found as 404, anything else as a 500 whose
// details go to the log only.
func (h *Handler) fail(q *request, err error, what string) {
	if errors.Is(err, ErrNotFound) {
		h.renderError(q, http.StatusNotFound, "No such "+what+".")
		return
	}
	if errors.Is(err, context.Canceled) {
		return
	}
	h.log.Error("ui: "+what, "path", q.r.URL.Path, "err", err)
	h.renderError(q, http.StatusInternalServerError, "The registry could not read this "+what+"; its log has the details.")
}
