package platform

import (
	"context"
	"fmt"

	"github.com/idpbuilder/idpbuilder/pkg/kind"
	"github.com/idpbuilder/idpbuilder/pkg/platform/internal/steps"
)

// Started is the registry Start left running.
type Started struct {
	Info
	// Instance names it: the container, or the process's pid file.
	Instance string
}

// Start starts (or repairs) cluster name's registry and rewires the cluster to
// it, with the steps create uses for that, ending with the pull check.
func (p *Platform) Start(ctx context.Context, name string, given Given, status Status) (Started, error) {
	c, err := p.open(name, given, status)
	if err != nil {
		return Started{}, err
	}
	ok, err := c.Docker.NetworkExists(ctx, kind.Network)
	if err != nil {
		return Started{}, err
	}
	if !ok {
		return Started{}, &NoClusterError{Cluster: name}
	}
	if err := steps.Run(ctx, c, steps.Certificates{}, steps.Registry{}, steps.Wire{}, steps.Objects{}, steps.PullCheck{}); err != nil {
		return Started{}, err
	}
	return Started{Info: info(c), Instance: c.Runtime.Describe()}, nil
}

// Stopped is the registry Stop stopped.
type Stopped struct {
	Info
	Instance string
}

// Stop stops cluster name's registry; its images stay, Start starts it again.
func (p *Platform) Stop(ctx context.Context, name string, given Given) (Stopped, error) {
	c, err := p.open(name, given, nil)
	if err != nil {
		return Stopped{}, err
	}
	rt, err := c.NewRuntime(ctx, c.Settings.Mode)
	if err != nil {
		return Stopped{}, err
	}
	if err := rt.Stop(ctx); err != nil {
		return Stopped{}, fmt.Errorf("stop the registry %s: %w", rt.Describe(), err)
	}
	return Stopped{Info: info(c), Instance: rt.Describe()}, nil
}

// CheckPull runs create's last step on its own: every node of cluster name
// pulls a test image through its wiring (a *PullCheckError names the node
// that cannot).
func (p *Platform) CheckPull(ctx context.Context, name string, given Given, status Status) error {
	c, err := p.open(name, given, status)
	if err != nil {
		return err
	}
	return steps.Run(ctx, c, steps.PullCheck{})
}
