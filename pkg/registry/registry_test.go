package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// startRegistry runs a registry on a free loopback port with a temp data dir.
func startRegistry(t testing.TB, dataDir string) *Registry {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	r := New(Options{Addr: "127.0.0.1:0", DataDir: dataDir, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, r.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = r.Stop(ctx)
	})
	return r
}

func ref(t testing.TB, r *Registry, repo string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(r.Addr()+"/"+repo, name.Insecure)
	require.NoError(t, err)
	return ref
}

func TestHealthEndpoints(t *testing.T) {
	r := startRegistry(t, "")
	for _, path := range []string{"/healthz", "/readyz"} {
		t.Run(path, func(t *testing.T) {
			resp, err := http.Get("http://" + r.Addr() + path)
			require.NoError(t, err)
			defer resp.Body.Close()
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			var rep HealthReport
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&rep))
			assert.Equal(t, "ok", rep.Status)
		})
	}
	require.NoError(t, r.Health(context.Background()))
}

func TestReadyzReportsUnwritableStorage(t *testing.T) {
	dir := t.TempDir()
	r := startRegistry(t, dir)
	// Replace the metadata dir with a file: every write into it now fails,
	// whatever our privileges (the tests may run as root, which ignores modes).
	meta := filepath.Join(dir, metaDir)
	require.NoError(t, os.RemoveAll(meta))
	require.NoError(t, os.WriteFile(meta, []byte("x"), 0o600))

	resp, err := http.Get("http://" + r.Addr() + "/readyz")
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	var rep HealthReport
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&rep))
	assert.Equal(t, "unavailable", rep.Status)
	assert.Contains(t, rep.Checks["storage"], "not writable")
	assert.NotContains(t, rep.Checks["storage"], dir, "an anonymous probe learns no machine path")
	assert.Error(t, r.Health(context.Background()))

	// Liveness is about the process, not storage.
	live, err := http.Get("http://" + r.Addr() + "/healthz")
	require.NoError(t, err)
	live.Body.Close()
	assert.Equal(t, http.StatusOK, live.StatusCode)
}

func TestHealthBeforeStart(t *testing.T) {
	r := New(Options{Addr: "127.0.0.1:0", DataDir: t.TempDir()})
	assert.Error(t, r.Health(context.Background()))
	assert.NoError(t, r.Stop(context.Background()), "stop before start is a no-op")
}

func TestStartErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()

	file := filepath.Join(t.TempDir(), "a-file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))

	tests := []struct {
		name    string
		opts    Options
		check   func(t *testing.T, err error)
		nothing string // a path that must not exist afterwards
	}{
		{
			name: "port in use",
			opts: Options{Addr: busy.Addr().String(), DataDir: filepath.Join(t.TempDir(), "data")},
			check: func(t *testing.T, err error) {
				var le *ListenError
				require.ErrorAs(t, err, &le)
				assert.True(t, le.InUse)
				assert.Contains(t, err.Error(), "already in use")
				assert.NotContains(t, err.Error(), "--addr", "the CLI names its flags")
			},
		},
		{
			name: "data dir under a file",
			opts: Options{Addr: "127.0.0.1:0", DataDir: filepath.Join(file, "data")},
			check: func(t *testing.T, err error) {
				var de *DataDirError
				require.ErrorAs(t, err, &de)
				assert.Contains(t, err.Error(), "is not usable")
				assert.NotContains(t, err.Error(), "--data-dir", "the CLI names its flags")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := New(tt.opts)
			err := r.Start(context.Background())
			require.Error(t, err)
			tt.check(t, err)
			_, statErr := os.Stat(tt.opts.DataDir)
			assert.Error(t, statErr, "nothing may be written on a failed start")
		})
	}
}

func TestListenerClosedAfterFailedStart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	r := New(Options{Listener: ln, DataDir: filepath.Join(file, "x")})
	require.Error(t, r.Start(context.Background()))
	// The port is free again.
	ln2, err := net.Listen("tcp", ln.Addr().String())
	require.NoError(t, err)
	ln2.Close()
}

