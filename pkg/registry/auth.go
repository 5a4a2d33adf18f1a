package registry

import (
	"net/http"

	"github.com/idpbuilder/idpbuilder/pkg/auth"
)

// AuthOptions turn on authentication.
type AuthOptions struct {
	Policy   auth.Policy
	Verifier *auth.Verifier
}

// withAuth applies the policy. Credentials, when sent, are always checked (so
// `docker login` fails on a wrong password even where pulls are anonymous); a
// client whose failed logins ran out its budget gets 429 until it refills.
func withAuth(next http.Handler, opts AuthOptions, failed *limiter) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip := clientIP(r)
		header := r.Header.Get("Authorization")
		needs := opts.Policy.Requires(r.Method) || (opts.Policy != auth.PolicyNone && routeOf(r).Kind == RoutePing)
		if header == "" && !needs {
			next.ServeHTTP(w, r)
			return
		}
		if empty, retry := failed.empty(ip); empty {
			tooMany(w, retry, "too many failed logins from this client")
			return
		}
		if header == "" {
			challenge(w, "authentication required")
			return
		}
		user, pass, ok := auth.ParseBasic(header)
		if !ok {
			failed.take(ip)
			challenge(w, "malformed Authorization header (want Basic)")
			return
		}
		good, err := opts.Verifier.Verify(user, pass)
		if err != nil {
			writeOCIError(w, http.StatusInternalServerError, codeUnknown, "cannot read the user database")
			return
		}
		if !good {
			failed.take(ip)
			challenge(w, "invalid username or password")
			return
		}
		if ri := infoFrom(r.Context()); ri != nil {
			ri.user = user
		}
		next.ServeHTTP(w, r)
	})
}

func challenge(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", `Basic realm="idpbuilder registry"`)
	writeOCIError(w, http.StatusUnauthorized, codeUnauthorized, msg)
}
