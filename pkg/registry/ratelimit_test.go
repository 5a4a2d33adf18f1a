package registry

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLimiter(1, 3, func() time.Time { return now })
	for i := range 3 {
		ok, _ := l.take("a")
		assert.True(t, ok, "burst token %d", i)
	}
	ok, retry := l.take("a")
	assert.False(t, ok)
	assert.Equal(t, time.Second, retry)
	ok, _ = l.take("b")
	assert.True(t, ok, "another client has its own bucket")

	now = now.Add(1500 * time.Millisecond)
	ok, _ = l.take("a")
	assert.True(t, ok, "refilled")
	ok, retry = l.take("a")
	assert.False(t, ok)
	assert.Equal(t, 500*time.Millisecond, retry)
	l.refund("a")
	ok, _ = l.take("a")
	assert.True(t, ok, "a refunded token can be taken again")
	for range 10 {
		l.refund("b")
	}
	assert.LessOrEqual(t, l.buckets["b"].tokens, 3.0, "refunds never exceed the burst")

	now = now.Add(time.Hour)
	ok, _ = l.take("a")
	assert.True(t, ok)
	assert.LessOrEqual(t, l.buckets["a"].tokens, 2.0, "never above burst")
}

func TestLimiterSweep(t *testing.T) {
	now := time.Unix(0, 0)
	l := newLimiter(10, 1, func() time.Time { return now })
	for i := range maxBuckets {
		l.take(string(rune(i)))
	}
	now = now.Add(time.Second)
	l.take("new")
	assert.Len(t, l.buckets, 1, "idle full buckets were dropped")
}
