package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// ManifestAction says what happened to a manifest.
type ManifestAction int

// What a ManifestEvent reports.
const (
	ManifestPushed  ManifestAction = iota + 1 // a manifest was stored (by digest or tag)
	ManifestDeleted                           // a manifest was deleted by digest
	TagDeleted                                // a tag was deleted; the manifest stays
)

// ManifestEvent is what the manifest layer tells its listeners after a
// successful PUT or DELETE, before the client gets its answer.
type ManifestEvent struct {
	Action     ManifestAction
	Repository string
	// Digest is the manifest's digest under the algorithm it was addressed by
	// (sha512 when pushed by a sha512 digest).
	Digest digest.Digest
	// Tag is set for a push by tag and for TagDeleted.
	Tag       string
	MediaType string
	// Payload is the manifest itself (empty for TagDeleted, and for a deleted
	// manifest whose content could not be read first).
	Payload []byte
	// Subject, ArtifactType and Annotations come from the manifest, for the
	// referrers index (Subject is nil for a manifest without one).
	Subject      *v1.Descriptor
	ArtifactType string
	Annotations  map[string]string
}

// withDoc fills the fields that come from the manifest's content.
func (ev ManifestEvent) withDoc(doc *manifestDoc) ManifestEvent {
	if doc != nil {
		ev.Subject, ev.ArtifactType, ev.Annotations = doc.Subject, doc.artifactType(), doc.Annotations
		if ev.MediaType == "" {
			ev.MediaType = doc.MediaType
		}
	}
	return ev
}

// manifestListener is told about every manifest event; an error fails the
// request (the client retries; every listener is idempotent).
type manifestListener func(ctx context.Context, ev ManifestEvent) error

