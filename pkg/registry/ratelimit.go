package registry

import (
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// DefaultRequestsPerSecond and DefaultBurst bound each client; generous enough
// for 100 parallel pushes from one machine.
const (
	DefaultRequestsPerSecond = 1000
	DefaultBurst             = 2000
)

// DefaultUploadPurgeAge is how old an abandoned upload must be before it is
// deleted: long enough for a resumed push after a weekend.
const DefaultUploadPurgeAge = 7 * 24 * time.Hour

// RateLimit configures per-client rate limiting; zero values mean the defaults.
// Clients on this machine's loopback are never limited: a local registry must
// not refuse its own user's bulk work (a CI job mirroring 1,000 repositories,
// 100 parallel pushes). The failed-login budget applies to every client.
type RateLimit struct {
	RequestsPerSecond float64
	Burst             int
	// Disabled turns the limiter off (benchmarks of the engine alone).
	Disabled bool
}

// withRateLimit answers 429 with Retry-After once a client spends its tokens.
func withRateLimit(next http.Handler, l *limiter) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip := clientIP(r)
		if isLoopbackIP(ip) {
			next.ServeHTTP(w, r)
			return
		}
		if ok, retry := l.take(ip); !ok {
			tooMany(w, retry, "too many requests from this client")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func isLoopbackIP(s string) bool {
	ip := net.ParseIP(s)
	return ip != nil && ip.IsLoopback()
}

func tooMany(w http.ResponseWriter, retry time.Duration, msg string) {
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(retry.Seconds()))))
	writeOCIError(w, http.StatusTooManyRequests, codeTooManyRequests, msg)
}

// limiter is a token bucket per client key (the client's IP address).
type limiter struct {
	rate  float64 // tokens per second
	burst float64
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// maxBuckets bounds memory: past it, buckets idle long enough to be full are dropped.
const maxBuckets = 10_000

func newLimiter(perSecond float64, burst int, now func() time.Time) *limiter {
	if now == nil {
		now = time.Now
	}
	return &limiter{rate: perSecond, burst: float64(burst), now: now, buckets: map[string]*bucket{}}
}

// take removes one token for key. When none is left it reports how long until
// one will be.
func (l *limiter) take(key string) (ok bool, retryAfter time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.refillLocked(key)
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
	return false, wait
}

// refund gives back a token taken for key (never past the burst).
func (l *limiter) refund(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.refillLocked(key)
	b.tokens = math.Min(l.burst, b.tokens+1)
}

func (l *limiter) refillLocked(key string) *bucket {
	now := l.now()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= maxBuckets {
			l.sweepLocked(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
		return b
	}
	b.tokens = math.Min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	return b
}

func (l *limiter) sweepLocked(now time.Time) {
	full := time.Duration(l.burst / l.rate * float64(time.Second))
	for k, b := range l.buckets {
		if now.Sub(b.last) >= full {
			delete(l.buckets, k)
		}
	}
}
