package registry

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fileConn is a server connection that counts the bytes net/http hands to
// the TCP connection's ReadFrom straight from a file: that is the call that
// becomes sendfile(2).
type fileConn struct {
	*net.TCPConn
	fromFile *atomic.Int64
}

func (c fileConn) ReadFrom(src io.Reader) (int64, error) {
	_, isFile := src.(*os.File)
	if lr, ok := src.(*io.LimitedReader); ok {
		_, isFile = lr.R.(*os.File)
	}
	n, err := c.TCPConn.ReadFrom(src)
	if isFile {
		c.fromFile.Add(n)
	}
	return n, err
}

type fileConnListener struct {
	net.Listener
	fromFile *atomic.Int64
}

func (l fileConnListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		return fileConn{TCPConn: tc, fromFile: l.fromFile}, nil
	}
	return c, err
}

// TestBlobDownloadReachesSendfile: through every layer (access log on), a
// blob download and a range of it reach the connection as a file, so the
// kernel copies them; the access log still counts every byte.
func TestBlobDownloadReachesSendfile(t *testing.T) {
	var logBuf bytes.Buffer
	r := New(Options{Addr: "127.0.0.1:0", DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler),
		AccessLog: slog.New(slog.NewJSONHandler(&logBuf, nil)), RateLimit: RateLimit{Disabled: true}})
	require.NoError(t, r.Open(context.Background()))
	t.Cleanup(func() { _ = r.Close() })
	var fromFile atomic.Int64
	srv := httptest.NewUnstartedServer(r.Handler())
	srv.Listener = fileConnListener{Listener: srv.Listener, fromFile: &fromFile}
	srv.Start()
	client := srv.Client()

	blob := make([]byte, 4<<20)
	_, _ = rand.Read(blob)
	d := digest.FromBytes(blob)
	resp, err := client.Post(srv.URL+"/v2/sendfile/blobs/uploads/", "", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	req, _ := http.NewRequest(http.MethodPut, srv.URL+resp.Header.Get("Location")+"&digest="+d.String(), bytes.NewReader(blob))
	if strings.HasPrefix(resp.Header.Get("Location"), "http") {
		req, _ = http.NewRequest(http.MethodPut, resp.Header.Get("Location")+"&digest="+d.String(), bytes.NewReader(blob))
	}
	resp, err = client.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)

	resp, err = client.Get(srv.URL + "/v2/sendfile/blobs/" + d.String())
	require.NoError(t, err)
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.True(t, bytes.Equal(blob, got), "the download is the blob")
	afterFull := fromFile.Load()
	// net/http copies the first 512 bytes itself (for sniffing) before it
	// hands the rest to the connection.
	assert.GreaterOrEqual(t, afterFull, int64(len(blob)-512), "bytes sent from the file by the kernel")

	req, _ = http.NewRequest(http.MethodGet, srv.URL+"/v2/sendfile/blobs/"+d.String(), nil)
	req.Header.Set("Range", "bytes=1048576-3145727")
	resp, err = client.Do(req)
	require.NoError(t, err)
	got, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusPartialContent, resp.StatusCode)
	require.True(t, bytes.Equal(blob[1<<20:3<<20], got), "the range is that part of the blob")
	assert.GreaterOrEqual(t, fromFile.Load()-afterFull, int64(2<<20-512), "range bytes sent from the file by the kernel")

	srv.Close() // waits for the handlers, and so for their access log lines
	var gets []map[string]any
	for line := range strings.Lines(logBuf.String()) {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m))
		if m["method"] == "GET" {
			gets = append(gets, m)
		}
	}
	require.Len(t, gets, 2)
	assert.EqualValues(t, 200, gets[0]["status"])
	assert.EqualValues(t, len(blob), gets[0]["bytes"])
	assert.EqualValues(t, 206, gets[1]["status"])
	assert.EqualValues(t, 2<<20, gets[1]["bytes"])
}

// TestResponseWritersPassReadFrom: every type in this package that wraps an
// http.ResponseWriter also has ReadFrom, or blob downloads through it lose
// sendfile (see readFromThrough). A layer added later (metrics, quotas) is
// held to it here.
func TestResponseWritersPassReadFrom(t *testing.T) {
	fset := token.NewFileSet()
	wrappers := map[string]string{} // type -> file
	readFrom := map[string]bool{}
	files, err := os.ReadDir(".")
	require.NoError(t, err)
	for _, e := range files {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, e.Name(), nil, parser.SkipObjectResolution)
		require.NoError(t, err)
		for _, decl := range f.Decls {
			switch d := decl.(type) {
			case *ast.GenDecl:
				for _, spec := range d.Specs {
					ts, ok := spec.(*ast.TypeSpec)
					if !ok {
						continue
					}
					st, ok := ts.Type.(*ast.StructType)
					if !ok {
						continue
					}
					for _, field := range st.Fields.List {
						if sel, ok := field.Type.(*ast.SelectorExpr); ok && len(field.Names) == 0 && sel.Sel.Name == "ResponseWriter" {
							wrappers[ts.Name.Name] = e.Name()
						}
					}
				}
			case *ast.FuncDecl:
				if d.Recv == nil || d.Name.Name != "ReadFrom" {
					continue
				}
				recv := d.Recv.List[0].Type
				if star, ok := recv.(*ast.StarExpr); ok {
					recv = star.X
				}
				if id, ok := recv.(*ast.Ident); ok {
					readFrom[id.Name] = true
				}
			}
		}
	}
	require.NotEmpty(t, wrappers, "the parser found no wrapper: the check is looking at the wrong thing")
	for typ, file := range wrappers {
		assert.True(t, readFrom[typ], "%s (%s) wraps http.ResponseWriter without ReadFrom: blob downloads through it lose sendfile; pass it on with readFromThrough", typ, file)
	}
}

