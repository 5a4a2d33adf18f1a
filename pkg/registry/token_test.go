package registry

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/idpbuilder/idpbuilder/pkg/auth"
)

// authReg is a registry with a policy and user alice, driven through its handler.
type authReg struct {
	t      testing.TB
	reg    *Registry
	dir    string
	users  auth.Htpasswd
	policy auth.Policy
}

func openAuthRegistry(t testing.TB, policy auth.Policy, dir string) *authReg {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	h := auth.Htpasswd{Path: filepath.Join(dir, "htpasswd")}
	if _, err := os.Stat(h.Path); err != nil {
		require.NoError(t, h.Set("alice", testPassword))
	}
	r := New(Options{DataDir: filepath.Join(dir, "data"), Logger: slog.New(slog.DiscardHandler), RateLimit: RateLimit{Disabled: true},
		Auth: &AuthOptions{Policy: policy, Verifier: auth.NewVerifier(h)}})
	require.NoError(t, r.Open(context.Background()))
	t.Cleanup(func() { _ = r.Close() })
	return &authReg{t: t, reg: r, dir: dir, users: h, policy: policy}
}

func (ar *authReg) do(method, target, authz string, body []byte) *httptest.ResponseRecorder {
	ar.t.Helper()
	req := httptest.NewRequest(method, target, bytes.NewReader(body))
	req.Host = "localhost:5001"
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	rec := httptest.NewRecorder()
	ar.reg.Handler().ServeHTTP(rec, req)
	return rec
}

