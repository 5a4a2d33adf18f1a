package registry

import (
	"context"
	"crypto/sha256"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/idpbuilder/idpbuilder/pkg/auth"
)

// AuthOptions turn on authentication.
type AuthOptions struct {
	Policy   auth.Policy
	Verifier *auth.Verifier
}

// Failed-login budgets. Each (client, user) pair may guess 10 times, then once
// per 6 s; each client, across all users, 30 times, then once per 2 s. A stale
// password in one tool thus locks out that user from that client only, and
// spraying many users stays bounded.
const (
	failedLoginRate        = 1.0 / 6
	failedLoginBurst       = 10
	failedLoginClientRate  = 1.0 / 2
	failedLoginClientBurst = 30
)

// loginGate verifies credentials without letting guesses through in parallel:
// a guess reserves its token before bcrypt runs (and a good password gives it
// back), identical concurrent attempts share one verification, and bcrypt runs
// at most once per core at a time. Credentials verified before cost nothing
// and pass without touching the budgets.
type loginGate struct {
	verifier  *auth.Verifier
	perUser   *limiter // key: client + user
	perClient *limiter // key: client
	bcrypt    chan struct{}

	mu       sync.Mutex
	inflight map[[32]byte]*attempt

	verifications atomic.Int64 // bcrypt runs, for tests and metrics
}

type attempt struct {
	done  chan struct{}
	good  bool
	retry time.Duration // > 0: refused by a budget
	err   error
}

func newLoginGate(v *auth.Verifier, now func() time.Time) *loginGate {
	return &loginGate{
		verifier:  v,
		perUser:   newLimiter(failedLoginRate, failedLoginBurst, now),
		perClient: newLimiter(failedLoginClientRate, failedLoginClientBurst, now),
		bcrypt:    make(chan struct{}, runtime.GOMAXPROCS(0)), // one bcrypt per core
		inflight:  map[[32]byte]*attempt{},
	}
}

// check verifies user/password from client. retry > 0 means a budget refused
// the attempt before any verification.
func (g *loginGate) check(ctx context.Context, client, user, password string) (good bool, retry time.Duration, err error) {
	if g.verifier.Known(user, password) {
		return true, 0, nil
	}
	key := sha256.Sum256([]byte(client + "\x00" + user + "\x00" + password))
	g.mu.Lock()
	if a, ok := g.inflight[key]; ok {
		g.mu.Unlock()
		select {
		case <-a.done:
			return a.good, a.retry, a.err
		case <-ctx.Done():
			return false, 0, ctx.Err()
		}
	}
	a := &attempt{done: make(chan struct{})}
	g.inflight[key] = a
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		delete(g.inflight, key)
		g.mu.Unlock()
		close(a.done)
	}()
	a.good, a.retry, a.err = g.verify(ctx, client, user, password)
	return a.good, a.retry, a.err
}

func (g *loginGate) verify(ctx context.Context, client, user, password string) (bool, time.Duration, error) {
	userKey := client + "\x00" + user
	if ok, retry := g.perUser.take(userKey); !ok {
		return false, retry, nil
	}
	if ok, retry := g.perClient.take(client); !ok {
		g.perUser.refund(userKey)
		return false, retry, nil
	}
	select {
	case g.bcrypt <- struct{}{}:
	case <-ctx.Done():
		g.perUser.refund(userKey)
		g.perClient.refund(client)
		return false, 0, ctx.Err()
	}
	g.verifications.Add(1)
	good, err := g.verifier.Verify(user, password)
	<-g.bcrypt
	if good || err != nil {
		// Not a guess: the budget is for wrong passwords.
		g.perUser.refund(userKey)
		g.perClient.refund(client)
	}
	return good, 0, err
}

// malformed spends the client's budget for a header that is no credential.
func (g *loginGate) malformed(client string) (ok bool, retry time.Duration) {
	return g.perClient.take(client)
}
