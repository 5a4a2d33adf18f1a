// Package platform is idpbuilder as a library: a developer's local platform is
// a Kind cluster with a registry beside it, and this package creates, deletes,
// starts, stops and reports on them, and hands out clients for the registry.
// The command line parses flags, calls it and renders what it reports.
//
// `create` is an ordered list of small steps (see internal/steps): make or
// reuse the cluster, certificates, the registry, wire each node, apply the
// cluster objects, prove a pull works. Each reports through Status.
package platform

import (
	"context"
	"errors"
	"fmt"
	"os"

	kindlog "sigs.k8s.io/kind/pkg/log"

	"github.com/idpbuilder/idpbuilder/pkg/auth"
	"github.com/idpbuilder/idpbuilder/pkg/docker"
	"github.com/idpbuilder/idpbuilder/pkg/kind"
	"github.com/idpbuilder/idpbuilder/pkg/platform/internal/state"
	"github.com/idpbuilder/idpbuilder/pkg/platform/internal/steps"
)

// Status shows a user where an operation is: each step opens a line and ends
// it in success or failure. The command line implements it.
type Status = steps.Status

// Settings are how a cluster's registry is set up; a cluster keeps the ones it
// was created with (in its state dir) for every later command.
type Settings = state.Settings

// Fields names settings one by one.
type Fields = state.Fields

// Given are the settings a command was given: values, defaults included, and
// which of them the user chose. What the user did not choose is what the
// cluster was created with; the values apply to a new cluster.
type Given = state.Given

// Typed errors the command line turns into hints.
type (
	// NoUserError: the auth policy needs a user to push with and there is none.
	NoUserError = steps.NoUserError
	// PullCheckError: a node could not pull through its wiring.
	PullCheckError = steps.PullCheckError
	// NodeImageError: the node image is not on the engine and could not be pulled.
	NodeImageError = steps.NodeImageError
	// CorruptSettingsError: a cluster's settings file cannot be read.
	CorruptSettingsError = state.CorruptError
)

// NoClusterError means an operation needs the cluster (its network) and it does not exist.
type NoClusterError struct{ Cluster string }

func (e *NoClusterError) Error() string {
	return fmt.Sprintf("cluster %q does not exist (the docker network %q is missing)", e.Cluster, kind.Network)
}

// Platform runs clusters and their registries on this machine.
type Platform struct {
	// StateDir is idpbuilder's state directory; a cluster's files are under
	// clusters/<name> in it.
	StateDir string
	// Binary is the idpbuilder executable registries run; os.Executable() when empty.
	Binary string
	// Docker drives the Docker engine, and commands in the nodes; this machine when nil.
	Docker *docker.Client
	// Logger takes kind's own progress lines while it creates a cluster.
	Logger kindlog.Logger
	// GOOS decides how nodes reach a registry process; runtime.GOOS when empty.
	GOOS string
	// ServeCertDir is `registry serve`'s CA directory: clients trust it too.
	ServeCertDir string
	// Credentials are the logins `registry login` stored.
	Credentials auth.CredStore
}

func (p *Platform) docker() *docker.Client {
	if p.Docker == nil {
		return &docker.Client{}
	}
	return p.Docker
}

// open reads what the platform keeps for cluster name once, resolves the
// settings with what the command was given, and returns the steps' context.
func (p *Platform) open(name string, given Given, status Status) (*steps.Context, error) {
	layout := state.NewLayout(p.StateDir, name)
	saved, found, err := state.Load(layout.SettingsFile())
	if err != nil {
		return nil, err
	}
	return p.context(name, layout, state.Resolve(saved, found, given), given.Chosen.Mode, status)
}

func (p *Platform) context(name string, layout state.Layout, s Settings, modeChosen bool, status Status) (*steps.Context, error) {
	var err error
	bin := p.Binary
	if bin == "" {
		if bin, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("find the idpbuilder binary: %w", err)
		}
	}
	if status == nil {
		status = quiet{}
	}
	d := p.docker()
	return &steps.Context{
		Status: status, Logger: p.Logger, Docker: d, Cluster: kind.New(name, d, p.Logger), Layout: layout,
		Settings: s, ModeChosen: modeChosen, Binary: bin, GOOS: p.GOOS, ServeCertDir: p.ServeCertDir,
	}, nil
}

