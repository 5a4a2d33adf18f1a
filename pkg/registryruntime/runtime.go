package registryruntime

import (
	"context"
	"fmt"
)

// Runtime is where a cluster's registry runs: a Container or a Process.
type Runtime interface {
	// Mode is "container" or "process".
	Mode() string
	// Describe names the instance for people: the container name or the pid file.
	Describe() string
	// Ensure starts the registry if needed (repairing what is wrong) and waits until it answers.
	Ensure(ctx context.Context) (*Endpoint, error)
	// Endpoint reports the addresses of the registry as it is now.
	Endpoint(ctx context.Context) (*Endpoint, error)
	// State reports "running", another state such as "exited", or "missing",
	// and how many times it was restarted after a crash.
	State(ctx context.Context) (string, int, error)
	// Stop stops the registry, keeping what is needed to start it again.
	Stop(ctx context.Context) error
	// Remove stops the registry and removes the instance (never the data).
	Remove(ctx context.Context) error
}

var (
	_ Runtime = (*Container)(nil)
	_ Runtime = (*Process)(nil)
)

// PortInUseError means the registry's port on 127.0.0.1 is taken by something else.
type PortInUseError struct {
	Port int
	Err  error
}

func (e *PortInUseError) Error() string {
	return fmt.Sprintf("port %d on 127.0.0.1 is already in use: %v", e.Port, e.Err)
}

func (e *PortInUseError) Unwrap() error { return e.Err }
