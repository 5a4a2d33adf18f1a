package auth

import (
	"encoding/base64"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTokenRoundTrip(t *testing.T) {
	s := NewTokenSigner([]byte("data dir secret"))
	access := []Access{{Type: "repository", Name: "team/app", Actions: []string{"pull", "push"}}}
	tok, issued, err := s.Issue("alice", "stamp1", access)
	require.NoError(t, err)
	assert.Equal(t, int64(DefaultTokenLifetime/time.Second), issued.Expiry-issued.IssuedAt)

	got, err := s.Verify(tok)
	require.NoError(t, err)
	assert.Equal(t, issued, got)
	assert.Equal(t, "alice", got.Subject)
	assert.Equal(t, access, got.Access)

	// Another signer from the same secret (the registry after a restart) accepts it.
	_, err = NewTokenSigner([]byte("data dir secret")).Verify(tok)
	assert.NoError(t, err)
}

func TestTokenRejected(t *testing.T) {
	secret := []byte("data dir secret")
	s := NewTokenSigner(secret)
	tok, _, err := s.Issue("alice", "stamp1", []Access{{Type: "repository", Name: "a", Actions: []string{"pull"}}})
	require.NoError(t, err)
	header, rest, _ := strings.Cut(tok, ".")
	payload, sig, _ := strings.Cut(rest, ".")
	enc := base64.RawURLEncoding.EncodeToString

	past := *s
	past.Now = func() time.Time { return time.Now().Add(-time.Hour) }
	expired, _, err := past.Issue("alice", "stamp1", nil)
	require.NoError(t, err)
	future := *s
	future.Now = func() time.Time { return time.Now().Add(time.Hour) }
	notYet, _, err := future.Issue("alice", "stamp1", nil)
	require.NoError(t, err)
	other, _, err := NewTokenSigner([]byte("another secret")).Issue("alice", "stamp1", nil)
	require.NoError(t, err)

	// The last character of a 32-byte signature carries 4 bits and 2 zero
	// bits: a lenient decoder accepts four spellings of one signature.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, sig[len(sig)-1])
	respelled := sig[:len(sig)-1] + string(alphabet[i&^3|(i+1)&3])
	lenient, err := base64.RawURLEncoding.DecodeString(respelled)
	require.NoError(t, err)
	orig, _ := base64.RawURLEncoding.DecodeString(sig)
	require.Equal(t, orig, lenient, "the respelling decodes to the same signature when decoding leniently")

	// A payload granting push, signed with nothing.
	escalated := enc([]byte(`{"iss":"idpbuilder-registry","aud":"idpbuilder-registry","sub":"alice","exp":9999999999,"access":[{"type":"repository","name":"a","actions":["push"]}]}`))

	tests := map[string]struct {
		token string
		want  error
	}{
		"expired":                {expired, ErrTokenExpired},
		"not yet valid":          {notYet, ErrTokenExpired},
		"other key":              {other, ErrTokenInvalid},
		"alg none":               {enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + escalated + ".", ErrTokenInvalid},
		"payload swapped":        {header + "." + escalated + "." + sig, ErrTokenInvalid},
		"no signature":           {header + "." + payload + ".", ErrTokenInvalid},
		"signature padding bits": {header + "." + payload + "." + respelled, ErrTokenInvalid},
		"two parts":              {header + "." + payload, ErrTokenInvalid},
		"empty":                  {"", ErrTokenInvalid},
		"huge":                   {strings.Repeat("a", maxTokenLength+1), ErrTokenInvalid},
		"HS384 header":           {enc([]byte(`{"alg":"HS384","typ":"JWT"}`)) + "." + payload + "." + sig, ErrTokenInvalid},
	}
	for name, tt := range tests {
		_, err := s.Verify(tt.token)
		assert.ErrorIs(t, err, tt.want, name)
	}
}

func TestParseScopes(t *testing.T) {
	tests := []struct {
		in      []string
		want    []Access
		wantErr string
	}{
		{nil, nil, ""},
		{[]string{"repository:a/b:pull,push"}, []Access{{"repository", "a/b", []string{"pull", "push"}}}, ""},
		// Several scopes in one value (OAuth2, or copied from a challenge), and repeats merged.
		{[]string{"repository:b:push repository:a:pull", "repository:b:pull"},
			[]Access{{"repository", "b", []string{"pull", "push"}}, {"repository", "a", []string{"pull"}}}, ""},
		// A name with a registry host and port: the actions follow the last colon.
		{[]string{"repository:localhost:5001/app:pull"}, []Access{{"repository", "localhost:5001/app", []string{"pull"}}}, ""},
		{[]string{"registry:catalog:*"}, []Access{{"registry", "catalog", []string{"*"}}}, ""},
		{[]string{"repository:a:"}, []Access{{"repository", "a", []string{}}}, ""},
		{[]string{"repository"}, nil, "want type:name:actions"},
		{[]string{"repository:a"}, nil, "want type:name:actions"},
		{[]string{":a:pull"}, nil, "empty"},
		{[]string{strings.Repeat("repository:x:pull ", 2) + "repository::pull"}, nil, "empty"},
	}
	for _, tt := range tests {
		got, err := ParseScopes(tt.in)
		if tt.wantErr != "" {
			require.Error(t, err, tt.in)
			assert.Contains(t, err.Error(), tt.wantErr)
			continue
		}
		require.NoError(t, err, tt.in)
		assert.Equal(t, tt.want, got, tt.in)
	}

	var many []string
	for i := range MaxTokenAccess + 1 {
		many = append(many, "repository:r"+strings.Repeat("x", i)+":pull")
	}
	_, err := ParseScopes([]string{strings.Join(many, " ")})
	assert.ErrorContains(t, err, "more than 32 scopes")
}

func TestStampFollowsThePassword(t *testing.T) {
	h := Htpasswd{Path: filepath.Join(t.TempDir(), "htpasswd")}
	require.NoError(t, h.Set("alice", "first password"))
	v := NewVerifier(h)
	s1, ok, err := v.Stamp("alice")
	require.NoError(t, err)
	require.True(t, ok)
	again, _, _ := v.Stamp("alice")
	assert.Equal(t, s1, again)

	require.NoError(t, h.Set("alice", "second password"))
	s2, ok, err := v.Stamp("alice")
	require.NoError(t, err)
	require.True(t, ok)
	assert.NotEqual(t, s1, s2, "a new password gives a new stamp")

	require.NoError(t, h.Remove("alice"))
	_, ok, err = v.Stamp("alice")
	require.NoError(t, err)
	assert.False(t, ok)
}

// BenchmarkTokenVerify is the per-request cost of a Bearer token.
func BenchmarkTokenVerify(b *testing.B) {
	s := NewTokenSigner([]byte("data dir secret"))
	tok, _, err := s.Issue("alice", "stamp1", []Access{
		{Type: "repository", Name: "team/app", Actions: []string{"pull", "push"}},
		{Type: "repository", Name: "team/base", Actions: []string{"pull"}},
	})
	require.NoError(b, err)
	for b.Loop() {
		if _, err := s.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}
