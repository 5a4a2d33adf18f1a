package ui

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// clock is a settable time for session expiry.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestSessionExpiry(t *testing.T) {
	c := &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := newSessions(c.now)
	tok := s.create(Identity{User: "alice", Stamp: "1"})

	c.t = c.t.Add(sessionIdle - time.Second)
	got, ok := s.lookup(tok)
	require.True(t, ok, "used within the idle time")
	assert.Equal(t, "alice", got.id.User)

	// Kept alive by use, it still ends at its absolute lifetime.
	for c.t.Sub(got.created) < sessionLifetime-sessionIdle/2 {
		c.t = c.t.Add(sessionIdle / 2)
		_, ok = s.lookup(tok)
		require.True(t, ok)
	}
	c.t = got.created.Add(sessionLifetime)
	_, ok = s.lookup(tok)
	assert.False(t, ok, "past its lifetime")
	assert.Equal(t, 0, s.count(), "an expired session is dropped")

	idle := s.create(Identity{User: "bob"})
	c.t = c.t.Add(sessionIdle)
	_, ok = s.lookup(idle)
	assert.False(t, ok, "unused for the idle time")

	_, ok = s.lookup("")
	assert.False(t, ok)
	_, ok = s.lookup("not a session")
	assert.False(t, ok)
}

func TestSessionBounds(t *testing.T) {
	c := &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := newSessions(c.now)
	var alice []string
	for range maxUserSessions + 5 {
		c.t = c.t.Add(time.Second)
		alice = append(alice, s.create(Identity{User: "alice"}))
	}
	assert.Equal(t, maxUserSessions, s.count(), "one user's logins are bounded")
	_, ok := s.lookup(alice[0])
	assert.False(t, ok, "the oldest session went first")
	_, ok = s.lookup(alice[len(alice)-1])
	assert.True(t, ok)

	for i := range maxSessions + 10 {
		c.t = c.t.Add(time.Millisecond)
		s.create(Identity{User: fmt.Sprintf("user%d", i)})
	}
	assert.Equal(t, maxSessions, s.count(), "all sessions are bounded")
}

func TestCSRFTokens(t *testing.T) {
	s := newSessions(time.Now)
	a, b := s.csrfToken("anon", "cookie-a"), s.csrfToken("anon", "cookie-b")
	assert.NotEqual(t, a, b, "bound to the browser's cookie")
	assert.NotEqual(t, a, s.csrfToken("session", "cookie-a"), "an anonymous token is no session token")
	assert.Equal(t, a, s.csrfToken("anon", "cookie-a"))
	assert.NotEqual(t, a, newSessions(time.Now).csrfToken("anon", "cookie-a"), "keyed per process")
	assert.True(t, tokensEqual(a, a))
	assert.False(t, tokensEqual("", ""))
	assert.False(t, tokensEqual(a, b))
}