// pushBlob uploads a blob with a POST and a PUT, sending authz with each.
func (ar *authReg) pushBlob(repo string, content []byte, authz string) {
	ar.t.Helper()
	rec := ar.do(http.MethodPost, "/v2/"+repo+"/blobs/uploads/", authz, nil)
	require.Equal(ar.t, http.StatusAccepted, rec.Code, rec.Body.String())
	loc, err := url.Parse(rec.Header().Get("Location"))
	require.NoError(ar.t, err)
	q := loc.Query()
	q.Set("digest", digest.FromBytes(content).String())
	rec = ar.do(http.MethodPut, loc.Path+"?"+q.Encode(), authz, content)
	require.Equal(ar.t, http.StatusCreated, rec.Code, rec.Body.String())
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// token asks the token endpoint (GET) for scopes; authz may be "".
func (ar *authReg) token(authz string, scopes ...string) (tokenResponse, *httptest.ResponseRecorder) {
	ar.t.Helper()
	q := url.Values{"service": {auth.TokenService}}
	for _, s := range scopes {
		q.Add("scope", s)
	}
	rec := ar.do(http.MethodGet, tokenPath+"?"+q.Encode(), authz, nil)
	var tr tokenResponse
	if rec.Code == http.StatusOK {
		require.NoError(ar.t, json.Unmarshal(rec.Body.Bytes(), &tr))
	}
	return tr, rec
}

// bearer returns "Bearer <token>" for alice (or anonymous when user is "").
func (ar *authReg) bearer(user string, scopes ...string) string {
	ar.t.Helper()
	authz := ""
	if user != "" {
		authz = basic(user, testPassword)
	}
	tr, rec := ar.token(authz, scopes...)
	require.Equal(ar.t, http.StatusOK, rec.Code, rec.Body.String())
	return "Bearer " + tr.Token
}

func (ar *authReg) claims(token string) auth.TokenClaims {
	ar.t.Helper()
	c, err := ar.reg.tokens.Verify(strings.TrimPrefix(token, "Bearer "))
	require.NoError(ar.t, err)
	return c
}

func TestTokenEndpoint(t *testing.T) {
	regs := map[auth.Policy]*authReg{
		auth.PolicyPush: openAuthRegistry(t, auth.PolicyPush, ""),
		auth.PolicyAll:  openAuthRegistry(t, auth.PolicyAll, ""),
	}
	alice, wrong := basic("alice", testPassword), basic("alice", "wrong password")
	var many []string
	for i := range 33 {
		many = append(many, "repository:r"+strings.Repeat("x", i)+":pull")
	}
	form := func(kv ...string) url.Values {
		v := url.Values{"service": {auth.TokenService}}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Add(kv[i], kv[i+1])
		}
		return v
	}
	tests := []struct {
		name       string
		policy     auth.Policy
		method     string
		authz      string
		scopes     []string
		form       url.Values // POST body
		query      string     // replaces the GET query
		want       int
		wantSub    string
		wantAccess []auth.Access
		wantError  string // OAuth2 error code
		wantBody   string
	}{
		{name: "anonymous gets pull only", policy: auth.PolicyPush, method: "GET", scopes: []string{"repository:a:pull,push,delete"},
			want: 200, wantAccess: []auth.Access{{Type: "repository", Name: "a", Actions: []string{"pull"}}}},
		{name: "anonymous * is pull", policy: auth.PolicyPush, method: "GET", scopes: []string{"repository:a:*"},
			want: 200, wantAccess: []auth.Access{{Type: "repository", Name: "a", Actions: []string{"pull"}}}},
		{name: "anonymous gets no catalog", policy: auth.PolicyPush, method: "GET", scopes: []string{"registry:catalog:*"},
			want: 200, wantAccess: []auth.Access{}},
		{name: "anonymous without scope (docker login's first step)", policy: auth.PolicyPush, method: "GET",
			want: 200, wantAccess: []auth.Access{}},
		{name: "anonymous under all is refused", policy: auth.PolicyAll, method: "GET", scopes: []string{"repository:a:pull"},
			want: 401, wantError: "invalid_client", wantBody: "needs a login"},
		{name: "user gets what they ask, several scopes in one parameter", policy: auth.PolicyPush, method: "GET", authz: alice,
			scopes: []string{"repository:b:pull,push repository:a:pull"}, want: 200, wantSub: "alice",
			wantAccess: []auth.Access{{Type: "repository", Name: "b", Actions: []string{"pull", "push"}}, {Type: "repository", Name: "a", Actions: []string{"pull"}}}},
		{name: "user, several scope parameters", policy: auth.PolicyAll, method: "GET", authz: alice,
			scopes: []string{"repository:a:delete", "registry:catalog:*"}, want: 200, wantSub: "alice",
			wantAccess: []auth.Access{{Type: "repository", Name: "a", Actions: []string{"delete"}}, {Type: "registry", Name: "catalog", Actions: []string{"*"}}}},
		{name: "unknown types and bad names get nothing", policy: auth.PolicyPush, method: "GET", authz: alice,
			scopes: []string{"repository:Bad_Name:pull", "plugin:x:pull", "repository:a:frobnicate"}, want: 200, wantSub: "alice", wantAccess: []auth.Access{}},
		{name: "wrong password", policy: auth.PolicyPush, method: "GET", authz: wrong, scopes: []string{"repository:a:pull"},
			want: 401, wantError: "invalid_client", wantBody: "invalid username or password"},
		{name: "a Bearer header is no credential here", policy: auth.PolicyPush, method: "GET", authz: "Bearer abc",
			want: 401, wantBody: "want Basic"},
		{name: "password grant", policy: auth.PolicyAll, method: "POST",
			form: form("grant_type", "password", "username", "alice", "password", testPassword, "scope", "repository:a:pull,push", "client_id", "containerd-client"),
			want: 200, wantSub: "alice", wantAccess: []auth.Access{{Type: "repository", Name: "a", Actions: []string{"pull", "push"}}}},
		{name: "password grant, wrong password", policy: auth.PolicyPush, method: "POST",
			form: form("grant_type", "password", "username", "alice", "password", "nope", "scope", "repository:a:push"),
			want: 400, wantError: "invalid_grant", wantBody: "invalid username or password"},
		{name: "password grant without user", policy: auth.PolicyPush, method: "POST",
			form: form("grant_type", "password", "password", "x"), want: 400, wantError: "invalid_request"},
		{name: "refresh grant refused", policy: auth.PolicyPush, method: "POST",
			form: form("grant_type", "refresh_token", "refresh_token", "abc"), want: 400, wantError: "unsupported_grant_type", wantBody: "no refresh tokens"},
		{name: "no grant type", policy: auth.PolicyPush, method: "POST", form: form(), want: 400, wantError: "unsupported_grant_type"},
		{name: "other service", policy: auth.PolicyPush, method: "GET", query: "service=elsewhere", want: 400, wantError: "invalid_request"},
		{name: "malformed scope", policy: auth.PolicyPush, method: "GET", scopes: []string{"repository"}, want: 400, wantError: "invalid_scope"},
		{name: "too many scopes", policy: auth.PolicyPush, method: "GET", authz: alice, scopes: many, want: 400, wantError: "invalid_scope"},
		{name: "malformed query", policy: auth.PolicyPush, method: "GET", query: "scope=%zz", want: 400, wantError: "invalid_request"},
		{name: "other methods", policy: auth.PolicyPush, method: "PUT", want: 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ar := regs[tt.policy]
			ar.t = t
			var rec *httptest.ResponseRecorder
			switch {
			case tt.method == "POST":
				req := httptest.NewRequest(http.MethodPost, tokenPath, strings.NewReader(tt.form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				rec = httptest.NewRecorder()
				ar.reg.Handler().ServeHTTP(rec, req)
			case tt.query != "":
				rec = ar.do(tt.method, tokenPath+"?"+tt.query, tt.authz, nil)
			default:
				q := url.Values{"service": {auth.TokenService}, "scope": tt.scopes}
				rec = ar.do(tt.method, tokenPath+"?"+q.Encode(), tt.authz, nil)
			}
			require.Equal(t, tt.want, rec.Code, rec.Body.String())
			assert.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
			assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
			if tt.want != 200 {
				var e struct {
					Error  string `json:"error"`
					Errors []struct{ Code, Message string }
				}
				require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e), rec.Body.String())
				require.Len(t, e.Errors, 1, "an OCI error list too")
				if tt.wantError != "" {
					assert.Equal(t, tt.wantError, e.Error)
				}
				assert.Contains(t, rec.Body.String(), tt.wantBody)
				if tt.want == 401 {
					assert.Equal(t, `Basic realm="idpbuilder registry"`, rec.Header().Get("WWW-Authenticate"))
				}
				return
			}
			var tr tokenResponse
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &tr))
			assert.Equal(t, tr.Token, tr.AccessToken)
			assert.EqualValues(t, 300, tr.ExpiresIn)
			_, err := time.Parse(time.RFC3339, tr.IssuedAt)
			assert.NoError(t, err)
			c := ar.claims(tr.Token)
			assert.Equal(t, tt.wantSub, c.Subject)
			assert.Equal(t, tt.wantAccess, c.Access)
			if tt.method == "POST" {
				assert.Equal(t, "Bearer", tr.TokenType)
				assert.Equal(t, "repository:a:pull,push", tr.Scope)
			}
		})
	}
}

