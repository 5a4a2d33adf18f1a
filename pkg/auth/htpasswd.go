// Package auth holds the registry's users (an htpasswd file with bcrypt hashes), a
// verifier that runs bcrypt once per credential instead of once per request, the
// access policy, and the Docker credential-helper protocol. It depends on no other
// package of ours.
package auth

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode"

	"golang.org/x/crypto/bcrypt"

	"github.com/idpbuilder/idpbuilder/internal/atomicfile"
)

// Htpasswd is a file of user:bcrypt-hash lines.
type Htpasswd struct {
	Path string
}

// ErrNoSuchUser is returned when removing a user that does not exist.
var ErrNoSuchUser = errors.New("no such user")

// ValidateUsername rejects names htpasswd cannot hold or people cannot type.
func ValidateUsername(u string) error {
	if u == "" {
		return errors.New("the user name is empty")
	}
	if len(u) > 128 {
		return errors.New("the user name is longer than 128 characters")
	}
	for _, r := range u {
		if r == ':' || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return fmt.Errorf("the user name %q contains %q (no colons, spaces or control characters)", u, r)
		}
	}
	return nil
}

// ValidatePassword rejects passwords bcrypt cannot hash or that are too short to mean anything.
func ValidatePassword(p string) error {
	switch {
	case len(p) < 8:
		return errors.New("the password is shorter than 8 characters")
	case len(p) > 72:
		return errors.New("the password is longer than 72 bytes (bcrypt's limit)")
	case strings.ContainsAny(p, "\r\n"):
		return errors.New("the password contains a line break")
	}
	return nil
}

// Load reads the users and their hashes; a missing file means no users.
func (h Htpasswd) Load() (map[string]string, error) {
	data, err := os.ReadFile(h.Path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	return parseHtpasswd(data)
}

func parseHtpasswd(data []byte) (map[string]string, error) {
	users := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" || hash == "" {
			return nil, fmt.Errorf("htpasswd line %d: want user:hash", n)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("htpasswd line %d (user %s): only bcrypt hashes are supported: %w", n, user, err)
		}
		users[user] = hash
	}
	return users, sc.Err()
}

// Users lists the user names, sorted.
func (h Htpasswd) Users() ([]string, error) {
	users, err := h.Load()
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(users))
	for u := range users {
		names = append(names, u)
	}
	slices.Sort(names)
	return names, nil
}

// Set adds the user or changes their password.
func (h Htpasswd) Set(user, password string) error {
	if err := ValidateUsername(user); err != nil {
		return err
	}
	if err := ValidatePassword(password); err != nil {
		return err
	}
	users, err := h.Load()
	if err != nil {
		return err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return fmt.Errorf("hash password: %w", err)
	}
	users[user] = string(hash)
	return h.write(users)
}

// Remove deletes the user.
func (h Htpasswd) Remove(user string) error {
	users, err := h.Load()
	if err != nil {
		return err
	}
	if _, ok := users[user]; !ok {
		return fmt.Errorf("%w: %s", ErrNoSuchUser, user)
	}
	delete(users, user)
	return h.write(users)
}

// write replaces the file atomically, readable by its owner only.
func (h Htpasswd) write(users map[string]string) error {
	names := make([]string, 0, len(users))
	for u := range users {
		names = append(names, u)
	}
	slices.Sort(names)
	var buf bytes.Buffer
	for _, u := range names {
		fmt.Fprintf(&buf, "%s:%s\n", u, users[u])
	}
	if err := os.MkdirAll(filepath.Dir(h.Path), 0o700); err != nil {
		return err
	}
	return atomicfile.Write(h.Path, buf.Bytes(), 0o600)
}
