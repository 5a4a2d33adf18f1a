package registry

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// Limits of the HTTP front.
const (
	maxHeaderBytes  = 64 << 10
	maxManifestSize = 4 << 20 // what distribution itself accepts
)

// contentRange is the form distribution accepts for chunked uploads: "start-end".
var contentRange = regexp.MustCompile(`^([0-9]{1,18})-([0-9]{1,18})$`)

// withLimits refuses, before distribution sees them, requests it would answer
// with a 500 or a plain-text 404: malformed names, tags and digests, manifests
// over the size limit, malformed Content-Range headers and pagination cursors
// that are no names at all.
func withLimits(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt := routeOf(r)
		if rt.Invalid != nil {
			rt.Invalid.write(w)
			return
		}
		if _, err := url.ParseQuery(r.URL.RawQuery); err != nil {
			writeOCIError(w, http.StatusBadRequest, codeUnsupported, "malformed query string")
			return
		}
		if e := checkRequest(r, rt); e != nil {
			e.write(w)
			return
		}
		// distribution's router redirects these to a trailing slash (and its
		// redirect code dereferences nil on some query strings): serve them.
		if (rt.Kind == RoutePing || (rt.Kind == RouteUpload && rt.Reference == "")) && !strings.HasSuffix(r.URL.Path, "/") {
			r.URL.Path += "/"
			r.URL.RawPath = ""
		}
		if rt.Kind == RouteManifest && r.Method == http.MethodPut {
			r.Body = http.MaxBytesReader(w, r.Body, maxManifestSize)
		}
		next.ServeHTTP(w, r)
	})
}

func checkRequest(r *http.Request, rt Route) *ociError {
	switch rt.Kind {
	case RouteLive, RouteReady:
		return &ociError{Status: http.StatusMethodNotAllowed, Code: codeUnsupported, Message: "health endpoints answer GET only"}
	case RouteUnknown, RouteToken: // the token endpoint answers before this layer, when auth is on
		return &ociError{Status: http.StatusNotFound, Code: codeUnsupported, Message: "no such endpoint: " + r.Method + " " + r.URL.Path}
	case RouteManifest:
		if r.Method == http.MethodPut && r.ContentLength > maxManifestSize {
			return &ociError{Status: http.StatusRequestEntityTooLarge, Code: codeManifestInvalid,
				Message: fmt.Sprintf("manifest is %d bytes; the limit is %d", r.ContentLength, maxManifestSize)}
		}
	case RouteCatalog:
		if last := r.URL.Query().Get("last"); last != "" && validateName(last) != nil {
			return &ociError{Status: http.StatusBadRequest, Code: codeNameInvalid, Message: "query parameter last is not a repository name"}
		}
	case RouteTags:
		if last := r.URL.Query().Get("last"); last != "" && !tagPattern.MatchString(last) {
			return &ociError{Status: http.StatusBadRequest, Code: codeTagInvalid, Message: "query parameter last is not a tag"}
		}
	case RouteUpload:
		if cr := r.Header.Get("Content-Range"); cr != "" && r.Method == http.MethodPatch {
			m := contentRange.FindStringSubmatch(cr)
			if m == nil {
				return &ociError{Status: http.StatusRequestedRangeNotSatisfiable, Code: codeBlobUploadInvalid,
					Message: `malformed Content-Range: want "<start>-<end>" in bytes, e.g. "0-1023"`}
			}
			start, _ := strconv.ParseInt(m[1], 10, 64)
			end, _ := strconv.ParseInt(m[2], 10, 64)
			if start > end {
				return &ociError{Status: http.StatusRequestedRangeNotSatisfiable, Code: codeBlobUploadInvalid,
					Message: "Content-Range ends before it starts"}
			}
		}
	case RouteReferrers:
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return &ociError{Status: http.StatusMethodNotAllowed, Code: codeUnsupported, Message: "referrers are read-only: use GET"}
		}
	}
	return nil
}