// TestTokenScopes: each request needs a token whose scopes cover it, and a
// Bearer challenge names what is missing.
func TestTokenScopes(t *testing.T) {
	push := openAuthRegistry(t, auth.PolicyPush, "")
	all := openAuthRegistry(t, auth.PolicyAll, "")
	blob := []byte("a layer in repository a")
	dgst := digest.FromBytes(blob)
	for _, ar := range []*authReg{push, all} {
		ar.pushBlob("a", blob, basic("alice", testPassword))
	}
	zero := "sha256:" + strings.Repeat("0", 64)
	mount := "/v2/b/blobs/uploads/?mount=" + dgst.String() + "&from=a"
	const realm = `Bearer realm="http://localhost:5001/auth/token",service="idpbuilder-registry"`

	tests := []struct {
		name       string
		ar         *authReg
		user       string // "" anonymous, or a user whose token is asked for
		scopes     []string
		method     string
		path       string
		want       int
		challenge  string // the expected WWW-Authenticate, when 401
		wantUserOf string
	}{
		{"push to the token's repository", push, "alice", []string{"repository:a:pull,push"}, "POST", "/v2/a/blobs/uploads/", 202, "", "alice"},
		{"push to another repository", push, "alice", []string{"repository:a:pull,push"}, "POST", "/v2/b/blobs/uploads/", 401,
			realm + `,scope="repository:b:pull,push",error="insufficient_scope",error_description="the token does not grant repository:b:push"`, ""},
		{"pull scope cannot push", all, "alice", []string{"repository:a:pull"}, "POST", "/v2/a/blobs/uploads/", 401,
			realm + `,scope="repository:a:pull,push",error="insufficient_scope",error_description="the token does not grant repository:a:push"`, ""},
		{"anonymous token cannot push", push, "", []string{"repository:a:pull,push"}, "POST", "/v2/a/blobs/uploads/", 401,
			realm + `,scope="repository:a:pull,push",error="insufficient_scope",error_description="anonymous clients may only pull: log in to push"`, ""},
		{"mount needs pull on the source", push, "alice", []string{"repository:b:pull,push"}, "POST", mount, 401,
			realm + `,scope="repository:b:pull,push repository:a:pull",error="insufficient_scope",error_description="the token does not grant repository:a:pull"`, ""},
		{"mount with both scopes", push, "alice", []string{"repository:b:pull,push repository:a:pull"}, "POST", mount, 201, "", "alice"},
		{"pull with the token's repository", all, "alice", []string{"repository:a:pull"}, "HEAD", "/v2/a/blobs/" + dgst.String(), 200, "", "alice"},
		{"pull another repository under all", all, "alice", []string{"repository:a:pull"}, "GET", "/v2/b/tags/list", 401,
			realm + `,scope="repository:b:pull",error="insufficient_scope",error_description="the token does not grant repository:b:pull"`, ""},
		{"a token never takes away anonymous reads", push, "alice", []string{"repository:a:pull"}, "GET", "/v2/b/tags/list", 404, "", "alice"},
		{"anonymous token reads under push", push, "", []string{"repository:a:pull"}, "HEAD", "/v2/a/blobs/" + dgst.String(), 200, "", ""},
		{"anonymous token answers the ping under push", push, "", nil, "GET", "/v2/", 200, "", ""},
		{"user token answers the ping", all, "alice", nil, "GET", "/v2/", 200, "", "alice"},
		{"delete with delete scope", all, "alice", []string{"repository:a:delete"}, "DELETE", "/v2/a/manifests/" + zero, 404, "", "alice"},
		{"delete with push scope", push, "alice", []string{"repository:a:push"}, "DELETE", "/v2/a/manifests/" + zero, 404, "", "alice"},
		{"delete with pull scope", push, "alice", []string{"repository:a:pull"}, "DELETE", "/v2/a/manifests/" + zero, 401,
			realm + `,scope="repository:a:delete",error="insufficient_scope",error_description="the token does not grant repository:a:delete"`, ""},
		{"catalog with its scope", all, "alice", []string{"registry:catalog:*"}, "GET", "/v2/_catalog", 200, "", "alice"},
		{"catalog without", all, "alice", []string{"repository:a:pull"}, "GET", "/v2/_catalog", 401,
			realm + `,scope="registry:catalog:*",error="insufficient_scope",error_description="the token does not grant registry:catalog:*"`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.ar.t = t
			authz := tt.ar.bearer(tt.user, tt.scopes...)
			req := httptest.NewRequest(tt.method, tt.path, nil)
			req.Host = "localhost:5001"
			req.Header.Set("Authorization", authz)
			rec := httptest.NewRecorder()
			tt.ar.reg.Handler().ServeHTTP(rec, req)
			require.Equal(t, tt.want, rec.Code, rec.Body.String())
			if tt.want == 401 {
				assert.Equal(t, tt.challenge, rec.Header().Get("WWW-Authenticate"))
				assert.Contains(t, rec.Body.String(), `"code":"UNAUTHORIZED"`)
				return
			}
			// The same request through the auth layer alone, to read userOf
			// as a layer below it would.
			var gotUser string
			var gotOK bool
			inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { gotUser, gotOK = userOf(r) })
			h := withRequestInfo(newAuthorizer(AuthOptions{Policy: tt.ar.policy, Verifier: auth.NewVerifier(tt.ar.users)}, tt.ar.reg.login, tt.ar.reg.tokens).wrap(inner))
			h.ServeHTTP(httptest.NewRecorder(), req)
			assert.Equal(t, tt.wantUserOf, gotUser)
			assert.Equal(t, tt.wantUserOf != "", gotOK)
		})
	}
}

