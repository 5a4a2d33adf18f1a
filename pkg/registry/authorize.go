package registry

import (
	"errors"
	"net"
	"net/http"
	"strings"

	"github.com/idpbuilder/idpbuilder/pkg/auth"
)

// authorizer is the auth layer under policies push and all. It serves the
// token endpoint, and lets every other request through only with what it
// needs: nothing where the policy allows anonymous access, else a user's
// Basic credentials (curl, Kind nodes' hosts.toml headers) or a token whose
// scopes cover the request (Docker, containerd and every client that follows
// a Bearer challenge).
type authorizer struct {
	policy auth.Policy
	users  *auth.Verifier
	gate   *loginGate
	tokens *auth.TokenSigner
}

func newAuthorizer(opts AuthOptions, gate *loginGate, tokens *auth.TokenSigner) *authorizer {
	return &authorizer{policy: opts.Policy, users: opts.Verifier, gate: gate, tokens: tokens}
}

// userOf reports the user a request is authenticated as, by Basic
// credentials or by a user's token (an anonymous token is nobody). Layers
// below the auth layer use it for endpoints only users may reach; under
// policy none nobody is authenticated.
func userOf(r *http.Request) (string, bool) {
	if ri := infoFrom(r.Context()); ri != nil && ri.user != "" {
		return ri.user, true
	}
	return "", false
}

func setUser(r *http.Request, user string) {
	if ri := infoFrom(r.Context()); ri != nil {
		ri.user = user
	}
}

// requirement is what a request needs from a token: scope is what a
// challenge asks clients to request (pull,push for writes, as Docker does);
// action is the one the token must actually grant.
type requirement struct {
	scope  auth.Access
	action string
}

func (a *authorizer) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt := routeOf(r)
		if rt.Kind == RouteToken {
			a.serveToken(w, r)
			return
		}
		need := requirements(r, rt)
		// /v2/ always asks who is there: Docker learns from its challenge to
		// fetch a token, and `docker login` would otherwise pass any password.
		open := a.policy == auth.PolicyPush && !a.policy.Requires(r.Method) && rt.Kind != RoutePing
		header := r.Header.Get("Authorization")
		if header == "" {
			if open {
				next.ServeHTTP(w, r)
				return
			}
			a.challenge(w, r, need, "", "authentication required")
			return
		}
		if token, ok := bearerToken(header); ok {
			a.serveBearer(next, w, r, token, need, open)
			return
		}
		ip := clientIP(r)
		user, pass, ok := auth.ParseBasic(header)
		if !ok {
			if ok, retry := a.gate.malformed(ip); !ok {
				tooMany(w, retry, "too many failed logins from this client")
				return
			}
			a.challenge(w, r, need, "invalid_request", "malformed Authorization header (want Basic or Bearer)")
			return
		}
		// Credentials, when sent, are always checked (so a wrong password
		// fails even where the request needs none); a user may do anything.
		good, retry, err := a.gate.check(r.Context(), ip, user, pass)
		switch {
		case retry > 0:
			tooMany(w, retry, "too many failed logins for this user from this client")
		case err != nil:
			writeOCIError(w, http.StatusInternalServerError, codeUnknown, "cannot read the user database")
		case !good:
			a.challenge(w, r, need, "", "invalid username or password")
		default:
			setUser(r, user)
			next.ServeHTTP(w, r)
		}
	})
}

// serveBearer checks a token: signed by us and current, its user still there
// with the same password, and its scopes covering the request. A token never
// takes away what the policy gives anonymous clients.
func (a *authorizer) serveBearer(next http.Handler, w http.ResponseWriter, r *http.Request, token string, need []requirement, open bool) {
	claims, err := a.tokens.Verify(token)
	if err != nil {
		msg := "invalid token: fetch a new one from the token endpoint"
		if errors.Is(err, auth.ErrTokenExpired) {
			msg = "the token has expired: fetch a new one from the token endpoint"
		}
		a.challenge(w, r, need, "invalid_token", msg)
		return
	}
	if claims.Subject == "" {
		// An anonymous token is worth what anonymous access is worth now (it
		// may come from before a restart with another policy).
		if a.policy != auth.PolicyPush {
			a.challenge(w, r, need, "invalid_token", "anonymous tokens are not accepted: this registry needs a login for every request")
			return
		}
	} else {
		stamp, ok, err := a.users.Stamp(claims.Subject)
		if err != nil {
			writeOCIError(w, http.StatusInternalServerError, codeUnknown, "cannot read the user database")
			return
		}
		if !ok || stamp != claims.Stamp {
			a.challenge(w, r, need, "invalid_token", "the token's user was removed or changed password: log in again")
			return
		}
	}
	if !open {
		for _, n := range need {
			if grants(claims.Access, n) {
				continue
			}
			msg := "the token does not grant " + n.scope.Type + ":" + n.scope.Name + ":" + n.action
			if claims.Subject == "" {
				msg = "anonymous clients may only pull: log in to " + n.action
			}
			a.challenge(w, r, need, "insufficient_scope", msg)
			return
		}
	}
	if claims.Subject != "" {
		setUser(r, claims.Subject)
	}
	next.ServeHTTP(w, r)
}