// TestPersistence pushes images, stops the registry, starts a new one on the same
// data dir and checks every manifest and blob is served with identical digests.
func TestPersistence(t *testing.T) {
	dir := t.TempDir()
	r1 := New(Options{Addr: "127.0.0.1:0", DataDir: dir, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, r1.Start(context.Background()))

	type pushed struct {
		repo   string
		digest v1.Hash
		blobs  []v1.Hash
	}
	var all []pushed
	for i := range 3 {
		img, err := random.Image(2048, 3)
		require.NoError(t, err)
		repo := fmt.Sprintf("persist/app%d:v1", i)
		require.NoError(t, remote.Write(ref(t, r1, repo), img))
		d, err := img.Digest()
		require.NoError(t, err)
		p := pushed{repo: repo, digest: d}
		layers, err := img.Layers()
		require.NoError(t, err)
		for _, l := range layers {
			ld, err := l.Digest()
			require.NoError(t, err)
			p.blobs = append(p.blobs, ld)
		}
		cfgName, err := img.ConfigName()
		require.NoError(t, err)
		p.blobs = append(p.blobs, cfgName)
		all = append(all, p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, r1.Stop(ctx))

	r2 := startRegistry(t, dir)
	for _, p := range all {
		desc, err := remote.Get(ref(t, r2, p.repo))
		require.NoError(t, err, p.repo)
		assert.Equal(t, p.digest, desc.Digest, p.repo)
		img, err := desc.Image()
		require.NoError(t, err)
		got, err := img.Digest()
		require.NoError(t, err)
		assert.Equal(t, p.digest, got)
		repo := strings.SplitN(p.repo, ":", 2)[0]
		for _, b := range p.blobs {
			l, err := remote.Layer(ref(t, r2, repo+"@"+b.String()).Context().Digest(b.String()))
			require.NoError(t, err)
			rc, err := l.Compressed() // verifies the digest while reading
			require.NoError(t, err)
			_, err = io.Copy(io.Discard, rc)
			require.NoError(t, err, "blob %s of %s", b, repo)
			require.NoError(t, rc.Close())
		}
	}
	// The upload secret survives restarts too (uploads can resume after a restart).
	secret, err := os.ReadFile(filepath.Join(dir, metaDir, "http-secret"))
	require.NoError(t, err)
	info, err := os.Stat(filepath.Join(dir, metaDir, "http-secret"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	again, err := prepareDataDir(dir)
	require.NoError(t, err)
	assert.Equal(t, string(secret), again)
}

// slowBody yields n bytes slowly, so a request is in flight when Stop is called.
// started is closed once 8 KiB have been read: more than the client transport's
// 4 KiB write buffer, so headers and body have reached the server by then and the
// connection is active (not idle) from the server's point of view.
type slowBody struct {
	n       int
	read    int
	started chan struct{}
}

func (s *slowBody) Read(p []byte) (int, error) {
	if s.n == 0 {
		return 0, io.EOF
	}
	if s.read >= 8<<10 && s.started != nil {
		close(s.started)
		s.started = nil
	}
	time.Sleep(20 * time.Millisecond)
	k := min(len(p), s.n, 1024)
	for i := range k {
		p[i] = 'a'
	}
	s.n -= k
	s.read += k
	return k, nil
}

func startUpload(t *testing.T, r *Registry) string {
	t.Helper()
	resp, err := http.Post("http://"+r.Addr()+"/v2/shutdown/test/blobs/uploads/", "", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	loc := resp.Header.Get("Location")
	if strings.HasPrefix(loc, "/") {
		loc = "http://" + r.Addr() + loc
	}
	return loc
}

func TestGracefulShutdown(t *testing.T) {
	tests := []struct {
		name        string
		timeout     time.Duration
		wantStopErr bool
	}{
		{name: "in-flight request finishes", timeout: 10 * time.Second},
		{name: "timeout closes connections", timeout: 50 * time.Millisecond, wantStopErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := New(Options{Addr: "127.0.0.1:0", DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
			require.NoError(t, r.Start(context.Background()))
			loc := startUpload(t, r)

			// 32 KiB at 1 KiB per 20 ms: ~640 ms in flight, Stop comes after ~160 ms.
			started := make(chan struct{})
			body := &slowBody{n: 32 << 10, started: started}
			req, err := http.NewRequest(http.MethodPatch, loc, body)
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/octet-stream")
			type result struct {
				code int
				err  error
			}
			done := make(chan result, 1)
			go func() {
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					done <- result{err: err}
					return
				}
				resp.Body.Close()
				done <- result{code: resp.StatusCode}
			}()
			<-started

			ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
			defer cancel()
			stopErr := r.Stop(ctx)
			res := <-done
			if tt.wantStopErr {
				assert.Error(t, stopErr)
				assert.Error(t, res.err, "the in-flight request is cut off")
			} else {
				assert.NoError(t, stopErr)
				require.NoError(t, res.err)
				assert.Equal(t, http.StatusAccepted, res.code, "the in-flight PATCH completed")
			}
			// New connections are refused after Stop.
			_, err = http.Get("http://" + listenerAddr(t, r) + "/healthz")
			assert.Error(t, err)
		})
	}
}

func listenerAddr(t *testing.T, r *Registry) string {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	require.NotNil(t, r.ln)
	return r.ln.Addr().String()
}

func TestCatalogAndTagsNotEmpty(t *testing.T) {
	// Guards the defaults configuration.Parse would set: without them the catalog is [].
	r := startRegistry(t, "")
	img, err := random.Image(100, 1)
	require.NoError(t, err)
	for _, tag := range []string{"v1", "index", "latest"} {
		require.NoError(t, remote.Write(ref(t, r, "cat/one:"+tag), img))
	}
	reg, err := name.NewRegistry(r.Addr(), name.Insecure)
	require.NoError(t, err)
	repos, err := remote.Catalog(context.Background(), reg)
	require.NoError(t, err)
	assert.Equal(t, []string{"cat/one"}, repos)
	tags, err := remote.List(ref(t, r, "cat/one").Context())
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"index", "latest", "v1"}, tags)
}

func TestPurgeInterval(t *testing.T) {
	tests := []struct{ age, want time.Duration }{
		{168 * time.Hour, 24 * time.Hour},
		{7 * time.Hour, time.Hour},
		{time.Minute, time.Minute},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, purgeInterval(tt.age), tt.age.String())
	}
}

// TestUploadResumesAcrossRestart: a blob upload interrupted by a registry restart
// continues where it stopped, because the upload secret is kept in the data dir.
func TestUploadResumesAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	blob := bytes.Repeat([]byte("idpbuilder"), 10_000) // 100 kB
	sum := sha256.Sum256(blob)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	half := len(blob) / 2

	r1 := New(Options{Addr: "127.0.0.1:0", DataDir: dir, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, r1.Start(context.Background()))
	loc := startUpload(t, r1)
	req, _ := http.NewRequest(http.MethodPatch, loc, bytes.NewReader(blob[:half]))
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Content-Range", fmt.Sprintf("0-%d", half-1))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	next := resp.Header.Get("Location")
	require.NoError(t, r1.Stop(context.Background()))

	r2 := startRegistry(t, dir)
	// Same path and state token, new process (and new port).
	u, err := url.Parse(next)
	require.NoError(t, err)
	u.Scheme, u.Host = "http", r2.Addr()

	status, err := http.Get(u.String())
	require.NoError(t, err)
	status.Body.Close()
	require.Equal(t, http.StatusNoContent, status.StatusCode, "upload status after restart")
	assert.Equal(t, fmt.Sprintf("0-%d", half-1), status.Header.Get("Range"))

	req, _ = http.NewRequest(http.MethodPatch, u.String(), bytes.NewReader(blob[half:]))
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Content-Range", fmt.Sprintf("%d-%d", half, len(blob)-1))
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)

	put, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	put.Scheme, put.Host = "http", r2.Addr()
	q := put.Query()
	q.Set("digest", digest)
	put.RawQuery = q.Encode()
	req, _ = http.NewRequest(http.MethodPut, put.String(), nil)
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)

	got, err := http.Get("http://" + r2.Addr() + "/v2/shutdown/test/blobs/" + digest)
	require.NoError(t, err)
	defer got.Body.Close()
	body, err := io.ReadAll(got.Body)
	require.NoError(t, err)
	assert.Equal(t, blob, body)
}