// TestTokensRefused: tokens that are expired, forged, unsigned, anonymous
// where anonymous access is off, or whose user was removed or changed
// password are refused with invalid_token, and never start an upload.
func TestTokensRefused(t *testing.T) {
	push := openAuthRegistry(t, auth.PolicyPush, "")
	all := openAuthRegistry(t, auth.PolicyAll, "")
	scope := []auth.Access{{Type: "repository", Name: "a", Actions: []string{"pull", "push"}}}
	stamp, _, err := auth.NewVerifier(push.users).Stamp("alice")
	require.NoError(t, err)

	past := *push.reg.tokens
	past.Now = func() time.Time { return time.Now().Add(-10 * time.Minute) }
	expired, _, err := past.Issue("alice", stamp, scope)
	require.NoError(t, err)
	forged, _, err := auth.NewTokenSigner([]byte("not this registry's secret")).Issue("alice", stamp, scope)
	require.NoError(t, err)
	enc := base64.RawURLEncoding.EncodeToString
	unsigned := enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
		enc([]byte(`{"iss":"idpbuilder-registry","aud":"idpbuilder-registry","sub":"alice","nbf":0,"exp":9999999999,"stm":"`+stamp+`","access":[{"type":"repository","name":"a","actions":["pull","push"]}]}`)) + "."
	noStamp, _, err := push.reg.tokens.Issue("alice", "", scope)
	require.NoError(t, err)
	anonAll, _, err := all.reg.tokens.Issue("", "", scope) // as if issued before a restart under push

	tests := []struct {
		name  string
		ar    *authReg
		token string
		msg   string
	}{
		{"expired", push, expired, "expired"},
		{"forged", push, forged, "invalid token"},
		{"unsigned", push, unsigned, "invalid token"},
		{"garbage", push, "not-a-token", "invalid token"},
		{"user token without the stamp", push, noStamp, "removed or changed password"},
		{"anonymous token under all", all, anonAll, "anonymous tokens are not accepted"},
	}
	require.NoError(t, err)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.ar.t = t
			rec := tt.ar.do(http.MethodPost, "/v2/a/blobs/uploads/", "Bearer "+tt.token, nil)
			require.Equal(t, http.StatusUnauthorized, rec.Code, rec.Body.String())
			assert.Contains(t, rec.Header().Get("WWW-Authenticate"), `error="invalid_token"`)
			assert.Contains(t, rec.Body.String(), tt.msg)
			// Sent credentials are checked on reads too.
			rec = tt.ar.do(http.MethodGet, "/v2/a/tags/list", "Bearer "+tt.token, nil)
			assert.Equal(t, http.StatusUnauthorized, rec.Code)
		})
	}
	_, statErr := os.Stat(filepath.Join(push.dir, "data", "docker", "registry", "v2", "repositories", "a", "_uploads"))
	assert.True(t, os.IsNotExist(statErr), "no upload was started")
}

