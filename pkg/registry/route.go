package registry

import (
	"net/http"
	"regexp"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/idpbuilder/idpbuilder/pkg/registryapi"
)

// RouteKind names the endpoint a request is for.
type RouteKind int

// The endpoints of the registry. Everything a layer needs to know about a request
// comes from its Route, parsed once, so no layer matches paths by substring.
const (
	RouteUnknown   RouteKind = iota // not an endpoint of ours
	RouteLive                       // GET /healthz
	RouteReady                      // GET /readyz
	RoutePing                       // /v2/
	RouteCatalog                    // /v2/_catalog
	RouteTags                       // /v2/<name>/tags/list
	RouteManifest                   // /v2/<name>/manifests/<reference>
	RouteBlob                       // /v2/<name>/blobs/<digest>
	RouteUpload                     // /v2/<name>/blobs/uploads/[<id>]
	RouteReferrers                  // /v2/<name>/referrers/<digest>
	RouteToken                      // /auth/token, the token endpoint
	RouteGC                         // /api/v1/gc
	RouteMetrics                    // GET /metrics
	RouteHealth                     // GET /health (detailed)
	RouteStats                      // GET /api/v1/stats
)

var routeNames = [...]string{"unknown", "healthz", "readyz", "ping", "catalog", "tags", "manifest", "blob", "upload", "referrers", "token", "gc", "metrics", "health", "stats"}

func (k RouteKind) String() string {
	if int(k) < len(routeNames) {
		return routeNames[k]
	}
	return "unknown"
}

// Route is a request parsed into what it addresses.
type Route struct {
	Kind RouteKind
	// Repository is the repository name, when the endpoint has one.
	Repository string
	// Reference is the tag or digest of a manifest, the digest of a blob or
	// referrers subject, or the id of an upload ("" when starting one).
	Reference string
	// Digest is Reference parsed, when it is a digest.
	Digest digest.Digest
	// Invalid, when set, is the OCI error the request deserves for a malformed
	// name or reference (the Kind is still known).
	Invalid *ociError
}

// IsTag reports whether a manifest route addresses a tag rather than a digest.
func (r Route) IsTag() bool { return r.Kind == RouteManifest && r.Digest == "" && r.Invalid == nil }

// Limits from the distribution spec.
const (
	maxNameLength = 255
	maxTagLength  = 128
)

var (
	// One path component of a repository name, as the distribution spec defines it.
	nameComponent = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$`)
	tagPattern    = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
	// Upload ids are distribution's UUIDs; anything else (a "=" reached the
	// storage driver as a 500, a ".." would be a path component) is unknown.
	uploadPattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_-]{0,127}$`)
)

// parseRoute parses a request path. It never fails: an unrecognised path is
// RouteUnknown, and a recognised one with a bad name or reference carries the
// error to answer with in Invalid.
func parseRoute(path string) Route {
	switch path {
	case "/healthz":
		return Route{Kind: RouteLive}
	case "/readyz":
		return Route{Kind: RouteReady}
	case "/metrics":
		return Route{Kind: RouteMetrics}
	case "/health":
		return Route{Kind: RouteHealth}
	case "/api/v1/stats":
		return Route{Kind: RouteStats}
	case "/v2", "/v2/":
		return Route{Kind: RoutePing}
	case "/v2/_catalog":
		return Route{Kind: RouteCatalog}
	case tokenPath:
		return Route{Kind: RouteToken}
	case registryapi.GCPath:
		return Route{Kind: RouteGC}
	}
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		return Route{}
	}
	// Parse from the right: a reference never contains a slash, while a
	// repository name may contain a component called "blobs" or "manifests".
	parts := strings.Split(rest, "/")
	n := len(parts)
	var rt Route
	var nameParts []string
	switch {
	case n >= 3 && parts[n-2] == "tags" && parts[n-1] == "list":
		rt, nameParts = Route{Kind: RouteTags}, parts[:n-2]
	case n >= 3 && parts[n-2] == "blobs" && parts[n-1] == "uploads":
		rt, nameParts = Route{Kind: RouteUpload}, parts[:n-2]
	case n >= 4 && parts[n-3] == "blobs" && parts[n-2] == "uploads":
		rt, nameParts = Route{Kind: RouteUpload, Reference: parts[n-1]}, parts[:n-3]
	case n >= 3 && parts[n-2] == "manifests":
		rt, nameParts = Route{Kind: RouteManifest, Reference: parts[n-1]}, parts[:n-2]
	case n >= 3 && parts[n-2] == "blobs":
		rt, nameParts = Route{Kind: RouteBlob, Reference: parts[n-1]}, parts[:n-2]
	case n >= 3 && parts[n-2] == "referrers":
		rt, nameParts = Route{Kind: RouteReferrers, Reference: parts[n-1]}, parts[:n-2]
	default:
		return Route{}
	}
	rt.Repository = strings.Join(nameParts, "/")
	if err := validateName(rt.Repository); err != nil {
		rt.Invalid = err
		return rt
	}
	switch rt.Kind {
	case RouteManifest:
		if strings.Contains(rt.Reference, ":") {
			rt.Digest, rt.Invalid = parseDigest(rt.Reference)
		} else if !tagPattern.MatchString(rt.Reference) {
			rt.Invalid = errTagInvalid(rt.Reference)
		}
	case RouteBlob, RouteReferrers:
		rt.Digest, rt.Invalid = parseDigest(rt.Reference)
	case RouteUpload:
		if rt.Reference != "" && !uploadPattern.MatchString(rt.Reference) {
			rt.Invalid = &ociError{Status: http.StatusNotFound, Code: codeBlobUploadUnknown, Message: "no such upload"}
		}
	}
	return rt
}

// validateName checks a repository name against the distribution spec.
func validateName(name string) *ociError {
	if name == "" {
		return &ociError{Status: http.StatusBadRequest, Code: codeNameInvalid, Message: "repository name is empty"}
	}
	if len(name) > maxNameLength {
		return &ociError{Status: http.StatusBadRequest, Code: codeNameInvalid,
			Message: "repository name is longer than 255 characters"}
	}
	for c := range strings.SplitSeq(name, "/") {
		if !nameComponent.MatchString(c) {
			return &ociError{Status: http.StatusBadRequest, Code: codeNameInvalid,
				Message: "invalid repository name: each path component must be lower-case letters and digits, separated by '.', '_', '__' or '-'"}
		}
	}
	return nil
}

func errTagInvalid(tag string) *ociError {
	msg := "invalid tag: up to 128 characters of letters, digits, '_', '.' and '-', not starting with '.' or '-'"
	if len(tag) > maxTagLength {
		msg = "invalid tag: longer than 128 characters"
	}
	return &ociError{Status: http.StatusBadRequest, Code: codeTagInvalid, Message: msg}
}

// parseDigest parses a digest whose algorithm we support.
func parseDigest(s string) (digest.Digest, *ociError) {
	d, err := digest.Parse(s)
	if err != nil {
		return "", &ociError{Status: http.StatusBadRequest, Code: codeDigestInvalid,
			Message: "invalid digest: " + err.Error() + " (want sha256:<64 hex> or sha512:<128 hex>)"}
	}
	return d, nil
}
