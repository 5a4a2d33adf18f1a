package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Registry tokens are the docker distribution token flow's Bearer tokens:
// JWTs (RFC 7519) with the spec's "access" claim. The registry issues them
// itself and checks them itself, so they are signed with HMAC-SHA256 under a
// key derived from the data dir's secret (tokens survive restarts, and a key
// never leaves the process) instead of a certificate chain.

const (
	// TokenService names the registry as the token's audience; clients echo
	// it from the challenge's service parameter.
	TokenService = "idpbuilder-registry"
	// TokenIssuer is the token's iss claim.
	TokenIssuer = "idpbuilder-registry"
	// DefaultTokenLifetime is short: clients fetch a new token when one
	// expires, and a token outlives a removed user by no more than its stamp
	// check allows (not at all) while an anonymous one stays harmless.
	DefaultTokenLifetime = 5 * time.Minute
	// MaxTokenAccess bounds the access entries of one token, so a token stays
	// far below the header size limit.
	MaxTokenAccess = 32
	// maxTokenLength bounds what Verify reads.
	maxTokenLength = 16 << 10
)

// Actions of the distribution token spec.
const (
	ActionPull   = "pull"
	ActionPush   = "push"
	ActionDelete = "delete"
	ActionAll    = "*"
)

// Access is one scope: a resource and the actions on it, such as
// repository:team/app:pull,push or registry:catalog:*.
type Access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// String formats a as a scope, type:name:actions.
func (a Access) String() string {
	return a.Type + ":" + a.Name + ":" + strings.Join(a.Actions, ",")
}

// Has reports whether a lists action, or "*".
func (a Access) Has(action string) bool {
	return slices.Contains(a.Actions, action) || slices.Contains(a.Actions, ActionAll)
}

// ScopeError is a scope parameter that is not type:name:actions.
type ScopeError struct {
	Scope  string
	Reason string
}

func (e *ScopeError) Error() string {
	return fmt.Sprintf("scope %q: %s", e.Scope, e.Reason)
}

// ParseScopes parses scope parameters. Each value may hold several scopes
// separated by spaces (OAuth2 form, and what clients copy from a challenge).
// Scopes for the same resource are merged; actions come out sorted.
func ParseScopes(values []string) ([]Access, error) {
	var out []Access
	for _, v := range values {
		for s := range strings.FieldsSeq(v) {
			typ, rest, ok1 := strings.Cut(s, ":")
			i := strings.LastIndexByte(rest, ':')
			if !ok1 || i < 0 {
				return nil, &ScopeError{Scope: s, Reason: "want type:name:actions, e.g. repository:team/app:pull,push"}
			}
			name, actions := rest[:i], rest[i+1:]
			if typ == "" || name == "" {
				return nil, &ScopeError{Scope: s, Reason: "the type or name is empty"}
			}
			out = mergeAccess(out, Access{Type: typ, Name: name, Actions: strings.Split(actions, ",")})
			if len(out) > MaxTokenAccess {
				return nil, &ScopeError{Scope: s, Reason: fmt.Sprintf("more than %d scopes in one request", MaxTokenAccess)}
			}
		}
	}
	return out, nil
}

// mergeAccess adds a to list, joining it with an entry for the same resource.
func mergeAccess(list []Access, a Access) []Access {
	acts := slices.DeleteFunc(slices.Clone(a.Actions), func(s string) bool { return s == "" })
	for i := range list {
		if list[i].Type == a.Type && list[i].Name == a.Name {
			list[i].Actions = slices.Compact(slices.Sorted(slices.Values(append(list[i].Actions, acts...))))
			return list
		}
	}
	slices.Sort(acts)
	return append(list, Access{Type: a.Type, Name: a.Name, Actions: slices.Compact(acts)})
}

// TokenClaims are what a token says.
type TokenClaims struct {
	Issuer    string `json:"iss"`
	Subject   string `json:"sub,omitempty"` // the user; empty for an anonymous token
	Audience  string `json:"aud"`
	IssuedAt  int64  `json:"iat"`
	NotBefore int64  `json:"nbf"`
	Expiry    int64  `json:"exp"`
	ID        string `json:"jti"`
	// Stamp is the user's credential stamp when the token was issued: a token
	// is void once the user is removed or their password changes.
	Stamp  string   `json:"stm,omitempty"`
	Access []Access `json:"access"`
}