// TestTokenFollowsTheUser: a user's token is void once the password changes
// or the user is removed; it survives a restart of the registry.
func TestTokenFollowsTheUser(t *testing.T) {
	dir := t.TempDir()
	ar := openAuthRegistry(t, auth.PolicyAll, dir)
	tok := ar.bearer("alice", "repository:a:pull,push")
	require.Equal(t, http.StatusAccepted, ar.do(http.MethodPost, "/v2/a/blobs/uploads/", tok, nil).Code)

	// Restart: the key comes from the data dir, so the token still works.
	require.NoError(t, ar.reg.Close())
	ar = openAuthRegistry(t, auth.PolicyAll, dir)
	require.Equal(t, http.StatusAccepted, ar.do(http.MethodPost, "/v2/a/blobs/uploads/", tok, nil).Code)

	require.NoError(t, ar.users.Set("alice", "a new password!"))
	rec := ar.do(http.MethodPost, "/v2/a/blobs/uploads/", tok, nil)
	require.Equal(t, http.StatusUnauthorized, rec.Code)
	assert.Contains(t, rec.Header().Get("WWW-Authenticate"), `error="invalid_token"`)

	tr, rec := ar.token(basic("alice", "a new password!"), "repository:a:push")
	require.Equal(t, http.StatusOK, rec.Code)
	tok = "Bearer " + tr.Token
	require.Equal(t, http.StatusAccepted, ar.do(http.MethodPost, "/v2/a/blobs/uploads/", tok, nil).Code)

	require.NoError(t, ar.users.Set("bob", "bob's password"))
	require.NoError(t, ar.users.Remove("alice"))
	rec = ar.do(http.MethodGet, "/v2/", tok, nil)
	require.Equal(t, http.StatusUnauthorized, rec.Code)
	assert.Contains(t, rec.Body.String(), "removed or changed password")
}

