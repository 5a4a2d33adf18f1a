package registry

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSlowDownloadsKeepMemoryBounded: 300 clients that start a blob download
// and stop reading hold the server's memory to a small buffer each (the bound
// docs/security.md states: under 64 MiB of heap for 300), and a normal client
// still pulls meanwhile.
func TestSlowDownloadsKeepMemoryBounded(t *testing.T) {
	const slow = 300
	r := New(Options{Addr: "127.0.0.1:0", DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler), RateLimit: RateLimit{Disabled: true}})
	require.NoError(t, r.Start(context.Background()))
	t.Cleanup(func() { _ = r.Stop(context.Background()) })
	blob := make([]byte, 16<<20)
	_, _ = rand.Read(blob)
	d := digest.FromBytes(blob)
	base := "http://" + r.Addr()
	resp, err := http.Post(base+"/v2/mem/blobs/uploads/", "", nil)
	require.NoError(t, err)
	resp.Body.Close()
	req, _ := http.NewRequest(http.MethodPut, resp.Header.Get("Location")+"&digest="+d.String(), bytes.NewReader(blob))
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	conns := make([]net.Conn, 0, slow)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for range slow {
		c, err := net.Dial("tcp", r.Addr())
		require.NoError(t, err)
		conns = append(conns, c)
		// A small receive buffer, so the server's writes block early.
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4096)
		}
		_, err = fmt.Fprintf(c, "GET /v2/mem/blobs/%s HTTP/1.1\r\nHost: x\r\n\r\n", d)
		require.NoError(t, err)
		one := make([]byte, 1)
		require.NoError(t, c.SetReadDeadline(time.Now().Add(30*time.Second)))
		_, err = io.ReadFull(c, one) // the download has started; now it stalls
		require.NoError(t, err)
	}
	var during runtime.MemStats
	runtime.ReadMemStats(&during)
	grew := int64(during.HeapInuse) - int64(before.HeapInuse)
	t.Logf("heap in use: %d MiB before, %d MiB with %d stalled downloads (+%d MiB)",
		before.HeapInuse>>20, during.HeapInuse>>20, slow, grew>>20)
	assert.Less(t, grew, int64(64<<20), "stalled downloads hold too much memory")
	// A normal client pulls the whole blob meanwhile.
	resp, err = http.Get(base + "/v2/mem/blobs/" + d.String())
	require.NoError(t, err)
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	assert.Equal(t, d, digest.FromBytes(got))

}
