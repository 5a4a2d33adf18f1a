package ui

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFormatSize(t *testing.T) {
	tests := map[int64]string{
		0:                   "0 B",
		1023:                "1023 B",
		1024:                "1.0 KiB",
		1536:                "1.5 KiB",
		7018:                "6.9 KiB",
		5 << 20:             "5.0 MiB",
		3<<30 + 512<<20:     "3.5 GiB",
		2 << 40:             "2.0 TiB",
		1<<62 + 1<<61:       "6.0 EiB",
		(1 << 20) - 1:       "1024.0 KiB",
		20 * (1 << 30) / 10: "2.0 GiB",
	}
	for n, want := range tests {
		assert.Equal(t, want, formatSize(n), "%d bytes", n)
	}
}

func TestFormatAge(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		ago  time.Duration
		want string
	}{
		{-time.Minute, "just now"},
		{30 * time.Second, "just now"},
		{time.Minute, "1 minute ago"},
		{59 * time.Minute, "59 minutes ago"},
		{3 * time.Hour, "3 hours ago"},
		{72 * time.Hour, "3 days ago"},
		{90 * 24 * time.Hour, "3 months ago"},
		{3 * 365 * 24 * time.Hour, "3 years ago"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, formatAge(now.Add(-tt.ago), now), tt.ago)
	}
	assert.Equal(t, "—", formatAge(time.Time{}, now))
}

func desc(mediaType string, content string) v1.Descriptor {
	return v1.Descriptor{MediaType: mediaType, Digest: digest.FromString(content), Size: int64(len(content))}
}

func doc(t *testing.T, m any) *manifestDoc {
	t.Helper()
	b, err := json.Marshal(m)
	require.NoError(t, err)
	d, err := parseDoc(Manifest{Digest: digest.FromBytes(b).String(), Payload: b})
	require.NoError(t, err)
	return d
}

func TestKind(t *testing.T) {
	imageConfig := desc(v1.MediaTypeImageConfig, "config")
	layer := desc(v1.MediaTypeImageLayerGzip, "layer")
	tests := []struct {
		name     string
		manifest any
		kind     Kind
		artifact string
	}{
		{"OCI image", v1.Manifest{MediaType: v1.MediaTypeImageManifest, Config: imageConfig, Layers: []v1.Descriptor{layer}}, KindImage, v1.MediaTypeImageConfig},
		{"Docker image", map[string]any{"mediaType": mediaTypeDockerManifest, "config": desc(mediaTypeDockerConfig, "c"), "layers": []v1.Descriptor{layer}}, KindImage, mediaTypeDockerConfig},
		{"OCI index", v1.Index{MediaType: v1.MediaTypeImageIndex, Manifests: []v1.Descriptor{desc(v1.MediaTypeImageManifest, "m")}}, KindIndex, ""},
		{"Docker manifest list", map[string]any{"mediaType": mediaTypeDockerList, "manifests": []v1.Descriptor{desc(mediaTypeDockerManifest, "m")}}, KindIndex, ""},
		{"Helm chart", v1.Manifest{MediaType: v1.MediaTypeImageManifest, Config: desc(MediaTypeHelmConfig, "{}"),
			Layers: []v1.Descriptor{desc("application/vnd.cncf.helm.chart.content.v1.tar+gzip", "tgz")}}, KindHelm, MediaTypeHelmConfig},
		{"artifact by artifactType", v1.Manifest{MediaType: v1.MediaTypeImageManifest, ArtifactType: "application/spdx+json",
			Config: desc(v1.MediaTypeEmptyJSON, "{}"), Layers: []v1.Descriptor{layer}}, KindArtifact, "application/spdx+json"},
		{"artifact by config type", v1.Manifest{MediaType: v1.MediaTypeImageManifest, Config: desc("application/vnd.example.config", "x")}, KindArtifact, "application/vnd.example.config"},
		{"index with artifactType", v1.Index{MediaType: v1.MediaTypeImageIndex, ArtifactType: "application/vnd.example.bundle",
			Manifests: []v1.Descriptor{desc(v1.MediaTypeImageManifest, "m")}}, KindArtifact, "application/vnd.example.bundle"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := doc(t, tt.manifest)
			assert.Equal(t, tt.kind, d.kind())
			assert.Equal(t, tt.artifact, d.artifactType())
		})
	}
	assert.Equal(t, "multi-arch index", KindIndex.Label())
	assert.Equal(t, "Helm chart", KindHelm.Label())
}

