// Package steps holds the steps platform operations are made of, in the style
// of kind's create actions: `create` is the list make or reuse the cluster,
// certificates, registry, wire the nodes, apply the cluster objects, prove a
// pull works; `delete` and `registry start` reuse the ones they share. Each
// step is idempotent, talks to the world only through its Context, and reports
// through Status: it opens its line, and ends it as it returns, so a user sees
// which step stopped.
package steps

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"

	kindlog "sigs.k8s.io/kind/pkg/log"

	"github.com/idpbuilder/idpbuilder/pkg/auth"
	"github.com/idpbuilder/idpbuilder/pkg/certs"
	"github.com/idpbuilder/idpbuilder/pkg/docker"
	"github.com/idpbuilder/idpbuilder/pkg/kind"
	"github.com/idpbuilder/idpbuilder/pkg/platform/internal/state"
	"github.com/idpbuilder/idpbuilder/pkg/registryruntime"
)

// Status shows a user where an operation is, one step at a time.
type Status interface {
	// Start opens a step; called again while one is open, it renames it.
	Start(title string)
	// End closes the open step: a success when err is nil.
	End(err error)
}

// Step is one idempotent part of an operation.
type Step interface {
	Execute(ctx context.Context, c *Context) error
}

// Run runs steps in order and stops at the first that fails.
func Run(ctx context.Context, c *Context, steps ...Step) error {
	for _, s := range steps {
		if err := s.Execute(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

// Context is what steps share: the cluster, its files and settings, and what
// earlier steps found out.
type Context struct {
	Status Status
	// Logger takes kind's own progress lines while it creates a cluster.
	Logger  kindlog.Logger
	Docker  *docker.Client
	Cluster *kind.Cluster
	Layout  state.Layout
	// Settings are what the registry runs with (state.Resolve); the registry
	// step records them once the registry runs.
	Settings state.Settings
	// ModeChosen is set when the user chose the registry's mode: no fallback
	// from a container to a process then.
	ModeChosen bool
	// Binary is the idpbuilder executable the registry runs.
	Binary string
	// GOOS decides how nodes reach a registry process (runtime.GOOS when empty).
	GOOS string
	// ServeCertDir is `registry serve`'s own CA directory, trusted by clients too.
	ServeCertDir string

	// Runtime and Endpoint are the registry as the registry step left it;
	// Registry is how the cluster is wired to it.
	Runtime  registryruntime.Runtime
	Endpoint *registryruntime.Endpoint
	Registry *kind.Registry

	server *docker.Server
}

// Name is the cluster's name.
func (c *Context) Name() string { return c.Cluster.Name }

// Server is the Docker engine, asked once.
func (c *Context) Server(ctx context.Context) (docker.Server, error) {
	if c.server != nil {
		return *c.server, nil
	}
	srv, err := c.Docker.Server(ctx)
	if err != nil {
		return docker.Server{}, err
	}
	c.server = &srv
	return srv, nil
}

func (c *Context) goos() string {
	if c.GOOS == "" {
		return runtime.GOOS
	}
	return c.GOOS
}

// NewRuntime is the cluster's registry runtime of the given mode, as the
// settings describe it.
func (c *Context) NewRuntime(ctx context.Context, mode registryruntime.Mode) (registryruntime.Runtime, error) {
	s := c.Settings
	opts := registryruntime.Options{
		Cluster: c.Name(), HostPort: s.Port, DataDir: c.Layout.DataDir(), StateDir: c.Layout.Dir,
		Binary: c.Binary, Network: kind.Network,
		// The web UI's kubectl commands name the registry as pods do.
		UIClusterHost: kind.Registry{InClusterName: s.InClusterName}.InClusterHost(),
	}
	if s.TLS {
		opts.CertDir = c.Layout.CertDir()
		opts.TLSNames = []string{s.InClusterName}
		if mode == registryruntime.ModeContainer {
			opts.TLSNames = []string{opts.ContainerName(), s.InClusterName}
		}
	}
	if s.AuthOn() {
		opts.Htpasswd, opts.Auth = s.Htpasswd, s.Auth
	}
	if mode == registryruntime.ModeProcess {
		if c.goos() == "linux" {
			// Nodes reach the host at the kind network's gateway; the registry
			// listens there as well as on loopback, never on every interface.
			// Without the network (no cluster yet, or deleted) the runtime can
			// still report and stop the process; Ensure refuses to start without it.
			if gw, err := c.Docker.NetworkGateway(ctx, kind.Network); err == nil && gw != "" {
				opts.ListenIP, opts.NodeHostName = gw, gw
			}
		} else {
			opts.NodeHostName = "host.docker.internal"
		}
	}
	return registryruntime.New(mode, opts, c.Docker)
}

// ClusterRegistry describes the registry to the cluster wiring: addresses from
// the endpoint, the CA when it speaks TLS, the nodes' login when pulls need one.
func (c *Context) ClusterRegistry(ep *registryruntime.Endpoint) (kind.Registry, error) {
	reg := kind.Registry{
		HostAddr: ep.HostAddr, NodeURL: ep.NodeURL, NodeHost: ep.NodeHost,
		ClusterIP: ep.ClusterIP, ClusterPort: ep.ClusterPort,
		InClusterName: c.Settings.InClusterName, Help: HelpURL,
	}
	if c.Settings.TLS {
		pem, err := readFile(filepath.Join(c.Layout.CertDir(), certs.CAFile))
		if err != nil {
			return reg, fmt.Errorf("registry CA: %w", err)
		}
		reg.CAPEM = pem
	}
	if c.Settings.Auth == auth.PolicyAll {
		secret, err := state.NodeSecret(c.Layout)
		if err != nil {
			return reg, err
		}
		reg.Authorization = basicAuth(state.NodeUser(c.Name()), secret)
	}
	return reg, nil
}

// HelpURL is published in the cluster's local-registry-hosting ConfigMap.
const HelpURL = "https://github.com/idpbuilder/idpbuilder/blob/main/docs/kind.md"
