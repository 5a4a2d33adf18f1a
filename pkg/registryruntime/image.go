// Package registryruntime runs the registry for a cluster: as a container built from
// the idpbuilder binary itself (no registry image is ever pulled), or as a detached
// host process. It knows docker, not Kubernetes.
package registryruntime

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Paths and ports inside the registry container.
const (
	containerBinary  = "/idpbuilder"
	containerDataDir = "/var/lib/registry"
	ContainerPort    = 5000
	// ImageRepo names registry images; ".local" can never resolve to a real registry,
	// so docker never tries to pull it.
	ImageRepo = "idpbuilder.local/registry"
	// LabelBinaryDigest carries the sha256 of the binary the image was built from.
	LabelBinaryDigest = "io.idpbuilder.binary-digest"
	// LabelBinaryPath carries the absolute path of that binary: images of the
	// same path are this installation's (earlier builds of it), others belong
	// to other idpbuilder binaries sharing the engine (a developer's build and a
	// CI run) and are never removed by this one.
	LabelBinaryPath = "io.idpbuilder.binary-path"
)

// ErrNoLinuxBinary means the binary cannot run in a Linux container on the engine:
// not Linux/ELF, another architecture, or dynamically linked.
var ErrNoLinuxBinary = errors.New("no static Linux idpbuilder binary for the Docker engine")

var elfArch = map[elf.Machine]string{
	elf.EM_X86_64:  "amd64",
	elf.EM_AARCH64: "arm64",
	elf.EM_386:     "386",
	elf.EM_ARM:     "arm",
	elf.EM_PPC64:   "ppc64le",
	elf.EM_S390:    "s390x",
	elf.EM_RISCV:   "riscv64",
}

// CheckBinary tells whether the file at path can be the whole of a container
// image for an engine of architecture arch.
func CheckBinary(path, arch string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%w: %s is not a Linux (ELF) executable: %v", ErrNoLinuxBinary, path, err)
	}
	defer f.Close()
	if got := elfArch[f.Machine]; got != arch {
		return fmt.Errorf("%w: %s is built for %s, the engine runs %s", ErrNoLinuxBinary, path, orUnknown(got), arch)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%w: %s is dynamically linked (rebuild it static: CGO_ENABLED=0 go build, or `make build`)", ErrNoLinuxBinary, path)
		}
	}
	return nil
}

func orUnknown(s string) string {
	if s == "" {
		return "another architecture"
	}
	return s
}

// Image is a registry image built from a binary.
type Image struct {
	Image  v1.Image
	Tag    string // e.g. idpbuilder.local/registry:3f2a9c0d1e4b
	Digest string // sha256 of the binary, hex
	Path   string // the binary's absolute path
}

// BuildImage makes an image whose only layer is the binary at path, with
// `idpbuilder registry serve` as its entrypoint. The tag carries the binary's
// digest, so a new binary means a new image (and a replaced container).
func BuildImage(path, arch string) (*Image, error) {
	if err := CheckBinary(path, arch); err != nil {
		return nil, err
	}
	path, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	bin, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	sum := sha256.Sum256(bin)
	digest := hex.EncodeToString(sum[:])

	layerTar, err := binaryLayer(bin)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("make layer: %w", err)
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		return nil, fmt.Errorf("make image: %w", err)
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	cf.Config.Entrypoint = []string{containerBinary, "registry", "serve"}
	// The container's own arguments (TLS, auth) come from `docker run`.
	cf.Config.Cmd = []string{"--addr", fmt.Sprintf("0.0.0.0:%d", ContainerPort), "--data-dir", containerDataDir}
	cf.Config.Env = []string{"HOME=/tmp"}
	cf.Config.ExposedPorts = map[string]struct{}{fmt.Sprintf("%d/tcp", ContainerPort): {}}
	cf.Config.Labels = map[string]string{LabelBinaryDigest: digest, LabelBinaryPath: path}
	cf.Config.StopSignal = "SIGTERM"
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, err
	}
	return &Image{Image: img, Tag: ImageRepo + ":" + digest[:12], Digest: digest, Path: path}, nil
}

// binaryLayer is a tar with the binary and the directories it needs.
func binaryLayer(bin []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	entries := []struct {
		hdr  tar.Header
		data []byte
	}{
		{hdr: tar.Header{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777}},
		{hdr: tar.Header{Name: "var/", Typeflag: tar.TypeDir, Mode: 0o755}},
		{hdr: tar.Header{Name: "var/lib/", Typeflag: tar.TypeDir, Mode: 0o755}},
		{hdr: tar.Header{Name: "var/lib/registry/", Typeflag: tar.TypeDir, Mode: 0o777}},
		{hdr: tar.Header{Name: containerBinary[1:], Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bin))}, data: bin},
	}
	for _, e := range entries {
		e.hdr.ModTime = epoch
		if err := tw.WriteHeader(&e.hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