func TestBlobSize(t *testing.T) {
	d := doc(t, v1.Manifest{Config: desc(v1.MediaTypeImageConfig, "12345"),
		Layers: []v1.Descriptor{desc(v1.MediaTypeImageLayerGzip, "1234567890"), desc(v1.MediaTypeImageLayerGzip, "abc")}})
	assert.Equal(t, int64(5+10+3), d.blobSize(), "config and layers, as pulled")
}

// buildx puts attestation manifests into the image's index with platform
// unknown/unknown: they must come out as attestations, never as platforms.
func TestSplitIndexFiltersAttestations(t *testing.T) {
	amd := desc(v1.MediaTypeImageManifest, "amd64")
	amd.Platform = &v1.Platform{OS: "linux", Architecture: "amd64"}
	arm := desc(v1.MediaTypeImageManifest, "arm64")
	arm.Platform = &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
	win := desc(v1.MediaTypeImageManifest, "windows")
	win.Platform = &v1.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.20348.1"}
	att := desc(v1.MediaTypeImageManifest, "attestation")
	att.Platform = &v1.Platform{OS: "unknown", Architecture: "unknown"}
	att.Annotations = map[string]string{annotationRefType: refTypeAttestation, annotationRefDigest: amd.Digest.String()}
	orphan := desc(v1.MediaTypeImageManifest, "attestation of nothing here")
	orphan.Platform = &v1.Platform{OS: "unknown", Architecture: "unknown"}
	orphan.Annotations = map[string]string{annotationRefType: refTypeAttestation, annotationRefDigest: digest.FromString("x").String()}
	noPlatform := desc(v1.MediaTypeImageManifest, "bare")

	platforms, attestations := splitIndex([]v1.Descriptor{amd, att, arm, orphan, win, noPlatform})
	var labels []string
	for _, p := range platforms {
		labels = append(labels, p.Label())
	}
	assert.Equal(t, []string{"linux/amd64", "linux/arm64/v8", "windows/amd64 (10.0.20348.1)", "unknown/unknown"}, labels)
	require.Len(t, attestations, 2)
	assert.Equal(t, Attestation{Digest: att.Digest.String(), For: amd.Digest.String(), ForPlatform: "linux/amd64", Size: att.Size}, attestations[0])
	assert.Equal(t, "", attestations[1].ForPlatform, "attests a manifest the index does not list")
}

func TestClassifyReferrer(t *testing.T) {
	tests := map[string]RefKind{
		"application/spdx+json":                           RefSBOM,
		"application/vnd.cyclonedx+json":                  RefSBOM,
		"application/vnd.example.sbom.v1":                 RefSBOM,
		"application/vnd.cncf.notary.signature":           RefSignature,
		"application/vnd.dev.cosign.artifact.sig.v1+json": RefSignature,
		"application/vnd.dev.sigstore.bundle.v0.3+json":   RefSignature,
		"application/vnd.in-toto+json":                    RefAttestation,
		"application/vnd.dev.cosign.attestation.v1+json":  RefAttestation,
		"https://slsa.dev/provenance/v1":                  RefAttestation,
		"application/vnd.openvex+json":                    RefAttestation,
		"application/vnd.example.notes":                   RefOther,
		"":                                                RefOther,
	}
	for at, want := range tests {
		assert.Equal(t, want, classifyReferrer(at), at)
	}
}