// TestDigestMismatchStoresNothing: a blob whose bytes do not match the digest the
// client claims is refused, and no blob is stored under that digest.
func TestDigestMismatchStoresNothing(t *testing.T) {
	r := startRegistry(t, "")
	loc := startUpload(t, r)
	wrong := "sha256:" + strings.Repeat("0", 64)
	u, err := url.Parse(loc)
	require.NoError(t, err)
	q := u.Query()
	q.Set("digest", wrong)
	u.RawQuery = q.Encode()
	req, _ := http.NewRequest(http.MethodPut, u.String(), strings.NewReader("not the content"))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Contains(t, string(body), "DIGEST_INVALID")

	head, err := http.Head("http://" + r.Addr() + "/v2/shutdown/test/blobs/" + wrong)
	require.NoError(t, err)
	head.Body.Close()
	assert.Equal(t, http.StatusNotFound, head.StatusCode)
}

// TestStopClosesUnusedConnections: a client connection that never sent a request
// (Go clients leave these in their pools) must not hold up Stop. Without the
// tracker, http.Server.Shutdown waits 5 s for it, past this test's 3 s deadline.
func TestStopClosesUnusedConnections(t *testing.T) {
	r := New(Options{Addr: "127.0.0.1:0", DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, r.Start(context.Background()))
	c, err := net.Dial("tcp", r.Addr())
	require.NoError(t, err)
	defer c.Close()
	// Make sure the server has accepted it (StateNew) before stopping.
	resp, err := http.Get("http://" + r.Addr() + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	require.NoError(t, r.Stop(ctx))
	// The server closed the unused connection.
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = c.Read(make([]byte, 1))
	assert.ErrorIs(t, err, io.EOF)
}

func TestExtraAddrs(t *testing.T) {
	free, err := net.Listen("tcp", "127.0.0.2:0")
	require.NoError(t, err)
	extra := free.Addr().String()
	free.Close()
	r := New(Options{Addr: "127.0.0.1:0", ExtraAddrs: []string{extra}, DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, r.Start(context.Background()))
	defer r.Stop(context.Background())
	for _, a := range []string{r.Addr(), extra} {
		resp, err := http.Get("http://" + a + "/v2/")
		require.NoError(t, err, a)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, a)
	}
	// A busy extra address fails the whole start and releases the main port.
	r2 := New(Options{Addr: "127.0.0.1:0", ExtraAddrs: []string{extra}, DataDir: t.TempDir()})
	var le *ListenError
	require.ErrorAs(t, r2.Start(context.Background()), &le)
	assert.True(t, le.InUse)
}
