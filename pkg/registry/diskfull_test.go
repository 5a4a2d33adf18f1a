package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// mountTmpfs mounts a tmpfs of size bytes for the test: a real filesystem
// that fills up. Mounting needs root (CI runs the tests as root).
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs to fill needs root; run the tests as root (CI does)")
	}
	dir := t.TempDir()
	require.NoError(t, syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+strconv.FormatInt(size, 10)))
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v (a file left open keeps it busy)", dir, err)
			_ = syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
	return dir
}

func freeBytes(t testing.TB, dir string) int64 {
	t.Helper()
	_, free, err := statfs(dir)
	require.NoError(t, err)
	return free
}

// fill writes a file into dir until the filesystem has at most leave bytes
// free (0: until it is full), and returns its path.
func fill(t testing.TB, dir string, leave int64) string {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	require.NoError(t, err)
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		free := freeBytes(t, dir)
		if free <= leave {
			return p
		}
		n := min(int64(len(chunk)), free-leave)
		if _, err := f.Write(chunk[:n]); err != nil {
			require.ErrorIs(t, err, syscall.ENOSPC)
			return p
		}
	}
}

type readyReport struct {
	code int
	rep  HealthReport
}

func (s *served) ready() readyReport {
	s.t.Helper()
	resp, body := s.do(http.MethodGet, "/readyz", nil, 0)
	var rep HealthReport
	require.NoError(s.t, json.Unmarshal(body, &rep), string(body))
	return readyReport{resp.StatusCode, rep}
}

// streamUpload starts an upload in repo and PATCHes n bytes of unknown length.
func (s *served) streamUpload(repo string, n int64) (*http.Response, []byte) {
	s.t.Helper()
	loc := s.startUpload(repo)
	return s.do(http.MethodPatch, loc, io.LimitReader(zeros{}, n), -1)
}

// requireDiskFull checks an answer is 507 DENIED saying what is free, and
// names no path of the machine.
func requireDiskFull(t testing.TB, resp *http.Response, body []byte, dir string, parts ...string) {
	t.Helper()
	require.Equal(t, http.StatusInsufficientStorage, resp.StatusCode, string(body))
	code, msg := ociErrorOf(t, body)
	assert.Equal(t, "DENIED", code)
	assert.Contains(t, msg, "the registry's disk is full: ")
	assert.Contains(t, msg, " free")
	for _, p := range parts {
		assert.Contains(t, msg, p)
	}
	assert.NotContains(t, string(body), dir)
	assert.NotContains(t, string(body), "no space left on device", "distribution's error is replaced")
}

// deletedFilesOpen lists the files under dir this process holds open though
// they were deleted: their space does not come back until they are closed.
func deletedFilesOpen(t testing.TB, dir string) []string {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	var open []string
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.HasPrefix(target, dir+"/") && strings.HasSuffix(target, " (deleted)") {
			open = append(open, target)
		}
	}
	return open
}

// TestDiskFullUploadStopsShortOfFull: an upload that does not fit is cut a
// reserve short of a full disk, answered 507, and deleted at once; the disk
// is reported full while that write would still not fit (for ten minutes);
// earlier images are intact, and tag-only pushes and smaller pushes go on
// working.
func TestDiskFullUploadStopsShortOfFull(t *testing.T) {
	dir := mountTmpfs(t, 16<<20)
	s := serve(t, dir, Options{})
	small := quotaImage(t, 1<<20, 1)
	require.NoError(t, s.push("app:small", small))
	require.Equal(t, http.StatusOK, s.ready().code)

	free := freeBytes(t, dir)
	resp, body := s.streamUpload("app", 32<<20)
	requireDiskFull(t, resp, body, dir, "(uploads leave 1 MiB of it for manifests and tags)", "this write needs at least ")
	assert.Empty(t, uploadsLeft(t, dir), "the cut upload is deleted")
	assert.Equal(t, free, freeBytes(t, dir), "its space is back")
	assert.Empty(t, deletedFilesOpen(t, dir))

	rr := s.ready()
	assert.Equal(t, http.StatusServiceUnavailable, rr.code)
	assert.Equal(t, "ok", rr.rep.Checks["storage"])
	assert.Contains(t, rr.rep.Checks["disk"], "full: ")
	assert.Contains(t, rr.rep.Checks["disk"], "the last refused write needed at least ")
	assert.NotContains(t, rr.rep.Checks["disk"], dir)
	st, err := s.reg.QuotaStatus(context.Background())
	require.NoError(t, err)
	assert.True(t, st.Disk.Full)
	assert.Equal(t, int64(1<<20), st.Disk.Reserve)

	// The earlier image is intact.
	got, err := remote.Image(s.ref("app:small"))
	require.NoError(t, err)
	require.NoError(t, validate.Image(got))

	// A tag-only push works.
	require.NoError(t, remote.Tag(s.ref("app:again").Context().Tag("again"), got))

	// A known length that cannot fit is refused before a byte is written.
	loc := s.startUpload("app")
	resp, body = s.do(http.MethodPatch, loc, io.LimitReader(zeros{}, 20<<20), 20<<20)
	requireDiskFull(t, resp, body, dir, "this write needs 20 MiB")
	assert.Empty(t, uploadsLeft(t, dir))

	// A push that fits works; the disk still counts as full for the write
	// that did not fit, until that much would fit or the refusal is old.
	require.NoError(t, s.push("app:other", quotaImage(t, 2<<20, 1)))
	assert.Equal(t, http.StatusServiceUnavailable, s.ready().code)
	s.reg.disk.mu.Lock()
	s.reg.disk.refusedAt = s.reg.disk.refusedAt.Add(-diskRefusalMemory - time.Second)
	s.reg.disk.mu.Unlock()
	assert.Equal(t, http.StatusOK, s.ready().code)
}