// Errors of Verify.
var (
	ErrTokenInvalid = errors.New("invalid token")
	ErrTokenExpired = errors.New("token expired")
)

// TokenSigner issues and verifies registry tokens.
type TokenSigner struct {
	key []byte
	// Lifetime of issued tokens (DefaultTokenLifetime when zero).
	Lifetime time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// NewTokenSigner returns a signer whose key is derived from secret, so every
// signer made from the same secret (the same data dir) accepts the others'
// tokens, and the secret itself is never the key.
func NewTokenSigner(secret []byte) *TokenSigner {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("idpbuilder registry token signing key v1"))
	return &TokenSigner{key: m.Sum(nil)}
}

// jwtHeader is the only header issued or accepted: HS256, no key id. Comparing
// the encoded header byte for byte rules out "alg":"none" and algorithm
// confusion without parsing anything unsigned.
var jwtHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

// b64 is strict: an encoding with non-zero padding bits would give one
// signature several spellings.
var b64 = base64.RawURLEncoding.Strict()

func (s *TokenSigner) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *TokenSigner) lifetime() time.Duration {
	if s.Lifetime > 0 {
		return s.Lifetime
	}
	return DefaultTokenLifetime
}

// Issue signs a token for subject ("" for anonymous) with the given access.
func (s *TokenSigner) Issue(subject, stamp string, access []Access) (string, TokenClaims, error) {
	now := s.now()
	c := TokenClaims{
		Issuer: TokenIssuer, Subject: subject, Audience: TokenService,
		IssuedAt: now.Unix(), NotBefore: now.Unix(), Expiry: now.Add(s.lifetime()).Unix(),
		ID: rand.Text(), Stamp: stamp, Access: access,
	}
	if c.Access == nil {
		c.Access = []Access{}
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", TokenClaims{}, fmt.Errorf("encode token claims: %w", err)
	}
	signed := jwtHeader + "." + b64.EncodeToString(payload)
	return signed + "." + b64.EncodeToString(s.sign(signed)), c, nil
}

func (s *TokenSigner) sign(signed string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(signed))
	return m.Sum(nil)
}

// Verify checks a token's signature, issuer, audience and lifetime and
// returns its claims. The payload is parsed only once the signature matched.
func (s *TokenSigner) Verify(token string) (TokenClaims, error) {
	if len(token) > maxTokenLength {
		return TokenClaims{}, ErrTokenInvalid
	}
	header, rest, ok := strings.Cut(token, ".")
	payload, sig, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 || header != jwtHeader {
		return TokenClaims{}, ErrTokenInvalid
	}
	got, err := b64.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.sign(token[:len(header)+1+len(payload)])) {
		return TokenClaims{}, ErrTokenInvalid
	}
	raw, err := b64.DecodeString(payload)
	if err != nil {
		return TokenClaims{}, ErrTokenInvalid
	}
	var c TokenClaims
	if err := json.Unmarshal(raw, &c); err != nil {
		return TokenClaims{}, ErrTokenInvalid
	}
	if c.Issuer != TokenIssuer || c.Audience != TokenService {
		return TokenClaims{}, ErrTokenInvalid
	}
	now := s.now().Unix()
	if now < c.NotBefore || now >= c.Expiry {
		return TokenClaims{}, ErrTokenExpired
	}
	return c, nil
}

// Stamp is user's credential stamp: a digest of their current password hash,
// or ok=false when there is no such user. The bcrypt hash is salted, so the
// stamp tells nothing about the password; it only changes with it.
func (v *Verifier) Stamp(user string) (stamp string, ok bool, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.reloadLocked(); err != nil {
		return "", false, err
	}
	hash, ok := v.users[user]
	if !ok {
		return "", false, nil
	}
	sum := sha256.Sum256([]byte("idpbuilder token stamp\x00" + user + "\x00" + hash))
	return b64.EncodeToString(sum[:12]), true, nil
}
