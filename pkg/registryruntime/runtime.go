package registryruntime

import (
	"context"
	"fmt"

	"github.com/idpbuilder/idpbuilder/pkg/auth"
	"github.com/idpbuilder/idpbuilder/pkg/docker"
)

// Mode is where a cluster's registry runs.
type Mode string

const (
	// ModeContainer runs it as a Docker container built from our own binary.
	ModeContainer Mode = "container"
	// ModeProcess runs it as a detached `idpbuilder registry serve` on this machine.
	ModeProcess Mode = "process"
)

// ParseMode parses container or process.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeContainer, ModeProcess:
		return m, nil
	}
	return "", fmt.Errorf("%q is not a registry mode (use container or process)", s)
}

// Other is the other mode: an instance of it must not keep the port.
func (m Mode) Other() Mode {
	if m == ModeContainer {
		return ModeProcess
	}
	return ModeContainer
}

// Options configure a cluster's registry, in either mode.
type Options struct {
	// Cluster is the cluster the registry serves; the container is named
	// <Cluster>-registry (also its DNS name on Network) and labelled with it.
	Cluster string
	// HostPort is published on 127.0.0.1 only (and, for a process, on ListenIP).
	HostPort int
	// DataDir on this machine is the registry's storage.
	DataDir string
	// StateDir holds a process's pid file, arguments and log.
	StateDir string
	// Binary is the idpbuilder executable the registry runs (os.Executable()).
	Binary string
	// CertDir, when set, turns on TLS: the local CA and server certificate live there.
	CertDir string
	// TLSNames are names the certificate must cover besides the defaults.
	TLSNames []string
	// Htpasswd and Auth turn on authentication with that user file, unless
	// Auth is empty or auth.PolicyNone.
	Htpasswd string
	Auth     auth.Policy

	// Network is the docker network a container joins (kind's "kind").
	Network string
	// ListenIP is a second address a process listens on, reachable from the
	// nodes: the kind network's gateway on Linux. Empty where nodes reach the
	// host otherwise (Docker Desktop's host.docker.internal forwards to loopback).
	ListenIP string
	// NodeHostName is how nodes name this machine for a process: ListenIP, or
	// host.docker.internal.
	NodeHostName string
	// UIClusterHost is how pods name the registry (registry.local:5000), for
	// the web UI's kubectl commands.
	UIClusterHost string
}

// ContainerName is the registry container's name.
func (o Options) ContainerName() string { return o.Cluster + "-registry" }

func (o Options) authOn() bool { return o.Auth != "" && o.Auth != auth.PolicyNone }

// New returns the runtime of mode for opts; d drives Docker for a container.
func New(mode Mode, opts Options, d *docker.Client) (Runtime, error) {
	switch mode {
	case ModeContainer:
		return &Container{Docker: d, Opts: opts}, nil
	case ModeProcess:
		return &Process{Opts: opts}, nil
	}
	_, err := ParseMode(string(mode))
	return nil, err
}

// Status values of State besides Docker's own (exited, restarting, ...).
const (
	StatusRunning = "running"
	StatusMissing = "missing"
)

// State is how a registry instance is now.
type State struct {
	// Status is StatusRunning, another state such as "exited", or StatusMissing.
	Status string
	// RestartCount is how many times it was restarted after a crash.
	RestartCount int
}

// Runtime is where a cluster's registry runs: a Container or a Process.
type Runtime interface {
	// Mode is where it runs.
	Mode() Mode
	// Describe names the instance for people: the container name or the pid file.
	Describe() string
	// Ensure starts the registry if needed (repairing what is wrong) and waits until it answers.
	Ensure(ctx context.Context) (*Endpoint, error)
	// Endpoint reports the addresses of the registry as it is now.
	Endpoint(ctx context.Context) (*Endpoint, error)
	// State reports how the instance is now.
	State(ctx context.Context) (State, error)
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
