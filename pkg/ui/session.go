package ui

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Cookie names. The cookies are scoped to /ui/, HttpOnly and SameSite=Strict
// (a cross-site request never carries them), Secure when served over TLS.
const (
	sessionCookie = "idpbuilder_session"
	anonCookie    = "idpbuilder_anon"
	themeCookie   = "idpbuilder_theme"
	cookiePath    = "/ui/"
)

// Session lifetimes and bounds.
const (
	sessionLifetime = 8 * time.Hour    // absolute: log in again after this
	sessionIdle     = 30 * time.Minute // unused for this long: ended
	maxSessions     = 1000             // across all users; the oldest goes first
	maxUserSessions = 20               // per user (browsers, devices)
)

// session is a logged-in browser. Anonymous visitors have no server state:
// their CSRF token is derived from a random cookie (signed double submit), so
// no number of anonymous requests can fill memory or evict a real session.
type session struct {
	id       Identity
	created  time.Time
	lastSeen time.Time
}

// sessions are the logged-in browsers, keyed by the SHA-256 of their cookie
// (a memory dump does not hand out live cookies).
type sessions struct {
	key []byte // HMAC key for CSRF tokens; per process, like the sessions
	now func() time.Time

	mu sync.Mutex
	m  map[[32]byte]*session
}

func newSessions(now func() time.Time) *sessions {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return &sessions{key: key, now: now, m: map[[32]byte]*session{}}
}

func newToken() string { return rand.Text() + rand.Text() }

func hashToken(tok string) [32]byte { return sha256.Sum256([]byte(tok)) }

// create starts a session and returns its cookie value.
func (s *sessions) create(id Identity) string {
	tok := newToken()
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked(now)
	// Bound the store: per user, then overall, dropping the least recently used.
	var mine []([32]byte)
	for k, v := range s.m {
		if v.id.User == id.User {
			mine = append(mine, k)
		}
	}
	for len(mine) >= maxUserSessions {
		mine = s.dropOldestLocked(mine)
	}
	if len(s.m) >= maxSessions {
		all := make([][32]byte, 0, len(s.m))
		for k := range s.m {
			all = append(all, k)
		}
		s.dropOldestLocked(all)
	}
	s.m[hashToken(tok)] = &session{id: id, created: now, lastSeen: now}
	return tok
}

func (s *sessions) dropOldestLocked(keys [][32]byte) [][32]byte {
	oldest := 0
	for i, k := range keys {
		if s.m[k].lastSeen.Before(s.m[keys[oldest]].lastSeen) {
			oldest = i
		}
	}
	delete(s.m, keys[oldest])
	return append(keys[:oldest], keys[oldest+1:]...)
}

func (s *sessions) expireLocked(now time.Time) {
	for k, v := range s.m {
		if s.expired(v, now) {
			delete(s.m, k)
		}
	}
}

func (s *sessions) expired(v *session, now time.Time) bool {
	return now.Sub(v.created) >= sessionLifetime || now.Sub(v.lastSeen) >= sessionIdle
}

// lookup returns the live session of a cookie value and marks it used.
func (s *sessions) lookup(tok string) (*session, bool) {
	if tok == "" {
		return nil, false
	}
	k := hashToken(tok)
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[k]
	if !ok {
		return nil, false
	}
	if s.expired(v, now) {
		delete(s.m, k)
		return nil, false
	}
	v.lastSeen = now
	return v, true
}

func (s *sessions) remove(tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, hashToken(tok))
}

// count is the number of stored sessions (for tests).
func (s *sessions) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// csrfToken binds a form to the cookie that identifies the browser: a
// logged-in session, else the anonymous cookie.
func (s *sessions) csrfToken(kind, tok string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(kind))
	m.Write([]byte{0})
	m.Write([]byte(tok))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func tokensEqual(a, b string) bool {
	return a != "" && b != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: cookiePath, MaxAge: maxAge,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
	})
}

func clearCookie(w http.ResponseWriter, r *http.Request, name string) {
	setCookie(w, r, name, "", -1)
}

// safeNext returns next when it is a path of the UI on this origin, else the
// UI's root: a login link must never send the browser elsewhere. next is
// checked as the browser will read it (raw), and returned as it came.
func safeNext(next string) string {
	const home = "/ui/"
	if !strings.HasPrefix(next, home) || len(next) > 2048 || strings.ContainsAny(next, "\\\r\n\t") || strings.Contains(next, "//") {
		return home
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" || !strings.HasPrefix(u.Path, home) {
		return home
	}
	for seg := range strings.SplitSeq(u.Path, "/") {
		if seg == ".." || seg == "." {
			return home
		}
	}
	if strings.HasPrefix(u.Path, "/ui/login") || strings.HasPrefix(u.Path, "/ui/logout") {
		return home
	}
	return next
}
