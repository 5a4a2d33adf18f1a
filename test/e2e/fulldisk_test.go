//go:build e2e

package e2e

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// TestFullDisk runs a real `registry serve` on a 16 MiB tmpfs that something
// else has mostly filled. A push too big for what is left is answered 507
// DENIED saying how much is free; what it sent is deleted at once and its
// space is back (the server holds no deleted file open); /readyz says the
// disk is full; the earlier image is intact and a tag-only push works; once
// the other files are removed, the same push passes.
func TestFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root; CI runs the e2e tests as root")
	}
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=16m"); err != nil {
		t.Fatalf("mount a tmpfs on %s: %v", mnt, err)
	}
	// Registered before the server starts, so it runs after the server stops.
	t.Cleanup(func() {
		if err := syscall.Unmount(mnt, 0); err != nil {
			t.Errorf("unmount %s: %v (something still holds a file open there)", mnt, err)
			_ = syscall.Unmount(mnt, syscall.MNT_DETACH)
		}
	})
	dataDir := filepath.Join(mnt, "data")
	srv := startServer(t, dataDir)

	push(t, srv, "app:small", randomImage(t, 2<<20))
	filler := fillTo(t, mnt, 6<<20)
	free := freeSpace(t, mnt)
	t.Logf("%d bytes free before the push", free)

	big := randomImage(t, 10<<20)
	err := crane.Push(big, srv.Addr+"/app:big", crane.Insecure)
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != http.StatusInsufficientStorage || len(terr.Errors) != 1 || terr.Errors[0].Code != "DENIED" {
		t.Fatalf("want 507 DENIED, got %v", err)
	}
	msg := terr.Errors[0].Message
	for _, want := range []string{"the registry's disk is full: ", " free", "this write needs "} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, mnt) {
		t.Errorf("message %q names the data dir", msg)
	}
	t.Logf("crane shows: %v", err)

	// What the push sent is gone, and its space is back: only what the
	// registry accepted of it (the small config, if it came first, and
	// uploads the client abandoned) may remain.
	settled(t, dataDir)
	if got := freeSpace(t, mnt); got < free-64<<10 {
		t.Errorf("%d bytes free after the refused push, %d before", got, free)
	}
	if open := deletedFilesOpen(t, srv.cmd.Process.Pid, mnt); len(open) > 0 {
		t.Errorf("the registry holds deleted files open (their space does not come back): %v", open)
	}

	// A body of unknown length, as Docker sends layers, is cut a reserve
	// short of full: the same answer, and the same clean disk.
	resp, body := registryDo(t, http.MethodPost, "http://"+srv.Addr+"/v2/app/blobs/uploads/", "", nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("start an upload: %s %s", resp.Status, body)
	}
	req, err := http.NewRequest(http.MethodPatch, resp.Header.Get("Location"), io.LimitReader(zeroReader{}, 10<<20))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	presp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("PATCH: %v", err)
	}
	pbody, _ := io.ReadAll(presp.Body)
	presp.Body.Close()
	if presp.StatusCode != http.StatusInsufficientStorage || !strings.Contains(string(pbody), `"code":"DENIED"`) ||
		!strings.Contains(string(pbody), "this write needs at least ") {
		t.Errorf("streamed upload on a full disk: %s %s", presp.Status, pbody)
	}
	settled(t, dataDir)
	if got := freeSpace(t, mnt); got < free-64<<10 {
		t.Errorf("%d bytes free after the cut upload, %d before", got, free)
	}
	if open := deletedFilesOpen(t, srv.cmd.Process.Pid, mnt); len(open) > 0 {
		t.Errorf("the registry holds deleted files open: %v", open)
	}
	uploads, _ := os.ReadDir(filepath.Join(dataDir, "docker/registry/v2/repositories/app/_uploads"))
	for _, u := range uploads {
		if strings.Contains(resp.Header.Get("Location"), u.Name()) {
			t.Errorf("the cut upload %s is still there", u.Name())
		}
	}

	ready := readyz(t, srv)
	if ready.code != http.StatusServiceUnavailable || !strings.HasPrefix(ready.checks["disk"], "full: ") {
		t.Errorf("readyz after the refused push: %d %v", ready.code, ready.checks)
	}
	t.Logf("/readyz: %d %v", ready.code, ready.checks)

	// oras shows the refusal too.
	requireTool(t, "oras")
	blob := filepath.Join(t.TempDir(), "big.bin")
	if err := os.WriteFile(blob, make([]byte, 8<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("oras", "push", "--plain-http", srv.Addr+"/app/oras:v1", "big.bin")
	cmd.Env, cmd.Dir = toolEnv(t), filepath.Dir(blob)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "denied: the registry's disk is full: ") {
		t.Errorf("oras push on a full disk: %v\n%s", err, out)
	}
	t.Logf("oras shows:\n%s", out)

	// The earlier image is intact, and a tag-only push works.
	pullValidate(t, srv, "app:small")
	if err := crane.Tag(srv.Addr+"/app:small", "again", crane.Insecure); err != nil {
		t.Fatalf("tag-only push on a full disk: %v", err)
	}
	pullValidate(t, srv, "app:again")

	// Space comes back: writes work again at once.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if ready := readyz(t, srv); ready.code != http.StatusOK {
		t.Errorf("readyz once space is back: %d %v", ready.code, ready.checks)
	}
	push(t, srv, "app:big", big)
	pullValidate(t, srv, "app:big")
	pullValidate(t, srv, "app:small")
}

// fillTo writes a file into dir until its filesystem has about leave bytes
// free, and returns its path.
func fillTo(t testing.TB, dir string, leave int64) string {
	t.Helper()
	p := filepath.Join(dir, "filler")
	free := freeSpace(t, dir)
	if free <= leave {
		t.Fatalf("only %d bytes free, want more than %d", free, leave)
	}
	if err := os.WriteFile(p, make([]byte, free-leave), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func freeSpace(t testing.TB, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// deletedFilesOpen lists the files under dir that process pid holds open
// though they were deleted.
func deletedFilesOpen(t testing.TB, pid int, dir string) []string {
	t.Helper()
	fdDir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	fds, err := os.ReadDir(fdDir)
	if err != nil {
		t.Fatal(err)
	}
	var open []string
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
		if err == nil && strings.HasPrefix(target, dir+"/") && strings.HasSuffix(target, " (deleted)") {
			open = append(open, target)
		}
	}
	return open
}

type readiness struct {
	code   int
	checks map[string]string
}

func readyz(t testing.TB, srv *server) readiness {
	t.Helper()
	resp, body := registryDo(t, http.MethodGet, "http://"+srv.Addr+"/readyz", "", nil)
	var rep struct {
		Checks map[string]string `json:"checks"`
	}
	if err := json.Unmarshal(body, &rep); err != nil {
		t.Fatalf("readyz: %v\n%s", err, body)
	}
	return readiness{resp.StatusCode, rep.Checks}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