// TestDiskFullReserve: with the disk filled by something else to under the
// reserve, uploads cannot start, manifests still can, and everything works
// again as soon as space comes back.
func TestDiskFullReserve(t *testing.T) {
	dir := mountTmpfs(t, 16<<20)
	s := serve(t, dir, Options{})
	img := quotaImage(t, 512<<10, 1)
	require.NoError(t, s.push("app:v1", img))

	filler := fill(t, dir, 512<<10)
	rr := s.ready()
	assert.Equal(t, http.StatusServiceUnavailable, rr.code)
	assert.Contains(t, rr.rep.Checks["disk"], "full: ")

	resp, body := s.do(http.MethodPost, "/v2/app/blobs/uploads/", nil, 0)
	requireDiskFull(t, resp, body, dir, "less than the 1 MiB uploads leave for manifests and tags")
	assert.Empty(t, uploadsLeft(t, dir))
	err := s.push("app:v2", quotaImage(t, 64<<10, 1))
	var terr *transport.Error
	require.True(t, errors.As(err, &terr), "want a registry error, got %v", err)
	assert.Equal(t, http.StatusInsufficientStorage, terr.StatusCode)
	assert.Contains(t, err.Error(), "DENIED: the registry's disk is full")

	// Tag-only pushes may use the reserve.
	got, err := remote.Image(s.ref("app:v1"))
	require.NoError(t, err)
	require.NoError(t, remote.Tag(s.ref("app:v1").Context().Tag("copy"), got))

	require.NoError(t, os.Remove(filler))
	assert.Equal(t, http.StatusOK, s.ready().code)
	require.NoError(t, s.push("app:v2", quotaImage(t, 64<<10, 1)))
}

// TestDiskFullENOSPC: writes that reach a real ENOSPC inside distribution
// (the free space the disk guard reads can be wrong: another writer filled
// the disk between two reads, or the filesystem reports space a user quota
// does not grant) are still answered 507 without a path, the upload is
// deleted, and the files distribution left open on the full disk are closed,
// so the space really comes back.
func TestDiskFullENOSPC(t *testing.T) {
	dir := mountTmpfs(t, 16<<20)
	s := serve(t, dir, Options{})
	img := quotaImage(t, 256<<10, 1)
	require.NoError(t, s.push("app:v1", img))
	cfg := []byte(`{"architecture":"amd64","os":"linux"}`)
	resp, body := s.putBlob("app", cfg)
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	free := freeBytes(t, dir)

	// The guard is told there is plenty of room, so distribution writes
	// until the filesystem refuses.
	s.reg.disk.statfs = func(string) (int64, int64, error) { return 1 << 40, 1 << 40, nil }
	resp, body = s.streamUpload("app", 32<<20)
	requireDiskFull(t, resp, body, dir, "this write needs at least ")
	assert.Empty(t, uploadsLeft(t, dir))
	waitFree(t, dir, free)
	assert.Empty(t, deletedFilesOpen(t, dir))

	// A manifest with no room at all for it.
	manifest := image(v1Descriptor(cfg), "", nil, map[string]string{"pad": strings.Repeat("p", 9000)})
	filler := fill(t, dir, 0)
	resp, body = s.do(http.MethodPut, "/v2/app/manifests/nospace", io.MultiReader(bytes.NewReader(manifest)), -1)
	requireDiskFull(t, resp, body, dir)

	s.reg.disk.statfs = statfs
	rr := s.ready()
	assert.Equal(t, http.StatusServiceUnavailable, rr.code, "%+v", rr.rep)
	require.NoError(t, os.Remove(filler))
	assert.Equal(t, http.StatusOK, s.ready().code)
	got, err := remote.Image(s.ref("app:v1"))
	require.NoError(t, err)
	require.NoError(t, validate.Image(got))
	require.NoError(t, remote.Tag(s.ref("app:v1").Context().Tag("again"), got))
	resp, body = s.do(http.MethodPut, "/v2/app/manifests/nospace", bytes.NewReader(manifest), int64(len(manifest)))
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	require.NoError(t, s.push("app:v2", quotaImage(t, 1<<20, 1)))
	assert.Empty(t, leftoverTempFiles(t, dir))
}

// waitFree waits until dir's filesystem has want bytes free again (a file
// closed by the Go runtime's cleanup comes back when that cleanup has run).
func waitFree(t testing.TB, dir string, want int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for freeBytes(t, dir) < want {
		if time.Now().After(deadline) {
			t.Fatalf("space not returned: %d bytes free, want %d; open deleted files: %v", freeBytes(t, dir), want, deletedFilesOpen(t, dir))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// leftoverTempFiles lists the temporary files of distribution's atomic
// writes that are still there.
func leftoverTempFiles(t testing.TB, dir string) []string {
	t.Helper()
	var left []string
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasSuffix(p, ".tmp") {
			left = append(left, p)
		}
		return nil
	}))
	return left
}
