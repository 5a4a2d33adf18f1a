package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Verifier checks user/password pairs against an htpasswd file.
//
// bcrypt is deliberately slow (tens of milliseconds); distribution's htpasswd
// runs it on every request, which made an OCI conformance run 38x slower. Here a
// credential is verified with bcrypt once; after that its HMAC (keyed with a
// random per-process key, so the cache never holds anything reusable) is
// remembered for that user's current hash. Changing the file (a new password, a
// removed user) drops the cache.
type Verifier struct {
	File Htpasswd

	mu      sync.Mutex
	key     []byte
	stamp   fileStamp
	users   map[string]string
	checked map[string]map[[32]byte]bool // user -> HMAC(user, password) -> ok
}

type fileStamp struct {
	size int64
	mod  time.Time
	ok   bool
}

// maxCachedPerUser bounds the cache for one user (several clients, old passwords).
const maxCachedPerUser = 32

// NewVerifier returns a verifier for the htpasswd file.
func NewVerifier(file Htpasswd) *Verifier {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return &Verifier{File: file, key: key}
}

// HasUsers reports whether the file has at least one user.
func (v *Verifier) HasUsers() (bool, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.reloadLocked(); err != nil {
		return false, err
	}
	return len(v.users) > 0, nil
}

// Verify reports whether password is user's password.
func (v *Verifier) Verify(user, password string) (bool, error) {
	v.mu.Lock()
	if err := v.reloadLocked(); err != nil {
		v.mu.Unlock()
		return false, err
	}
	hash, ok := v.users[user]
	if !ok {
		v.mu.Unlock()
		// Same cost as a real check, so timing does not reveal which users exist.
		_ = bcrypt.CompareHashAndPassword(dummyHash(), []byte(password))
		return false, nil
	}
	mac := v.macLocked(user, password)
	if v.checked[user][mac] {
		v.mu.Unlock()
		return true, nil
	}
	v.mu.Unlock()

	// bcrypt outside the lock: other users' requests are not held up.
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) != nil {
		return false, nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.users[user] != hash { // the file changed meanwhile: do not cache
		return true, nil
	}
	m := v.checked[user]
	if m == nil || len(m) >= maxCachedPerUser {
		m = map[[32]byte]bool{}
		v.checked[user] = m
	}
	m[mac] = true
	return true, nil
}

// Known reports whether user/password was verified before and the file has not
// changed since: a check that costs no bcrypt, so callers may skip rate limits
// meant for guesses.
func (v *Verifier) Known(user, password string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.reloadLocked(); err != nil {
		return false
	}
	return v.checked[user][v.macLocked(user, password)]
}

func (v *Verifier) macLocked(user, password string) [32]byte {
	h := hmac.New(sha256.New, v.key)
	h.Write([]byte(user))
	h.Write([]byte{0})
	h.Write([]byte(password))
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

func (v *Verifier) reloadLocked() error {
	info, err := os.Stat(v.File.Path)
	var st fileStamp
	if err == nil {
		st = fileStamp{size: info.Size(), mod: info.ModTime(), ok: true}
	} else if !os.IsNotExist(err) {
		return err
	}
	if v.users != nil && st == v.stamp {
		return nil
	}
	users, err := v.File.Load()
	if err != nil {
		return err
	}
	v.users, v.stamp, v.checked = users, st, map[string]map[[32]byte]bool{}
	return nil
}

// dummyHash is a bcrypt hash of nothing anyone knows, for constant-ish timing;
// made on first use, not at program start.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("idpbuilder-no-such-user"), bcrypt.DefaultCost)
	return h
})

// ParseBasic parses an "Authorization: Basic ..." header value.
func ParseBasic(header string) (user, password string, ok bool) {
	const prefix = "basic "
	if len(header) < len(prefix) || !strings.EqualFold(header[:len(prefix)], prefix) {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(header[len(prefix):]))
	if err != nil {
		return "", "", false
	}
	user, password, ok = strings.Cut(string(raw), ":")
	if !ok || user == "" {
		return "", "", false
	}
	return user, password, true
}
