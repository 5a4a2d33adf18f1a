package ui

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Media types the UI tells apart.
const (
	mediaTypeDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	mediaTypeDockerConfig   = "application/vnd.docker.container.image.v1+json"
	// MediaTypeHelmConfig is the config of a Helm chart pushed to an OCI registry.
	MediaTypeHelmConfig = "application/vnd.cncf.helm.config.v1+json"

	// buildx stores provenance and SBOM attestations as manifests of the
	// image's index, with platform unknown/unknown and these annotations.
	annotationRefType     = "vnd.docker.reference.type"
	annotationRefDigest   = "vnd.docker.reference.digest"
	refTypeAttestation    = "attestation-manifest"
	annotationCreated     = v1.AnnotationCreated
	annotationTitle       = v1.AnnotationTitle
	maxConfigBytes        = 1 << 20
	maxHistoryShown       = 200
	maxRawManifestDisplay = 1 << 20
)

// Kind is what a manifest holds, as people name it.
type Kind string

// The kinds of manifest the UI shows.
const (
	KindImage    Kind = "image"
	KindIndex    Kind = "index"
	KindHelm     Kind = "helm"
	KindArtifact Kind = "artifact"
)

// Label is the kind as shown.
func (k Kind) Label() string {
	switch k {
	case KindImage:
		return "image"
	case KindIndex:
		return "multi-arch index"
	case KindHelm:
		return "Helm chart"
	}
	return "artifact"
}

// RefKind is what a referrer is for.
type RefKind string

// Referrer kinds, for the badges.
const (
	RefSignature   RefKind = "signature"
	RefSBOM        RefKind = "sbom"
	RefAttestation RefKind = "attestation"
	RefOther       RefKind = "artifact"
)

// Label is the referrer kind as shown.
func (k RefKind) Label() string {
	switch k {
	case RefSignature:
		return "signature"
	case RefSBOM:
		return "SBOM"
	case RefAttestation:
		return "attestation"
	}
	return "artifact"
}

// classifyReferrer names what an artifact type is for: signatures (Notary,
// cosign, sigstore bundles), SBOMs (SPDX, CycloneDX, syft) and attestations
// (in-toto, SLSA provenance, VEX); anything else is an artifact.
func classifyReferrer(artifactType string) RefKind {
	t := strings.ToLower(artifactType)
	switch {
	case strings.Contains(t, "spdx"), strings.Contains(t, "cyclonedx"), strings.Contains(t, "sbom"), strings.Contains(t, "syft"):
		return RefSBOM
	case strings.Contains(t, "signature"), strings.Contains(t, "cosign.artifact.sig"), strings.Contains(t, "sigstore.bundle"), strings.HasSuffix(t, ".sig"):
		return RefSignature
	case strings.Contains(t, "in-toto"), strings.Contains(t, "intoto"), strings.Contains(t, "attestation"),
		strings.Contains(t, "provenance"), strings.Contains(t, "slsa"), strings.Contains(t, "vex"):
		return RefAttestation
	}
	return RefOther
}

// manifestDoc is what the UI reads from an image manifest or index.
type manifestDoc struct {
	MediaType    string            `json:"mediaType"`
	ArtifactType string            `json:"artifactType"`
	Config       *v1.Descriptor    `json:"config"`
	Layers       []v1.Descriptor   `json:"layers"`
	Manifests    []v1.Descriptor   `json:"manifests"`
	Subject      *v1.Descriptor    `json:"subject"`
	Annotations  map[string]string `json:"annotations"`
}

func parseDoc(m Manifest) (*manifestDoc, error) {
	var d manifestDoc
	if err := json.Unmarshal(m.Payload, &d); err != nil {
		return nil, fmt.Errorf("manifest %s is not JSON: %w", m.Digest, err)
	}
	if d.MediaType == "" {
		d.MediaType = m.MediaType
	}
	return &d, nil
}

func (d *manifestDoc) isIndex() bool {
	return d.MediaType == v1.MediaTypeImageIndex || d.MediaType == mediaTypeDockerList || (d.Config == nil && len(d.Manifests) > 0)
}

// kind tells images, indexes, Helm charts and other artifacts apart.
func (d *manifestDoc) kind() Kind {
	if d.ArtifactType == MediaTypeHelmConfig || (d.Config != nil && d.Config.MediaType == MediaTypeHelmConfig) {
		return KindHelm
	}
	if d.ArtifactType != "" {
		return KindArtifact
	}
	if d.isIndex() {
		return KindIndex
	}
	if d.Config != nil && (d.Config.MediaType == v1.MediaTypeImageConfig || d.Config.MediaType == mediaTypeDockerConfig) {
		return KindImage
	}
	return KindArtifact
}

// artifactType is what the referrers API would report: the manifest's own
// artifactType, else its config's media type.
func (d *manifestDoc) artifactType() string {
	if d.ArtifactType != "" {
		return d.ArtifactType
	}
	if d.Config != nil && !d.isIndex() {
		return d.Config.MediaType
	}
	return ""
}

