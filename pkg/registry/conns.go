package registry

import (
	"context"
	"net"
	"net/http"
	"sync"
	"time"
)

// unusedConnGrace is how long a connection may stay open without sending a request
// before a shutting-down server closes it.
const unusedConnGrace = 250 * time.Millisecond

// connTracker remembers connections that have not sent a request yet.
//
// http.Server.Shutdown waits up to 5 s for such "new" connections, and Go clients
// (go-containerregistry, docker) routinely leave them: when a parallel push dials
// a connection but another one frees up first, the dialed one sits unused in the
// client's pool. Without this, every stop after a push took 5 s.
type connTracker struct {
	mu    sync.Mutex
	fresh map[net.Conn]time.Time
}

func newConnTracker() *connTracker {
	return &connTracker{fresh: make(map[net.Conn]time.Time)}
}

// track is the http.Server ConnState hook.
func (t *connTracker) track(c net.Conn, s http.ConnState) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s == http.StateNew {
		t.fresh[c] = time.Now()
		return
	}
	delete(t.fresh, c) // active, idle, hijacked or closed: no longer unused
}

// closeUnused closes, until ctx ends, every connection that has been open for
// unusedConnGrace without sending a request. A request that arrives on one
// within the grace period is served normally.
func (t *connTracker) closeUnused(ctx context.Context) {
	tick := time.NewTicker(unusedConnGrace / 2)
	defer tick.Stop()
	for {
		t.mu.Lock()
		now := time.Now()
		for c, since := range t.fresh {
			if now.Sub(since) >= unusedConnGrace {
				_ = c.Close()
				delete(t.fresh, c)
			}
		}
		t.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
