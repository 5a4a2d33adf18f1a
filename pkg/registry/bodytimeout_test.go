package registry

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStalledBodyIsCut: an upload that stops sending is cut after the idle
// timeout; one that sends slowly but keeps moving is not.
func TestStalledBodyIsCut(t *testing.T) {
	const idle = 300 * time.Millisecond
	r := New(Options{Addr: "127.0.0.1:0", DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler),
		RateLimit: RateLimit{Disabled: true}, BodyIdleTimeout: idle})
	require.NoError(t, r.Start(context.Background()))
	t.Cleanup(func() { _ = r.Stop(context.Background()) })

	patch := func(t *testing.T, chunks int, gap time.Duration) (status string, err error) {
		t.Helper()
		resp, err := http.Post("http://"+r.Addr()+"/v2/slow/blobs/uploads/", "", nil)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusAccepted, resp.StatusCode)
		loc, err := url.Parse(resp.Header.Get("Location"))
		require.NoError(t, err)
		conn, err := net.Dial("tcp", r.Addr())
		require.NoError(t, err)
		defer conn.Close()
		// The whole exchange is bounded so a broken server fails the test instead of hanging it.
		require.NoError(t, conn.SetDeadline(time.Now().Add(30*time.Second)))
		_, err = fmt.Fprintf(conn, "PATCH %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\nContent-Length: 100\r\n\r\n", loc.RequestURI(), r.Addr())
		require.NoError(t, err)
		for i := range chunks {
			if i > 0 {
				time.Sleep(gap)
			}
			if _, err := conn.Write([]byte("x")); err != nil {
				return "", err
			}
		}
		// After a stall the server must give up on the body, answer and close.
		br := bufio.NewReader(conn)
		resp, err = http.ReadResponse(br, nil)
		if err != nil {
			return "", err
		}
		resp.Body.Close()
		return resp.Status, nil
	}

	t.Run("stalled", func(t *testing.T) {
		status, err := patch(t, 1, 0)
		var ne net.Error
		require.False(t, errors.As(err, &ne) && ne.Timeout(), "the server never cut the stalled body: %v", err)
		t.Logf("stalled upload answered %q (err %v)", status, err)
		if err == nil {
			assert.Contains(t, status, "408", "a stalled body is the client's doing: 408, not a server error")
		}
	})
	t.Run("slow but moving", func(t *testing.T) {
		status, err := patch(t, 100, idle/10)
		require.NoError(t, err)
		assert.Contains(t, status, "202", "a body that keeps moving is not cut")
	})
}