// TestChallenges: what clients without credentials are told, per policy;
// Basic credentials still work on every request.
func TestChallenges(t *testing.T) {
	const realm = `Bearer realm="http://localhost:5001/auth/token",service="idpbuilder-registry"`
	alice := basic("alice", testPassword)
	tests := []struct {
		policy    auth.Policy
		method    string
		path      string
		authz     string
		want      int
		challenge string
	}{
		{auth.PolicyPush, "GET", "/v2/", "", 401, realm},
		{auth.PolicyPush, "GET", "/v2/", alice, 200, ""},
		{auth.PolicyPush, "GET", "/v2/", basic("alice", "wrong"), 401, realm}, // docker login's check fails
		{auth.PolicyPush, "GET", "/v2/a/tags/list", "", 404, ""},              // anonymous reads need nothing
		{auth.PolicyPush, "POST", "/v2/a/blobs/uploads/", "", 401, realm + `,scope="repository:a:pull,push"`},
		{auth.PolicyPush, "POST", "/v2/a/blobs/uploads/", alice, 202, ""},
		{auth.PolicyPush, "DELETE", "/v2/a/manifests/v1", "", 401, realm + `,scope="repository:a:delete"`},
		{auth.PolicyPush, "POST", "/v2/a/blobs/uploads/", "Digest x", 401, realm + `,scope="repository:a:pull,push",error="invalid_request",error_description="malformed Authorization header (want Basic or Bearer)"`},
		{auth.PolicyPush, "POST", "/v2/BAD/blobs/uploads/", "", 401, realm}, // no scope for a malformed name
		{auth.PolicyAll, "GET", "/v2/a/tags/list", "", 401, realm + `,scope="repository:a:pull"`},
		{auth.PolicyAll, "GET", "/v2/_catalog", "", 401, realm + `,scope="registry:catalog:*"`},
		{auth.PolicyAll, "GET", "/v2/a/tags/list", alice, 404, ""},
		{auth.PolicyAll, "GET", "/healthz", "", 200, ""},
		{auth.PolicyNone, "GET", "/v2/", "", 200, ""},
		{auth.PolicyNone, "GET", tokenPath, "", 404, ""}, // no token endpoint where nobody logs in
	}
	regs := map[auth.Policy]*authReg{}
	for _, tt := range tests {
		if regs[tt.policy] == nil {
			regs[tt.policy] = openAuthRegistry(t, tt.policy, "")
		}
		rec := regs[tt.policy].do(tt.method, tt.path, tt.authz, nil)
		assert.Equal(t, tt.want, rec.Code, "%s %s %s: %s", tt.policy, tt.method, tt.path, rec.Body.String())
		assert.Equal(t, tt.challenge, rec.Header().Get("WWW-Authenticate"), "%s %s %s", tt.policy, tt.method, tt.path)
		if tt.want >= 400 {
			assert.Equal(t, "application/json", rec.Header().Get("Content-Type"), "%s %s", tt.method, tt.path)
		}
	}

	// Over TLS the realm is https; a Host header that could break out of the
	// quoted parameter is replaced by the connection's address.
	ar := regs[auth.PolicyPush]
	req := httptest.NewRequest(http.MethodGet, "https://localhost:5001/v2/", nil)
	rec := httptest.NewRecorder()
	ar.reg.Handler().ServeHTTP(rec, req)
	assert.Equal(t, `Bearer realm="https://localhost:5001/auth/token",service="idpbuilder-registry"`, rec.Header().Get("WWW-Authenticate"))
	req = httptest.NewRequest(http.MethodGet, "/v2/", nil)
	req.Host = `evil",scope="x`
	rec = httptest.NewRecorder()
	ar.reg.Handler().ServeHTTP(rec, req)
	assert.Equal(t, `Bearer realm="http://localhost/auth/token",service="idpbuilder-registry"`, rec.Header().Get("WWW-Authenticate"))
}