func TestCommands(t *testing.T) {
	tests := []struct {
		name        string
		host        string
		tls         bool
		clusterHost string
		repo, ref   string
		kind        Kind
		want        []Command
	}{
		{"image on loopback over HTTP", "127.0.0.1:5001", false, "", "team/app", "v1", KindImage, []Command{
			{"docker", "docker pull localhost:5001/team/app:v1"},
			{"podman", "podman pull --tls-verify=false localhost:5001/team/app:v1"},
			{"crane", "crane pull localhost:5001/team/app:v1 app.tar"},
			{"kubectl", "kubectl run app --image=localhost:5001/team/app:v1"},
		}},
		{"index by digest in a cluster", "localhost:5001", false, "registry.local:5000", "multi", "sha256:" + repeat("a", 64), KindIndex, []Command{
			{"docker", "docker pull localhost:5001/multi@sha256:" + repeat("a", 64)},
			{"podman", "podman pull --tls-verify=false localhost:5001/multi@sha256:" + repeat("a", 64)},
			{"crane", "crane pull localhost:5001/multi@sha256:" + repeat("a", 64) + " multi.tar"},
			{"kubectl", "kubectl run multi --image=registry.local:5000/multi@sha256:" + repeat("a", 64)},
		}},
		{"image on another host over HTTP", "192.168.1.10:5001", false, "", "app", "v1", KindImage, []Command{
			{"docker", "docker pull 192.168.1.10:5001/app:v1"},
			{"podman", "podman pull --tls-verify=false 192.168.1.10:5001/app:v1"},
			{"crane", "crane pull --insecure 192.168.1.10:5001/app:v1 app.tar"},
			{"kubectl", "kubectl run app --image=192.168.1.10:5001/app:v1"},
		}},
		{"image over HTTPS", "registry.example:443", true, "", "app", "v1", KindImage, []Command{
			{"docker", "docker pull registry.example:443/app:v1"},
			{"podman", "podman pull registry.example:443/app:v1"},
			{"crane", "crane pull registry.example:443/app:v1 app.tar"},
			{"kubectl", "kubectl run app --image=registry.example:443/app:v1"},
		}},
		{"Helm chart", "[::1]:5001", false, "", "charts/my_chart", "1.2.0", KindHelm, []Command{
			{"helm", "helm install my-chart oci://localhost:5001/charts/my_chart --version 1.2.0 --plain-http"},
			{"oras", "oras pull --plain-http localhost:5001/charts/my_chart:1.2.0"},
		}},
		{"Helm chart over HTTPS by digest", "localhost:5443", true, "", "chart", "sha256:" + repeat("b", 64), KindHelm, []Command{
			{"oras", "oras pull localhost:5443/chart@sha256:" + repeat("b", 64)},
		}},
		{"artifact", "localhost:5001", false, "", "sbom/app", "v1", KindArtifact, []Command{
			{"oras", "oras pull --plain-http localhost:5001/sbom/app:v1"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ep := newEndpoint(tt.host, tt.tls, tt.clusterHost)
			assert.Equal(t, tt.want, ep.commands(tt.repo, tt.ref, tt.kind))
		})
	}
}

func repeat(s string, n int) string {
	out := ""
	for range n {
		out += s
	}
	return out
}

func TestPodName(t *testing.T) {
	tests := map[string]string{
		"app":                  "app",
		"team/My_App.v2":       "my-app-v2",
		"a/__":                 "app",
		"x/" + repeat("a", 70): repeat("a", 63),
	}
	for in, want := range tests {
		assert.Equal(t, want, podName(in), in)
	}
}

func TestSafeNext(t *testing.T) {
	tests := map[string]string{
		"":                          "/ui/",
		"/ui/":                      "/ui/",
		"/ui/repo/a/b?sort=name":    "/ui/repo/a/b?sort=name",
		"/ui/repo/x/-/delete?tag=v": "/ui/repo/x/-/delete?tag=v",
		"https://evil.example/ui/":  "/ui/",
		"//evil.example/ui/":        "/ui/",
		"/\\evil.example":           "/ui/",
		"\\\\evil.example":          "/ui/",
		"/ui/../v2/_catalog":        "/ui/",
		"/ui/%2e%2e/v2/":            "/ui/",
		"/v2/_catalog":              "/ui/",
		"javascript:alert(1)":       "/ui/",
		"/ui/login?next=/ui/":       "/ui/",
		"/ui/logout":                "/ui/",
		"/ui/\r\nSet-Cookie: x=y":   "/ui/",
		"http:/ui/":                 "/ui/",
		"/ui//evil.example":         "/ui/",
		"/ui/repo/a%2Fb/-/delete":   "/ui/repo/a%2Fb/-/delete",
		"%2Fui%2Frepo":              "/ui/",
		"/ui/%2F%2Fevil.example":    "/ui/%2F%2Fevil.example",
	}
	for in, want := range tests {
		assert.Equal(t, want, safeNext(in), "%q", in)
	}
}

func TestHostAllowed(t *testing.T) {
	h := &Handler{cfg: Config{Hosts: []string{"registry.local", "My-Box."}}}
	for host, want := range map[string]bool{
		"localhost:5001":         true,
		"LOCALHOST":              true,
		"app.localhost:5001":     true,
		"127.0.0.1:5001":         true,
		"[::1]:5001":             true,
		"192.168.1.10:5001":      true,
		"registry.local:5000":    true,
		"my-box:5001":            true,
		"evil.example:5001":      false,
		"localhost.evil.example": false,
		"":                       false,
	} {
		assert.Equal(t, want, h.hostAllowed(host), host)
	}
}

func TestValidNames(t *testing.T) {
	assert.True(t, validRepository("a/b-c/d_e.f"))
	assert.False(t, validRepository("a/-/b"), "a '-' component would collide with the page separator")
	assert.False(t, validRepository("A"))
	assert.False(t, validRepository("a//b"))
	assert.True(t, validTag("v1.2.3-rc_1"))
	assert.False(t, validTag(".hidden"))
	assert.True(t, validDigest("sha256:"+repeat("0", 64)))
	assert.False(t, validDigest("sha256:"+repeat("0", 63)))
}
