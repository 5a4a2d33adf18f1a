package atomicfile

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	tests := []struct {
		name string
		data string
		perm os.FileMode
	}{
		{name: "creates", data: "one", perm: 0o600},
		{name: "replaces with another mode", data: "two, longer", perm: 0o644},
		{name: "empty content", data: "", perm: 0o600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.NoError(t, Write(path, []byte(tt.data), tt.perm))
			got, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.Equal(t, tt.data, string(got))
			info, err := os.Stat(path)
			require.NoError(t, err)
			assert.Equal(t, tt.perm, info.Mode().Perm())
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			assert.Len(t, entries, 1, "no temporary file is left behind")
		})
	}
}

func TestWriteFails(t *testing.T) {
	dir := t.TempDir()
	// A missing directory: nothing to write into.
	assert.Error(t, Write(filepath.Join(dir, "missing", "f"), []byte("x"), 0o600))
	// A directory in the way of the rename: the old entry stays, no temporary file is left.
	target := filepath.Join(dir, "taken")
	require.NoError(t, os.MkdirAll(filepath.Join(target, "child"), 0o700))
	assert.Error(t, Write(target, []byte("x"), 0o600))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1)
	assert.Error(t, syncDir(filepath.Join(dir, "missing")))
}

func TestUnsupportedSync(t *testing.T) {
	assert.True(t, isUnsupported(&os.PathError{Op: "sync", Path: "/d", Err: syscall.EINVAL}))
	assert.True(t, isUnsupported(syscall.ENOTSUP))
	assert.False(t, isUnsupported(syscall.EIO))
}