// TestTokenLoginsShareTheBudget: wrong passwords at the token endpoint, by
// GET or POST, spend the same failed-login budget as Basic credentials.
func TestTokenLoginsShareTheBudget(t *testing.T) {
	ar := openAuthRegistry(t, auth.PolicyPush, "")
	// A stopped clock: bcrypt under -race on a busy machine takes seconds,
	// and the budget would refill meanwhile.
	stopped := time.Now()
	ar.reg.login.perUser.now = func() time.Time { return stopped }
	ar.reg.login.perClient.now = func() time.Time { return stopped }
	codes := map[int]int{}
	var last *httptest.ResponseRecorder
	for i := range failedLoginBurst + 5 {
		if i%2 == 0 {
			_, last = ar.token(basic("alice", "guess"), "repository:a:push")
		} else {
			req := httptest.NewRequest(http.MethodPost, tokenPath, strings.NewReader(url.Values{
				"grant_type": {"password"}, "username": {"alice"}, "password": {"guess"}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			last = httptest.NewRecorder()
			ar.reg.Handler().ServeHTTP(last, req)
		}
		codes[last.Code]++
	}
	t.Logf("%d wrong passwords at the token endpoint: %v", failedLoginBurst+5, codes)
	assert.Equal(t, http.StatusTooManyRequests, last.Code)
	assert.NotEmpty(t, last.Header().Get("Retry-After"))
	assert.Equal(t, map[int]int{401: failedLoginBurst / 2, 400: failedLoginBurst / 2, 429: 5}, codes)
	assert.Equal(t, int64(failedLoginBurst), ar.reg.login.verifications.Load())
	// The right password is refused from this client for now, like with Basic.
	_, rec := ar.token(basic("alice", testPassword), "repository:a:push")
	assert.Equal(t, http.StatusTooManyRequests, rec.Code)
	// A different user from the same client still gets a token.
	require.NoError(t, ar.users.Set("bob", "bob's password"))
	_, rec = ar.token(basic("bob", "bob's password"), "repository:a:push")
	assert.Equal(t, http.StatusOK, rec.Code)
}

// FuzzTokenRequests throws requests at the token endpoint and the registry
// with arbitrary credentials, under policies push and all: never a 5xx, an
// anonymous token never holds more than pull, a user's token only for the
// right password, and a Bearer token the registry did not sign (made up, or
// a real one altered) never gets anything done.
func FuzzTokenRequests(f *testing.F) {
	regs := []*authReg{openAuthRegistry(f, auth.PolicyPush, ""), openAuthRegistry(f, auth.PolicyAll, "")}
	alice := basic("alice", testPassword)
	good := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {testPassword}, "scope": {"repository:a:pull,push"}}.Encode()
	for _, s := range []struct {
		mode          byte
		target, authz string
		body          string
	}{
		{0, tokenPath + "?service=idpbuilder-registry&scope=repository:a:pull,push", "", ""},
		{0, tokenPath + "?scope=repository:a:*&scope=registry:catalog:*", alice, ""},
		{8, tokenPath + "?scope=repository:a:pull%20repository:b:push,delete", alice, ""},
		{3, tokenPath, "", good},
		{3, tokenPath, "", "grant_type=refresh_token&refresh_token=x"},
		{3, tokenPath, "", "grant_type=password&username=alice&password=wrong&scope=repository:a:push"},
		{3, "/v2/a/blobs/uploads/", "", ""},
		{3 | 2<<4, "/v2/a/blobs/uploads/", "x", ""},
		{3 | 3<<4, "/v2/a/blobs/uploads/", "A", ""},
		{3 | 3<<4, "/v2/a/blobs/uploads/?mount=sha256:" + strings.Repeat("a", 64) + "&from=b", "", ""},
		{0 | 2<<4, "/v2/", "eyJhbGciOiJub25lIn0.e30.", ""},
		{4 | 1<<4, "/v2/a/manifests/v1", "YWxpY2U6d3Jvbmc=", ""},
		{0, "/v2/_catalog", alice, ""},
	} {
		f.Add(s.mode, s.target, s.authz, s.body)
	}
	methods := []string{"GET", "HEAD", "PUT", "POST", "PATCH", "DELETE"}
	real := []auth.Access{{Type: "repository", Name: "a", Actions: []string{"pull", "push"}}}
	f.Fuzz(func(t *testing.T, mode byte, target, authz, body string) {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return
		}
		ar := regs[mode>>3&1]
		req := &http.Request{Method: methods[int(mode&7)%len(methods)], URL: u, Header: http.Header{},
			Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)),
			Host: "localhost", RemoteAddr: "127.0.0.1:1234", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
		if req.Method == http.MethodPost {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		// How authz is sent: as the header, as Basic's encoded part, as a
		// made-up token, or spliced into a token the registry really issued.
		switch mode >> 4 & 3 {
		case 0:
			req.Header.Set("Authorization", authz)
		case 1:
			req.Header.Set("Authorization", "Basic "+authz)
		case 2:
			req.Header.Set("Authorization", "Bearer "+authz)
		case 3:
			stamp, _, _ := auth.NewVerifier(ar.users).Stamp("alice")
			tok, _, err := ar.reg.tokens.Issue("alice", stamp, real)
			require.NoError(t, err)
			k := len(authz) % len(tok)
			altered := tok[:k] + authz + tok[k:]
			if altered != tok {
				if _, err := ar.reg.tokens.Verify(altered); err == nil {
					t.Fatalf("an altered token verifies: %q", altered)
				}
			}
			req.Header.Set("Authorization", "Bearer "+altered)
		}
		req = req.WithContext(context.Background())
		rec := &recorder{header: http.Header{}}
		ar.reg.Handler().ServeHTTP(rec, req)
		if rec.code == 0 {
			rec.code = 200
		}
		if rec.code >= 500 {
			t.Fatalf("%s %s (%q) -> %d %s", req.Method, target, req.Header.Get("Authorization"), rec.code, rec.buf.String())
		}
		header := req.Header.Get("Authorization")
		rt := parseRoute(u.Path)

		// (The password grant reads its credentials from the form, not the header.)
		passwordGrant := rt.Kind == RouteToken && req.Method == http.MethodPost
		if tok, ok := bearerToken(header); ok && rt.Kind != RouteLive && rt.Kind != RouteReady && !passwordGrant {
			if _, err := ar.reg.tokens.Verify(tok); err != nil && rec.code < 400 {
				t.Fatalf("%s %s with a token the registry did not sign -> %d", req.Method, target, rec.code)
			}
		}
		if header == "" && (req.Method == http.MethodPost || req.Method == http.MethodPut || req.Method == http.MethodPatch) &&
			rt.Kind != RouteToken && rec.code < 400 {
			t.Fatalf("anonymous %s %s -> %d", req.Method, target, rec.code)
		}
		if rt.Kind != RouteToken || rec.code != http.StatusOK || req.Method == http.MethodHead {
			return
		}
		var tr tokenResponse
		require.NoError(t, json.Unmarshal(rec.buf.Bytes(), &tr), rec.buf.String())
		c, err := ar.reg.tokens.Verify(tr.Token)
		require.NoError(t, err)
		if c.Subject == "" {
			require.Equal(t, auth.PolicyPush, ar.policy, "an anonymous token under policy all")
			for _, a := range c.Access {
				if a.Type != "repository" || len(a.Actions) != 1 || a.Actions[0] != auth.ActionPull {
					t.Fatalf("an anonymous token grants %s", a)
				}
			}
			return
		}
		require.Equal(t, "alice", c.Subject)
		user, pass, _ := auth.ParseBasic(header)
		if req.Method == http.MethodPost {
			form, _ := url.ParseQuery(body)
			user, pass = form.Get("username"), form.Get("password")
		}
		if user != "alice" || pass != testPassword {
			t.Fatalf("a token for alice without her password: %s %s %q", req.Method, target, body)
		}
	})
}