// blobSize is what pulling the manifest downloads besides itself: its config
// and its layers (compressed, as stored).
func (d *manifestDoc) blobSize() int64 {
	var n int64
	if d.Config != nil {
		n += d.Config.Size
	}
	for _, l := range d.Layers {
		n += l.Size
	}
	return n
}

// isAttestation reports whether an index entry is a buildx attestation manifest.
func isAttestation(d v1.Descriptor) bool {
	return d.Annotations[annotationRefType] == refTypeAttestation
}

// Platform is one platform of an index.
type Platform struct {
	OS, Architecture, Variant, OSVersion string
	Digest                               string
	// Size is the platform's config and layers, compressed as stored
	// (0 with SizeKnown false when its manifest is not in the repository).
	Size      int64
	SizeKnown bool
	MediaType string
}

// Label is os/arch[/variant], as docker names a platform.
func (p Platform) Label() string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	if p.OSVersion != "" {
		s += " (" + p.OSVersion + ")"
	}
	return s
}

// Attestation is a buildx attestation manifest of an index.
type Attestation struct {
	Digest string
	// For is the digest of the platform manifest it attests, and ForPlatform
	// that platform's label when the index has it.
	For, ForPlatform string
	Size             int64
}

// splitIndex separates an index's platforms from its attestation manifests:
// attestations are never shown as a platform.
func splitIndex(entries []v1.Descriptor) (platforms []Platform, attestations []Attestation) {
	labels := map[string]string{}
	for _, e := range entries {
		if isAttestation(e) {
			continue
		}
		p := Platform{Digest: e.Digest.String(), MediaType: e.MediaType}
		if e.Platform != nil {
			p.OS, p.Architecture, p.Variant, p.OSVersion = e.Platform.OS, e.Platform.Architecture, e.Platform.Variant, e.Platform.OSVersion
		}
		if p.OS == "" {
			p.OS = "unknown"
		}
		if p.Architecture == "" {
			p.Architecture = "unknown"
		}
		platforms = append(platforms, p)
		labels[p.Digest] = p.Label()
	}
	for _, e := range entries {
		if !isAttestation(e) {
			continue
		}
		a := Attestation{Digest: e.Digest.String(), For: e.Annotations[annotationRefDigest], Size: e.Size}
		a.ForPlatform = labels[a.For]
		attestations = append(attestations, a)
	}
	return platforms, attestations
}

// imageConfig is the part of an image config the UI shows.
type imageConfig struct {
	Created      *time.Time `json:"created"`
	Author       string     `json:"author"`
	Architecture string     `json:"architecture"`
	OS           string     `json:"os"`
	Config       struct {
		User         string              `json:"User"`
		Env          []string            `json:"Env"`
		Entrypoint   []string            `json:"Entrypoint"`
		Cmd          []string            `json:"Cmd"`
		WorkingDir   string              `json:"WorkingDir"`
		Labels       map[string]string   `json:"Labels"`
		ExposedPorts map[string]struct{} `json:"ExposedPorts"`
	} `json:"config"`
	History []struct {
		Created    *time.Time `json:"created"`
		CreatedBy  string     `json:"created_by"`
		Comment    string     `json:"comment"`
		EmptyLayer bool       `json:"empty_layer"`
	} `json:"history"`
}

// helmConfig is a Helm chart's Chart.yaml as pushed (JSON).
type helmConfig struct {
	Name        string `json:"name"`
	Version     string `json:"version"`
	AppVersion  string `json:"appVersion"`
	Description string `json:"description"`
	APIVersion  string `json:"apiVersion"`
	Type        string `json:"type"`
}

// KeyValue is one row of a label or annotation table.
type KeyValue struct{ Key, Value string }

func sortedPairs(m map[string]string) []KeyValue {
	out := make([]KeyValue, 0, len(m))
	for k, v := range m {
		out = append(out, KeyValue{k, v})
	}
	slices.SortFunc(out, func(a, b KeyValue) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// shortDigest is the first 12 hex digits, as docker shows image ids.
func shortDigest(d string) string {
	_, hex, ok := strings.Cut(d, ":")
	if !ok {
		hex = d
	}
	if len(hex) > 12 {
		hex = hex[:12]
	}
	return hex
}

// formatSize renders bytes in binary units with one decimal.
func formatSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// formatAge renders how long ago t was, coarsely.
func formatAge(t, now time.Time) string {
	if t.IsZero() {
		return "—"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return plural(int(d/time.Minute), "minute") + " ago"
	case d < 48*time.Hour:
		return plural(int(d/time.Hour), "hour") + " ago"
	case d < 60*24*time.Hour:
		return plural(int(d/(24*time.Hour)), "day") + " ago"
	case d < 2*365*24*time.Hour:
		return plural(int(d/(30*24*time.Hour)), "month") + " ago"
	}
	return plural(int(d/(365*24*time.Hour)), "year") + " ago"
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}