// BenchmarkBlobPullNoVerify512MiB: one 512 MiB blob download read in 1 MiB
// pieces and not hashed, so the client is not the limit (the digest-verifying
// BenchmarkBlobPull512MiB is held to sha256 speed); B/op shows what a
// download costs in memory, client included.
func BenchmarkBlobPullNoVerify512MiB(b *testing.B) {
	r := startBenchRegistry(b)
	base := "http://" + r.Addr()
	c := &http.Client{}
	d := blobDigest(b, 7)
	pushBlob(b, c, base, "bench/pull", blobStream(7, bigBlob), d)
	buf := make([]byte, 1<<20)
	b.SetBytes(bigBlob)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		resp, err := c.Get(base + "/v2/bench/pull/blobs/" + d)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.CopyBuffer(struct{ io.Writer }{io.Discard}, struct{ io.Reader }{resp.Body}, buf)
		resp.Body.Close()
		if err != nil || n != bigBlob {
			b.Fatalf("pulled %d bytes, err %v", n, err)
		}
	}
}

// TestWrapperReadFromKeepsWriteSemantics: ReadFrom on each wrapper does what
// Write does in the same state (httptest's recorder has no ReadFrom, so this
// also covers readFromThrough's plain copy).
func TestWrapperReadFromKeepsWriteSemantics(t *testing.T) {
	body := "blob bytes"
	tests := []struct {
		name     string
		wrap     func(http.ResponseWriter) io.ReaderFrom
		wantCode int
		wantBody string
	}{
		{"status writer counts", func(w http.ResponseWriter) io.ReaderFrom { return &statusWriter{ResponseWriter: w} }, 200, body},
		{"server error writer passes a 200", func(w http.ResponseWriter) io.ReaderFrom { return &serverErrorWriter{ResponseWriter: w} }, 200, body},
		{"server error writer holds back a 500", func(w http.ResponseWriter) io.ReaderFrom {
			sw := &serverErrorWriter{ResponseWriter: w}
			sw.WriteHeader(http.StatusInternalServerError)
			return sw
		}, 200, ""}, // nothing written yet: withServerErrors writes the answer
		{"hook writer runs its hook", func(w http.ResponseWriter) io.ReaderFrom {
			return newHookWriter(w, func(int, http.Header) error { return nil }, slog.New(slog.DiscardHandler))
		}, 200, body},
		{"hook writer drops the body after a failed hook", func(w http.ResponseWriter) io.ReaderFrom {
			return newHookWriter(w, func(int, http.Header) error { return io.ErrUnexpectedEOF }, slog.New(slog.DiscardHandler))
		}, 500, ""},
		{"disk full writer passes a 200", func(w http.ResponseWriter) io.ReaderFrom { return &diskFullWriter{ResponseWriter: w} }, 200, body},
		{"disk full writer holds back a 507", func(w http.ResponseWriter) io.ReaderFrom {
			dw := &diskFullWriter{ResponseWriter: w}
			dw.WriteHeader(http.StatusInsufficientStorage)
			return dw
		}, 200, ""},
		{"held writer passes through", func(w http.ResponseWriter) io.ReaderFrom {
			return &heldWriter{ResponseWriter: w, hold: func(int) bool { return false }}
		}, 200, body},
		{"held writer drops a held answer", func(w http.ResponseWriter) io.ReaderFrom {
			hw := &heldWriter{ResponseWriter: w, hold: func(int) bool { return true }}
			hw.WriteHeader(http.StatusInternalServerError)
			return hw
		}, 200, ""},
		{"stalled writer passes through", func(w http.ResponseWriter) io.ReaderFrom {
			return &stalledWriter{ResponseWriter: w, body: &idleBody{}}
		}, 200, body},
		{"stalled writer drops the body after its 408", func(w http.ResponseWriter) io.ReaderFrom {
			return &stalledWriter{ResponseWriter: w, body: &idleBody{}, replaced: true}
		}, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			w := tt.wrap(rec)
			n, err := w.ReadFrom(strings.NewReader(body))
			require.NoError(t, err)
			assert.EqualValues(t, len(body), n, "ReadFrom reports the bytes it took, as Write does")
			assert.Equal(t, tt.wantCode, rec.Code)
			if tt.wantBody == "" {
				assert.NotContains(t, rec.Body.String(), body)
			} else {
				assert.Equal(t, tt.wantBody, rec.Body.String())
			}
			if sw, ok := w.(*statusWriter); ok {
				assert.EqualValues(t, len(body), sw.bytes)
				assert.Equal(t, http.StatusOK, sw.status)
			}
		})
	}
}