// grants reports whether access covers n. Delete is granted by delete or
// push scope: under policy push whoever may push may delete, and clients
// that ask for pull,push before deleting a tag (regctl, crane) need no second
// token.
func grants(access []auth.Access, n requirement) bool {
	for _, g := range access {
		if g.Type != n.scope.Type || g.Name != n.scope.Name {
			continue
		}
		if g.Has(n.action) || (n.action == auth.ActionDelete && g.Has(auth.ActionPush)) {
			return true
		}
	}
	return false
}

// requirements lists what a request needs from a token. Requests without a
// resource (/v2/, unknown paths, malformed names, which the limits layer
// refuses) need only a valid token.
func requirements(r *http.Request, rt Route) []requirement {
	if rt.Invalid != nil {
		return nil
	}
	repo := func(name, action string, scope ...string) requirement {
		return requirement{scope: auth.Access{Type: "repository", Name: name, Actions: scope}, action: action}
	}
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	switch rt.Kind {
	case RouteCatalog:
		return []requirement{{scope: auth.Access{Type: "registry", Name: "catalog", Actions: []string{auth.ActionAll}}, action: auth.ActionAll}}
	case RouteTags, RouteReferrers:
		return []requirement{repo(rt.Repository, auth.ActionPull, auth.ActionPull)}
	case RouteManifest, RouteBlob:
		switch {
		case read:
			return []requirement{repo(rt.Repository, auth.ActionPull, auth.ActionPull)}
		case r.Method == http.MethodDelete:
			return []requirement{repo(rt.Repository, auth.ActionDelete, auth.ActionDelete)}
		}
		return []requirement{repo(rt.Repository, auth.ActionPush, auth.ActionPull, auth.ActionPush)}
	case RouteUpload:
		need := []requirement{repo(rt.Repository, auth.ActionPush, auth.ActionPull, auth.ActionPush)}
		// A cross-repository mount reads the source repository.
		if q := r.URL.Query(); r.Method == http.MethodPost && q.Get("mount") != "" {
			if from := q.Get("from"); from != "" && from != rt.Repository && validateName(from) == nil {
				need = append(need, repo(from, auth.ActionPull, auth.ActionPull))
			}
		}
		return need
	}
	return nil
}

// challenge answers 401 with a Bearer challenge naming the token endpoint on
// the address the client used and the scopes the request needs; errCode is
// RFC 6750's error parameter ("insufficient_scope", "invalid_token"), and msg
// its error_description too, which Docker shows its user. msg holds no quote
// or backslash.
func (a *authorizer) challenge(w http.ResponseWriter, r *http.Request, need []requirement, errCode, msg string) {
	v := `Bearer realm="` + tokenRealm(r) + `",service="` + auth.TokenService + `"`
	if len(need) > 0 {
		scopes := make([]string, len(need))
		for i, n := range need {
			scopes[i] = n.scope.String() // names are validated: no quotes, no spaces
		}
		v += `,scope="` + strings.Join(scopes, " ") + `"`
	}
	if errCode != "" {
		v += `,error="` + errCode + `",error_description="` + msg + `"`
	}
	w.Header().Set("WWW-Authenticate", v)
	writeOCIError(w, http.StatusUnauthorized, codeUnauthorized, msg)
}

// tokenRealm is the token endpoint's URL on the address the client reached us
// by, so it resolves wherever the client is (host, container, Kind node).
func tokenRealm(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host := r.Host
	if !validHost(host) {
		// No usable Host header (HTTP/1.0, or junk): the address this
		// connection arrived at.
		host = "localhost"
		if addr, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			host = addr.String()
		}
	}
	return scheme + "://" + host + tokenPath
}

// validHost accepts host, host:port, IPv4 and [IPv6]:port, and nothing that
// could break out of a quoted header parameter or a URL's authority.
func validHost(h string) bool {
	if h == "" || len(h) > 262 {
		return false
	}
	for _, c := range h {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.ContainsRune(".-_:[]", c):
		default:
			return false
		}
	}
	return true
}

// bearerToken returns the token of an "Authorization: Bearer ..." header.
func bearerToken(header string) (string, bool) {
	const prefix = "bearer "
	if len(header) < len(prefix) || !strings.EqualFold(header[:len(prefix)], prefix) {
		return "", false
	}
	return strings.TrimSpace(header[len(prefix):]), true
}
