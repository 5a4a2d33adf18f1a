package registryruntime

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// staticBinary is a tiny static Go program for linux/GOARCH.
func staticBinary(t *testing.T) string { return tinyBinary(t) }

// buildStatic builds a tiny static Go program for linux/GOARCH in dir.
func buildStatic(dir string) (string, error) {
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\nfunc main() {}\n"), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module tiny\n\ngo 1.22\n"), 0o644); err != nil {
		return "", err
	}
	out := filepath.Join(dir, "tiny")
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build tiny binary: %w\n%s", err, b)
	}
	return out, nil
}

func TestCheckBinary(t *testing.T) {
	static := staticBinary(t)
	text := filepath.Join(t.TempDir(), "script.sh")
	require.NoError(t, os.WriteFile(text, []byte("#!/bin/sh\n"), 0o755))
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	tests := []struct {
		name, path, arch, wantErr string
	}{
		{name: "static for this arch", path: static, arch: runtime.GOARCH},
		{name: "wrong arch", path: static, arch: other, wantErr: "the engine runs " + other},
		{name: "not ELF", path: text, arch: runtime.GOARCH, wantErr: "not a Linux (ELF) executable"},
		{name: "dynamically linked", path: "/bin/sh", arch: runtime.GOARCH, wantErr: "dynamically linked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckBinary(tt.path, tt.arch)
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.True(t, errors.Is(err, ErrNoLinuxBinary))
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

func TestBuildImage(t *testing.T) {
	bin := staticBinary(t)
	img, err := BuildImage(bin, runtime.GOARCH)
	require.NoError(t, err)
	assert.Regexp(t, `^idpbuilder\.local/registry:[0-9a-f]{12}$`, img.Tag)
	assert.Equal(t, img.Tag[len(img.Tag)-12:], img.Digest[:12], "the tag carries the binary digest")

	cf, err := img.Image.ConfigFile()
	require.NoError(t, err)
	assert.Equal(t, []string{"/idpbuilder", "registry", "serve"}, cf.Config.Entrypoint)
	assert.Equal(t, []string{"--addr", "0.0.0.0:5000", "--data-dir", "/var/lib/registry"}, cf.Config.Cmd)
	assert.Equal(t, img.Digest, cf.Config.Labels[LabelBinaryDigest])
	assert.Equal(t, bin, cf.Config.Labels[LabelBinaryPath], "images are told apart by the binary that made them")
	assert.Equal(t, bin, img.Path)
	assert.Equal(t, runtime.GOARCH, cf.Architecture)

	layers, err := img.Image.Layers()
	require.NoError(t, err)
	require.Len(t, layers, 1, "the binary is the only layer")
	rc, err := layers[0].Uncompressed()
	require.NoError(t, err)
	defer rc.Close()
	tr := tar.NewReader(rc)
	files := map[string]int64{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		files[h.Name] = h.Mode
	}
	assert.Equal(t, int64(0o755), files["idpbuilder"])
	assert.Contains(t, files, "var/lib/registry/")
	assert.Contains(t, files, "tmp/")

	// Same binary, same image: rebuilding is reproducible.
	again, err := BuildImage(bin, runtime.GOARCH)
	require.NoError(t, err)
	d1, _ := img.Image.Digest()
	d2, _ := again.Image.Digest()
	assert.Equal(t, d1, d2)
}
