package auth

import (
	"fmt"
	"net/http"
	"strings"
)

// Policy says which requests need an authenticated user.
type Policy string

const (
	// PolicyNone: nobody needs to log in.
	PolicyNone Policy = "none"
	// PolicyPush: anyone may pull (so cluster nodes need no secret); pushing and
	// deleting need a user. The default once a user exists.
	PolicyPush Policy = "push"
	// PolicyAll: every registry request needs a user.
	PolicyAll Policy = "all"
)

// ParsePolicy parses none, push or all.
func ParsePolicy(s string) (Policy, error) {
	switch p := Policy(strings.ToLower(strings.TrimSpace(s))); p {
	case PolicyNone, PolicyPush, PolicyAll:
		return p, nil
	}
	return "", fmt.Errorf("%q is not an auth policy (use none, push or all)", s)
}

// Requires reports whether a request with this method needs a user.
func (p Policy) Requires(method string) bool {
	switch p {
	case PolicyAll:
		return true
	case PolicyPush:
		return method != http.MethodGet && method != http.MethodHead && method != http.MethodOptions
	}
	return false
}