// manifestDoc is the part of an image manifest or index that the registry
// checks and indexes.
type manifestDoc struct {
	SchemaVersion *int              `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        *v1.Descriptor    `json:"config"`
	Layers        []v1.Descriptor   `json:"layers"`
	Manifests     []v1.Descriptor   `json:"manifests"`
	Subject       *v1.Descriptor    `json:"subject"`
	Annotations   map[string]string `json:"annotations"`
}

// parseManifest decodes and checks the shape of a manifest body.
func parseManifest(body []byte) (*manifestDoc, *ociError) {
	invalid := func(format string, a ...any) *ociError {
		return &ociError{Status: http.StatusBadRequest, Code: codeManifestInvalid, Message: fmt.Sprintf(format, a...)}
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, invalid("manifest is not a JSON object")
	}
	var m manifestDoc
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, invalid("manifest is not valid JSON for an image manifest or index: %v", err)
	}
	if m.SchemaVersion == nil {
		return nil, invalid("manifest has no schemaVersion (want 2)")
	}
	if *m.SchemaVersion != 2 {
		return nil, invalid("manifest schemaVersion %d is not supported (want 2)", *m.SchemaVersion)
	}
	check := func(what string, d *v1.Descriptor) *ociError {
		if err := d.Digest.Validate(); err != nil {
			return invalid("%s: invalid digest %q: %v", what, d.Digest, err)
		}
		if d.Size < 0 {
			return invalid("%s: negative size %d", what, d.Size)
		}
		return nil
	}
	if m.Config != nil {
		if e := check("config", m.Config); e != nil {
			return nil, e
		}
	}
	for i := range m.Layers {
		if e := check(fmt.Sprintf("layers[%d]", i), &m.Layers[i]); e != nil {
			return nil, e
		}
	}
	for i := range m.Manifests {
		if e := check(fmt.Sprintf("manifests[%d]", i), &m.Manifests[i]); e != nil {
			return nil, e
		}
	}
	if m.Subject != nil {
		if e := check("subject", m.Subject); e != nil {
			return nil, e
		}
	}
	return &m, nil
}

// artifactType is what the referrers API reports for a manifest: its own
// artifactType, else its config's media type.
func (m *manifestDoc) artifactType() string {
	if m.ArtifactType != "" {
		return m.ArtifactType
	}
	if m.Config != nil {
		return m.Config.MediaType
	}
	return ""
}

// manifestLayer runs in front of distribution for manifests and blobs: it
// validates what distribution lets through, adds sha512 addressing, answers
// OCI-Subject, and is the one place that sees every successful manifest PUT and
// DELETE and tells the listeners.
type manifestLayer struct {
	next      http.Handler
	eng       *engine
	log       *slog.Logger
	listeners []manifestListener
}

func (l *manifestLayer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt := routeOf(r)
	switch {
	case rt.Kind == RouteManifest && r.Method == http.MethodPut:
		l.put(w, r, rt)
	case rt.Kind == RouteManifest && r.Method == http.MethodDelete:
		l.delete(w, r, rt)
	case rt.Kind == RouteBlob || rt.Kind == RouteUpload:
		l.blob(w, r, rt)
	default:
		l.next.ServeHTTP(w, r)
	}
}

func (l *manifestLayer) put(w http.ResponseWriter, r *http.Request, rt Route) {
	ctx := r.Context()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeOCIError(w, http.StatusRequestEntityTooLarge, codeManifestInvalid, fmt.Sprintf("manifest is larger than the limit of %d bytes", maxManifestSize))
			return
		}
		writeOCIError(w, http.StatusBadRequest, codeManifestInvalid, "could not read the manifest: "+err.Error())
		return
	}
	doc, e := parseManifest(body)
	if e != nil {
		e.write(w)
		return
	}
	canonical := digest.Canonical.FromBytes(body)
	addressed := canonical
	if rt.Digest != "" {
		if got := rt.Digest.Algorithm().FromBytes(body); got != rt.Digest {
			writeOCIError(w, http.StatusBadRequest, codeDigestInvalid, "manifest content does not match digest "+rt.Digest.String())
			return
		}
		if rt.Digest.Algorithm() != digest.Canonical {
			// distribution stores the manifest under its sha256; the sha512
			// address becomes an alias link to it.
			r.URL.Path = strings.TrimSuffix(r.URL.Path, rt.Reference) + canonical.String()
			r.URL.RawPath = ""
		}
		addressed = rt.Digest
	}
	if e := l.checkSizes(ctx, rt.Repository, doc); e != nil {
		e.write(w)
		return
	}
	mediaType := doc.MediaType
	if mediaType == "" {
		mediaType = r.Header.Get("Content-Type")
	}
	ev := ManifestEvent{Action: ManifestPushed, Repository: rt.Repository, Digest: addressed, MediaType: mediaType, Payload: body}.withDoc(doc)
	if rt.IsTag() {
		ev.Tag = rt.Reference
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.Header.Set("Content-Length", strconv.Itoa(len(body)))
	l.next.ServeHTTP(newHookWriter(w, func(status int, h http.Header) error {
		if status != http.StatusCreated {
			return nil
		}
		if addressed != canonical {
			if err := l.eng.link(ctx, manifestRevisionLinkPath(rt.Repository, addressed), canonical); err != nil {
				return fmt.Errorf("record %s as an alias of %s: %w", addressed, canonical, err)
			}
			rewriteDigestHeaders(h, canonical, addressed)
		}
		if doc.Subject != nil {
			h.Set("OCI-Subject", doc.Subject.Digest.String())
		}
		return l.tell(ctx, ev)
	}, l.log), r)
}

// checkSizes refuses descriptors whose size differs from the stored content's:
// distribution stores such a manifest, and no client can ever pull it.
func (l *manifestLayer) checkSizes(ctx context.Context, repo string, doc *manifestDoc) *ociError {
	mismatch := func(what string, d v1.Descriptor, stored int64) *ociError {
		return &ociError{Status: http.StatusBadRequest, Code: codeManifestInvalid,
			Message: fmt.Sprintf("%s %s: the manifest gives size %d, the stored content is %d bytes", what, d.Digest, d.Size, stored)}
	}
	blobs := doc.Layers
	if doc.Config != nil {
		blobs = append([]v1.Descriptor{*doc.Config}, blobs...)
	}
	for _, d := range blobs {
		stored, ok, err := l.eng.blobStat(ctx, repo, d.Digest)
		if err != nil {
			l.log.Warn("stat blob for manifest validation", "repository", repo, "digest", d.Digest, "err", err)
			continue // distribution's own check reports it
		}
		if ok && stored.Size != d.Size {
			return mismatch("blob", d, stored.Size)
		}
	}
	for _, d := range doc.Manifests {
		_, payload, ok, err := l.eng.manifest(ctx, repo, d.Digest)
		if err != nil {
			l.log.Warn("read manifest for index validation", "repository", repo, "digest", d.Digest, "err", err)
			continue
		}
		if ok && int64(len(payload)) != d.Size {
			return mismatch("manifest", d, int64(len(payload)))
		}
	}
	return nil
}

func (l *manifestLayer) delete(w http.ResponseWriter, r *http.Request, rt Route) {
	ctx := r.Context()
	if rt.IsTag() {
		l.next.ServeHTTP(newHookWriter(w, func(status int, _ http.Header) error {
			if status != http.StatusAccepted {
				return nil
			}
			return l.tell(ctx, ManifestEvent{Action: TagDeleted, Repository: rt.Repository, Tag: rt.Reference})
		}, l.log), r)
		return
	}
	// Read the manifest first: listeners need its content (its subject), and
	// its other digest, if it has an alias, is deleted with it.
	mediaType, payload, found, err := l.eng.manifest(ctx, rt.Repository, rt.Digest)
	if err != nil {
		l.log.Warn("read manifest before delete", "repository", rt.Repository, "digest", rt.Digest, "err", err)
	}
	var aliases []digest.Digest
	if found {
		canonical := digest.Canonical.FromBytes(payload)
		if rt.Digest != canonical {
			// Let distribution delete the canonical revision (and untag it);
			// the alias link goes in the hook.
			aliases = append(aliases, rt.Digest)
			r.URL.Path = strings.TrimSuffix(r.URL.Path, rt.Reference) + canonical.String()
			r.URL.RawPath = ""
		} else {
			for _, alg := range []digest.Algorithm{digest.SHA384, digest.SHA512} {
				alias := alg.FromBytes(payload)
				if ok, _ := l.eng.linkExists(ctx, manifestRevisionLinkPath(rt.Repository, alias)); ok {
					aliases = append(aliases, alias)
				}
			}
		}
	}
	l.next.ServeHTTP(newHookWriter(w, func(status int, _ http.Header) error {
		if status != http.StatusAccepted {
			return nil
		}
		for _, a := range aliases {
			if err := l.deleteAlias(r, rt.Repository, a); err != nil {
				return err
			}
		}
		ev := ManifestEvent{Action: ManifestDeleted, Repository: rt.Repository, Digest: rt.Digest, MediaType: mediaType, Payload: payload}
		if doc, e := parseManifest(payload); e == nil {
			ev = ev.withDoc(doc)
		}
		return l.tell(ctx, ev)
	}, l.log), r)
}

// deleteAlias deletes a manifest's alias revision through distribution itself,
// so that its descriptor cache forgets the alias too.
func (l *manifestLayer) deleteAlias(r *http.Request, repo string, alias digest.Digest) error {
	req := r.Clone(r.Context())
	req.Method = http.MethodDelete
	req.URL.Path, req.URL.RawPath, req.URL.RawQuery = "/v2/"+repo+"/manifests/"+alias.String(), "", ""
	req.Body, req.ContentLength = http.NoBody, 0
	rec := &statusOnly{header: http.Header{}}
	l.next.ServeHTTP(rec, req)
	if rec.status != http.StatusAccepted && rec.status != http.StatusNotFound {
		return fmt.Errorf("delete alias %s of a manifest: status %d", alias, rec.status)
	}
	return nil
}

// statusOnly is a ResponseWriter for inner requests whose answer is its status.
type statusOnly struct {
	header http.Header
	status int
}

func (s *statusOnly) Header() http.Header { return s.header }
func (s *statusOnly) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
}
func (s *statusOnly) Write(b []byte) (int, error) {
	s.WriteHeader(http.StatusOK)
	return len(b), nil
}

func (l *manifestLayer) tell(ctx context.Context, ev ManifestEvent) error {
	var errs []error
	for _, fn := range l.listeners {
		if err := fn(ctx, ev); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// blob gives uploads and mounts addressed by a sha512 digest that digest in
// their answers: distribution stores such blobs under their sha256 and links
// the sha512 as an alias, but reports the sha256. (GET and HEAD are served by
// the blob files layer, under the digest asked for.)
func (l *manifestLayer) blob(w http.ResponseWriter, r *http.Request, rt Route) {
	q := r.URL.Query()
	switch {
	case rt.Kind == RouteUpload && r.Method == http.MethodPost && q.Get("mount") != "" && q.Get("from") != "":
		l.mount(w, r, rt)
	case rt.Kind == RouteUpload && (r.Method == http.MethodPut || r.Method == http.MethodPost) && q.Get("digest") != "":
		want, err := digest.Parse(q.Get("digest"))
		if err != nil || want.Algorithm() == digest.Canonical {
			l.next.ServeHTTP(w, r) // distribution answers a bad digest itself
			return
		}
		l.next.ServeHTTP(newHookWriter(w, func(status int, h http.Header) error {
			if status == http.StatusCreated {
				rewriteDigestHeaders(h, digest.Digest(h.Get("Docker-Content-Digest")), want)
			}
			return nil
		}, l.log), r)
	default:
		l.next.ServeHTTP(w, r)
	}
}

// mount handles a cross-repository mount of a sha512 blob: distribution would
// link only the sha256 into the target, so the sha512 address would be
// unknown there.
func (l *manifestLayer) mount(w http.ResponseWriter, r *http.Request, rt Route) {
	ctx := r.Context()
	q := r.URL.Query()
	want, err := digest.Parse(q.Get("mount"))
	from := q.Get("from")
	if err != nil || want.Algorithm() == digest.Canonical || validateName(from) != nil {
		l.next.ServeHTTP(w, r)
		return
	}
	stored, ok, err := l.eng.blobStat(ctx, from, want)
	if err != nil || !ok {
		if err != nil {
			l.log.Warn("resolve blob to mount", "from", from, "digest", want, "err", err)
		}
		// Not there: drop the mount so distribution starts a plain upload,
		// as the spec asks.
		q.Del("mount")
		q.Del("from")
		r.URL.RawQuery = q.Encode()
		l.next.ServeHTTP(w, r)
		return
	}
	canonical := stored.Digest
	q.Set("mount", canonical.String())
	r.URL.RawQuery = q.Encode()
	l.next.ServeHTTP(newHookWriter(w, func(status int, h http.Header) error {
		if status != http.StatusCreated {
			return nil
		}
		if err := l.eng.link(ctx, layerLinkPath(rt.Repository, want), canonical); err != nil {
			return fmt.Errorf("link mounted blob %s: %w", want, err)
		}
		rewriteDigestHeaders(h, canonical, want)
		return nil
	}, l.log), r)
}

// rewriteDigestHeaders reports content under the digest the client addressed.
func rewriteDigestHeaders(h http.Header, from, to digest.Digest) {
	h.Set("Docker-Content-Digest", to.String())
	if loc := h.Get("Location"); loc != "" && from != "" {
		h.Set("Location", strings.Replace(loc, from.String(), to.String(), 1))
	}
}

// hookWriter runs hook once, just before the status line goes out, so work
// that must be done before the client hears "created" (an alias link, the
// referrers index) is done by then. If the hook fails, the client gets a 500
// instead and whatever the inner handler writes next is dropped.
type hookWriter struct {
	http.ResponseWriter
	hook   func(status int, h http.Header) error
	log    *slog.Logger
	wrote  bool
	failed bool
}

func newHookWriter(w http.ResponseWriter, hook func(int, http.Header) error, log *slog.Logger) *hookWriter {
	return &hookWriter{ResponseWriter: w, hook: hook, log: log}
}

func (w *hookWriter) WriteHeader(code int) {
	if w.wrote {
		return
	}
	w.wrote = true
	if err := w.hook(code, w.Header()); err != nil {
		w.failed = true
		w.log.Error("registry request failed after storage", "err", err)
		writeOCIError(w.ResponseWriter, http.StatusInternalServerError, codeUnknown, "the content was stored but could not be recorded; retry the request")
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *hookWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.failed {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

func (w *hookWriter) Flush() {
	if !w.wrote || w.failed {
		return
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *hookWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ReadFrom passes through (sendfile, see readFromThrough) unless the hook failed.
func (w *hookWriter) ReadFrom(src io.Reader) (int64, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.failed {
		return io.Copy(io.Discard, src)
	}
	return readFromThrough(w.ResponseWriter, src)
}
