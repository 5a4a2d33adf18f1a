package auth

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"
)

func TestHtpasswdSetRemoveList(t *testing.T) {
	path := filepath.Join(t.TempDir(), "auth", "htpasswd")
	h := Htpasswd{Path: path}
	require.NoError(t, h.Set("alice", "correct horse"))
	require.NoError(t, h.Set("bob", "battery staple"))
	require.NoError(t, h.Set("alice", "new password!")) // change

	users, err := h.Users()
	require.NoError(t, err)
	assert.Equal(t, []string{"alice", "bob"}, users)

	info, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "htpasswd is readable by its owner only")
	dir, err := os.Stat(filepath.Dir(path))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), dir.Mode().Perm())

	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.NotContains(t, string(raw), "new password!")
	m, err := h.Load()
	require.NoError(t, err)
	assert.NoError(t, bcrypt.CompareHashAndPassword([]byte(m["alice"]), []byte("new password!")))

	require.NoError(t, h.Remove("bob"))
	assert.ErrorIs(t, h.Remove("bob"), ErrNoSuchUser)
	users, _ = h.Users()
	assert.Equal(t, []string{"alice"}, users)
}

func TestValidation(t *testing.T) {
	h := Htpasswd{Path: filepath.Join(t.TempDir(), "htpasswd")}
	tests := []struct{ user, pass, want string }{
		{"", "long enough", "empty"},
		{"a:b", "long enough", "colons"},
		{"a b", "long enough", "spaces"},
		{"alice", "short", "shorter than 8"},
		{"alice", string(make([]byte, 73)), "72 bytes"},
		{"alice", "line\nbreak", "line break"},
	}
	for _, tt := range tests {
		err := h.Set(tt.user, tt.pass)
		require.Error(t, err, tt)
		assert.Contains(t, err.Error(), tt.want)
	}
	_, err := os.Stat(h.Path)
	assert.True(t, os.IsNotExist(err), "nothing written")
}

func TestLoadRejectsNonBcrypt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "htpasswd")
	require.NoError(t, os.WriteFile(path, []byte("alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n"), 0o600))
	_, err := Htpasswd{Path: path}.Load()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "only bcrypt")
}

func TestVerifierCachesAndNoticesChanges(t *testing.T) {
	h := Htpasswd{Path: filepath.Join(t.TempDir(), "htpasswd")}
	require.NoError(t, h.Set("alice", "first password"))
	v := NewVerifier(h)

	ok, err := v.Verify("alice", "first password")
	require.NoError(t, err)
	assert.True(t, ok)
	ok, _ = v.Verify("alice", "wrong password")
	assert.False(t, ok)
	ok, _ = v.Verify("mallory", "first password")
	assert.False(t, ok)

	// Cached: the second check costs no bcrypt. Compare with the first in one run.
	h2 := Htpasswd{Path: filepath.Join(t.TempDir(), "htpasswd")}
	require.NoError(t, h2.Set("carol", "carol's password"))
	v2 := NewVerifier(h2)
	t0 := time.Now()
	ok, _ = v2.Verify("carol", "carol's password")
	cold := time.Since(t0)
	t1 := time.Now()
	for range 100 {
		ok2, _ := v2.Verify("carol", "carol's password")
		require.True(t, ok2)
	}
	warm := time.Since(t1) / 100
	assert.True(t, ok)
	t.Logf("first verify %s, cached verify %s", cold, warm)
	assert.Less(t, warm*20, cold, "a cached check must cost far less than bcrypt")

	// A changed password invalidates the cache.
	time.Sleep(10 * time.Millisecond) // distinct mtime on coarse filesystems
	require.NoError(t, h.Set("alice", "second password"))
	ok, _ = v.Verify("alice", "first password")
	assert.False(t, ok, "old password after change")
	ok, _ = v.Verify("alice", "second password")
	assert.True(t, ok)

	require.NoError(t, h.Remove("alice"))
	ok, _ = v.Verify("alice", "second password")
	assert.False(t, ok, "removed user")
	has, err := v.HasUsers()
	require.NoError(t, err)
	assert.False(t, has)
}

func TestParseBasic(t *testing.T) {
	enc := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		header, user, pass string
		ok                 bool
	}{
		{"Basic " + enc("alice:pw"), "alice", "pw", true},
		{"basic " + enc("alice:pw:with:colons"), "alice", "pw:with:colons", true},
		{"BASIC   " + enc("a:"), "a", "", true},
		{"Bearer abc", "", "", false},
		{"Basic !!!", "", "", false},
		{"Basic " + enc("nocolon"), "", "", false},
		{"Basic " + enc(":pw"), "", "", false},
		{"", "", "", false},
		{"Basic", "", "", false},
	}
	for _, tt := range tests {
		u, p, ok := ParseBasic(tt.header)
		assert.Equal(t, tt.ok, ok, tt.header)
		assert.Equal(t, tt.user, u, tt.header)
		assert.Equal(t, tt.pass, p, tt.header)
	}
}

func FuzzParseBasic(f *testing.F) {
	f.Add("Basic YWxpY2U6cHc=")
	f.Add("basic ")
	f.Add("Bearer x")
	f.Add("Basic " + base64.StdEncoding.EncodeToString([]byte("a:b:c")))
	f.Fuzz(func(t *testing.T, header string) {
		u, p, ok := ParseBasic(header)
		if ok {
			// Round trip: what we parsed encodes back to something that parses the same.
			u2, p2, ok2 := ParseBasic("Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p)))
			if !ok2 || u2 != u || p2 != p {
				t.Fatalf("round trip of %q: %q %q", header, u2, p2)
			}
		}
	})
}

func TestPolicy(t *testing.T) {
	tests := []struct {
		p      Policy
		method string
		want   bool
	}{
		{PolicyNone, "PUT", false},
		{PolicyPush, "GET", false},
		{PolicyPush, "HEAD", false},
		{PolicyPush, "POST", true},
		{PolicyPush, "PATCH", true},
		{PolicyPush, "PUT", true},
		{PolicyPush, "DELETE", true},
		{PolicyAll, "GET", true},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tt.p.Requires(tt.method), "%s %s", tt.p, tt.method)
	}
	_, err := ParsePolicy("some")
	assert.Error(t, err)
	p, err := ParsePolicy(" ALL ")
	require.NoError(t, err)
	assert.Equal(t, PolicyAll, p)
}
