package registry

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/idpbuilder/idpbuilder/pkg/auth"
)

// tokenPath is the token endpoint, on the registry's own address.
const tokenPath = "/auth/token"

// maxTokenForm bounds an OAuth2 POST body.
const maxTokenForm = 64 << 10

// tokenResponse serves both protocols: the distribution token spec reads
// token, OAuth2 clients read access_token.
type tokenResponse struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type,omitempty"`
	ExpiresIn   int64  `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
	Scope       string `json:"scope,omitempty"`
}

// tokenRequest is a token request of either protocol, parsed.
type tokenRequest struct {
	oauth          bool // POST: answer in OAuth2's terms
	creds          bool
	user, password string
	service        string
	scopes         []string
}

// serveToken is the token endpoint: GET with optional Basic credentials (the
// docker distribution token spec) and POST with grant_type=password (OAuth2,
// which containerd tries first). Credentials go through the login gate, like
// Basic credentials on any other request. Users get the scopes they ask for;
// anonymous clients get pull scopes, and only where the policy allows
// anonymous pulls. Refresh tokens are not issued, so refresh grants are refused.
func (a *authorizer) serveToken(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	req, ok := a.parseTokenRequest(w, r)
	if !ok {
		return
	}
	if req.service != "" && req.service != auth.TokenService {
		tokenError(w, http.StatusBadRequest, "invalid_request", codeUnsupported,
			fmt.Sprintf("unknown service %.80q: this registry's service is %q", req.service, auth.TokenService))
		return
	}
	requested, err := auth.ParseScopes(req.scopes)
	if err != nil {
		tokenError(w, http.StatusBadRequest, "invalid_scope", codeUnsupported, err.Error())
		return
	}

	subject, stamp := "", ""
	if req.creds {
		good, retry, err := a.gate.check(r.Context(), clientIP(r), req.user, req.password)
		if retry > 0 {
			tooMany(w, retry, "too many failed logins for this user from this client")
			return
		}
		if err == nil && good {
			var known bool
			stamp, known, err = a.users.Stamp(req.user)
			good = known
		}
		if err != nil {
			tokenError(w, http.StatusInternalServerError, "server_error", codeUnknown, "cannot read the user database")
			return
		}
		if !good {
			a.refuseCredentials(w, req.oauth, "invalid username or password")
			return
		}
		subject = req.user
		setUser(r, subject)
	} else if a.policy != auth.PolicyPush {
		a.refuseCredentials(w, false, "this registry needs a login for every request")
		return
	}

	token, claims, err := a.tokens.Issue(subject, stamp, grant(subject != "", requested))
	if err != nil {
		tokenError(w, http.StatusInternalServerError, "server_error", codeUnknown, "cannot issue a token")
		return
	}
	resp := tokenResponse{
		Token: token, AccessToken: token,
		ExpiresIn: claims.Expiry - claims.IssuedAt,
		IssuedAt:  time.Unix(claims.IssuedAt, 0).UTC().Format(time.RFC3339),
	}
	if req.oauth {
		resp.TokenType = "Bearer"
		scopes := make([]string, len(claims.Access))
		for i, acc := range claims.Access {
			scopes[i] = acc.String()
		}
		resp.Scope = strings.Join(scopes, " ")
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

func (a *authorizer) parseTokenRequest(w http.ResponseWriter, r *http.Request) (tokenRequest, bool) {
	var req tokenRequest
	switch r.Method {
	case http.MethodGet:
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			tokenError(w, http.StatusBadRequest, "invalid_request", codeUnsupported, "malformed query string")
			return req, false
		}
		req.service, req.scopes = q.Get("service"), q["scope"]
		if h := r.Header.Get("Authorization"); h != "" {
			u, p, ok := auth.ParseBasic(h)
			if !ok {
				if ok, retry := a.gate.malformed(clientIP(r)); !ok {
					tooMany(w, retry, "too many failed logins from this client")
					return req, false
				}
				a.refuseCredentials(w, false, "malformed Authorization header (want Basic)")
				return req, false
			}
			req.creds, req.user, req.password = true, u, p
		}
	case http.MethodPost:
		req.oauth = true
		r.Body = http.MaxBytesReader(w, r.Body, maxTokenForm)
		if err := r.ParseForm(); err != nil {
			tokenError(w, http.StatusBadRequest, "invalid_request", codeUnsupported,
				"malformed form body (want application/x-www-form-urlencoded, at most 64 KiB)")
			return req, false
		}
		f := r.PostForm
		switch gt := f.Get("grant_type"); gt {
		case "password":
			req.creds, req.user, req.password = true, f.Get("username"), f.Get("password")
			if req.user == "" {
				tokenError(w, http.StatusBadRequest, "invalid_request", codeUnsupported, "grant_type=password needs a username")
				return req, false
			}
		case "refresh_token":
			tokenError(w, http.StatusBadRequest, "unsupported_grant_type", codeUnsupported,
				"this registry issues no refresh tokens: use grant_type=password, or GET with Basic credentials")
			return req, false
		default:
			tokenError(w, http.StatusBadRequest, "unsupported_grant_type", codeUnsupported,
				fmt.Sprintf("unsupported grant_type %.40q: use password", gt))
			return req, false
		}
		req.service, req.scopes = f.Get("service"), f["scope"]
	default:
		w.Header().Set("Allow", "GET, POST")
		tokenError(w, http.StatusMethodNotAllowed, "invalid_request", codeUnsupported, "the token endpoint answers GET and POST")
		return req, false
	}
	return req, true
}

// refuseCredentials answers wrong or missing credentials: OAuth2's
// invalid_grant (400) for the password grant, else 401 with a Basic
// challenge, as the token spec asks.
func (a *authorizer) refuseCredentials(w http.ResponseWriter, oauth bool, msg string) {
	if oauth {
		tokenError(w, http.StatusBadRequest, "invalid_grant", codeUnauthorized, msg)
		return
	}
	w.Header().Set("WWW-Authenticate", `Basic realm="idpbuilder registry"`)
	tokenError(w, http.StatusUnauthorized, "invalid_client", codeUnauthorized, msg)
}

// grant is what a token gets for the requested scopes: users what they ask
// for, anonymous clients pull on repositories and nothing else. Unknown
// resource types and malformed repository names get nothing.
func grant(user bool, requested []auth.Access) []auth.Access {
	var out []auth.Access
	for _, req := range requested {
		var acts []string
		switch {
		case req.Type == "repository" && validateName(req.Name) == nil:
			for _, act := range req.Actions {
				switch {
				case act == auth.ActionPull || (!user && act == auth.ActionAll):
					acts = append(acts, auth.ActionPull)
				case user && (act == auth.ActionPush || act == auth.ActionDelete || act == auth.ActionAll):
					acts = append(acts, act)
				}
			}
		case user && req.Type == "registry" && req.Name == "catalog" && slices.Contains(req.Actions, auth.ActionAll):
			acts = []string{auth.ActionAll}
		}
		if len(acts) > 0 {
			slices.Sort(acts)
			out = append(out, auth.Access{Type: req.Type, Name: req.Name, Actions: slices.Compact(acts)})
		}
	}
	return out
}

// tokenError writes an error both kinds of client read: OAuth2's error and
// error_description, and the distribution spec's errors list.
func tokenError(w http.ResponseWriter, status int, oauthCode, ociCode, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Del("Content-Length")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"error":             oauthCode,
		"error_description": msg,
		"errors":            []map[string]any{{"code": ociCode, "message": msg}},
	})
}