// quiet is the Status of operations nobody watches.
type quiet struct{}

func (quiet) Start(string) {}
func (quiet) End(error)    {}

// Info is where a cluster's registry is and how it is set up.
type Info struct {
	Cluster  string
	Settings Settings
	// HostAddr is how this machine reaches it: localhost:<port>.
	HostAddr string
	// InClusterHost is how pods reach it: <in-cluster name>:5000.
	InClusterHost string
	// CAFile is the local CA that signs its certificate (when TLS is on).
	CAFile string
	// DataDir holds its images.
	DataDir string
	// StateDir holds everything kept for the cluster.
	StateDir string
}

// Info reports where cluster name's registry is and how it is set up, from
// what was recorded and what the command was given.
func (p *Platform) Info(name string, given Given) (Info, error) {
	c, err := p.open(name, given, nil)
	if err != nil {
		return Info{}, err
	}
	return info(c), nil
}

func info(c *steps.Context) Info {
	return Info{
		Cluster: c.Name(), Settings: c.Settings,
		HostAddr:      fmt.Sprintf("localhost:%d", c.Settings.Port),
		InClusterHost: fmt.Sprintf("%s:%d", c.Settings.InClusterName, kind.InClusterPort),
		CAFile:        c.Layout.CAFile(), DataDir: c.Layout.DataDir(), StateDir: c.Layout.Dir,
	}
}

// CreateOptions are what `create` is given besides the registry's settings.
type CreateOptions struct {
	// Recreate deletes the cluster first when it exists.
	Recreate bool
	// NoRegistry makes or reuses the cluster only.
	NoRegistry bool
}

// Create makes or reuses cluster name and its registry, wires them together,
// and proves that every node pulls from it. Run again, it repairs what is
// missing or stale.
func (p *Platform) Create(ctx context.Context, name string, given Given, opts CreateOptions, status Status) (Info, error) {
	c, err := p.open(name, given, status)
	if err != nil {
		return Info{}, err
	}
	cfg, err := kind.LoadConfig(c.Settings.KindConfig)
	if err != nil {
		return Info{}, err
	}
	if _, err := c.Server(ctx); err != nil {
		return Info{}, err
	}
	list := []steps.Step{steps.Cluster{Config: cfg, Recreate: opts.Recreate}}
	if !opts.NoRegistry {
		list = append(list, steps.Certificates{}, steps.Registry{}, steps.Wire{}, steps.Objects{}, steps.PullCheck{})
	}
	if err := steps.Run(ctx, c, list...); err != nil {
		return Info{}, err
	}
	return info(c), nil
}

// Deleted is what Delete removed.
type Deleted struct {
	Info
	// ClusterExisted is false when there was no cluster to delete.
	ClusterExisted bool
	// Purged is set when the registry's data went too.
	Purged bool
}

// Delete deletes cluster name and its registry's instance; purge also removes
// the registry's data (images, certificates, settings), otherwise kept for the
// next create.
func (p *Platform) Delete(ctx context.Context, name string, given Given, purge bool, status Status) (Deleted, error) {
	c, err := p.open(name, given, status)
	var corrupt *CorruptSettingsError
	if purge && errors.As(err, &corrupt) {
		// Purging removes the unreadable file with the rest: the registry is
		// looked for as the command was given.
		c, err = p.context(name, state.NewLayout(p.StateDir, name), given.Settings, given.Chosen.Mode, status)
	}
	if err != nil {
		return Deleted{}, err
	}
	if _, err := c.Server(ctx); err != nil {
		return Deleted{}, err
	}
	existed, err := c.Cluster.Exists(ctx)
	if err != nil {
		return Deleted{}, err
	}
	list := []steps.Step{steps.DeleteCluster{}, steps.RemoveRegistry{}}
	if purge {
		list = append(list, steps.Purge{})
	}
	if err := steps.Run(ctx, c, list...); err != nil {
		return Deleted{}, err
	}
	return Deleted{Info: info(c), ClusterExisted: existed, Purged: purge}, nil
}
