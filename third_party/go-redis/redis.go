// Package redis stands in for go-redis in idpbuilder, whose registry never
// uses a Redis cache (see third_party/README.md). It holds the names
// distribution's handlers and Redis cache refer to, and no client.
package redis

import (
	"context"
	"crypto/tls"
	"errors"
	"time"
)

// ErrNotBuiltIn is the error every command reports.
var ErrNotBuiltIn = errors.New("idpbuilder is built without Redis support")

// Nil is the reply for a missing key.
var Nil = errors.New("redis: nil")

// NewUniversalClient panics: a configuration that needs Redis cannot be served
// by this build, and distribution calls this while building its app, so the
// registry refuses to start and says why.
func NewUniversalClient(*UniversalOptions) UniversalClient {
	panic("redis is configured, but " + ErrNotBuiltIn.Error() + ": remove the redis settings")
}

// UniversalOptions holds the fields distribution sets.
type UniversalOptions struct {
	Addrs                 []string
	ClientName            string
	DB                    int
	Protocol              int
	Username              string
	Password              string
	SentinelUsername      string
	SentinelPassword      string
	MaxRetries            int
	MinRetryBackoff       time.Duration
	MaxRetryBackoff       time.Duration
	DialTimeout           time.Duration
	ReadTimeout           time.Duration
	WriteTimeout          time.Duration
	ContextTimeoutEnabled bool
	PoolFIFO              bool
	PoolSize              int
	PoolTimeout           time.Duration
	MinIdleConns          int
	MaxIdleConns          int
	MaxActiveConns        int
	ConnMaxIdleTime       time.Duration
	ConnMaxLifetime       time.Duration
	MaxRedirects          int
	ReadOnly              bool
	RouteByLatency        bool
	RouteRandomly         bool
	MasterName            string
	DisableIdentity       bool
	IdentitySuffix        string
	UnstableResp3         bool
	TLSConfig             *tls.Config
	OnConnect             func(ctx context.Context, cn *Conn) error
}

// PoolStats is a client's connection pool count.
type PoolStats struct {
	Hits, Misses, Timeouts, TotalConns, IdleConns, StaleConns uint32
}

// Cmdable is the commands distribution's cache sends.
type Cmdable interface {
	Del(ctx context.Context, keys ...string) *IntCmd
	HDel(ctx context.Context, key string, fields ...string) *IntCmd
	HGet(ctx context.Context, key, field string) *StringCmd
	HMGet(ctx context.Context, key string, fields ...string) *SliceCmd
	HMSet(ctx context.Context, key string, values ...any) *BoolCmd
	HSet(ctx context.Context, key string, values ...any) *IntCmd
	HSetNX(ctx context.Context, key, field string, value any) *BoolCmd
	SAdd(ctx context.Context, key string, members ...any) *IntCmd
	SIsMember(ctx context.Context, key string, member any) *BoolCmd
	SRem(ctx context.Context, key string, members ...any) *IntCmd
}

// UniversalClient is a client for one server, a cluster or a sentinel set.
type UniversalClient interface {
	Cmdable
	TxPipeline() Pipeliner
	PoolStats() *PoolStats
	Close() error
}

// Pipeliner queues commands for one round trip.
type Pipeliner interface {
	Cmdable
	Exec(ctx context.Context) ([]Cmder, error)
}

// Cmder is any command.
type Cmder interface{ Err() error }

// Conn is one connection.
type Conn struct{}

// Ping asks the server for a reply.
func (*Conn) Ping(context.Context) *StatusCmd { return &StatusCmd{} }

type baseCmd struct{}

// Err is ErrNotBuiltIn: no command is ever sent.
func (baseCmd) Err() error { return ErrNotBuiltIn }

// StatusCmd is a command answered with a status.
type StatusCmd struct{ baseCmd }

// Result is the status.
func (c *StatusCmd) Result() (string, error) { return "", c.Err() }

// IntCmd is a command answered with an integer.
type IntCmd struct{ baseCmd }

// Result is the integer.
func (c *IntCmd) Result() (int64, error) { return 0, c.Err() }

// BoolCmd is a command answered with a boolean.
type BoolCmd struct{ baseCmd }

// Result is the boolean.
func (c *BoolCmd) Result() (bool, error) { return false, c.Err() }

// StringCmd is a command answered with a string.
type StringCmd struct{ baseCmd }

// Result is the string.
func (c *StringCmd) Result() (string, error) { return "", c.Err() }

// SliceCmd is a command answered with a list.
type SliceCmd struct{ baseCmd }

// Result is the list.
func (c *SliceCmd) Result() ([]any, error) { return nil, c.Err() }
