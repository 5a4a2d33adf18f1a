package steps

import (
	"context"
	"fmt"
	"strings"

	"github.com/idpbuilder/idpbuilder/pkg/kind"
)

// wiredRegistry is how the cluster is wired to the registry: what the registry step
// found, or (for a step run on its own) the running registry's endpoint.
func wiredRegistry(ctx context.Context, c *Context) (kind.Registry, error) {
	if c.Registry != nil {
		return *c.Registry, nil
	}
	rt := c.Runtime
	if rt == nil {
		var err error
		if rt, err = c.NewRuntime(ctx, c.Settings.Mode); err != nil {
			return kind.Registry{}, err
		}
	}
	ep, err := rt.Endpoint(ctx)
	if err != nil {
		return kind.Registry{}, err
	}
	reg, err := c.ClusterRegistry(ep)
	if err != nil {
		return kind.Registry{}, err
	}
	c.Runtime, c.Endpoint, c.Registry = rt, ep, &reg
	return reg, nil
}

// Wire writes each node's hosts.toml (and the CA beside it) for every name of
// the registry. containerd reads them on each pull: no restart.
type Wire struct{}

// Execute implements Step.
func (Wire) Execute(ctx context.Context, c *Context) (err error) {
	reg, err := wiredRegistry(ctx, c)
	if err != nil {
		return err
	}
	ns, err := c.Cluster.Nodes(ctx)
	if err != nil {
		return err
	}
	c.Status.Start(fmt.Sprintf("Wiring %d node(s) to %s", len(ns), strings.Join(reg.Names(), ", ")))
	defer func() { c.Status.End(err) }()
	return c.Cluster.WireNodes(ctx, reg)
}

// Objects applies the cluster objects: the KEP-1755 ConfigMap, the Service and
// EndpointSlice for the in-cluster name, and its CoreDNS entry.
type Objects struct{}

// Execute implements Step.
func (Objects) Execute(ctx context.Context, c *Context) (err error) {
	reg, err := wiredRegistry(ctx, c)
	if err != nil {
		return err
	}
	c.Status.Start(fmt.Sprintf("Publishing kube-public/local-registry-hosting and %s for pods", reg.InClusterHost()))
	defer func() { c.Status.End(err) }()
	return c.Cluster.ApplyObjects(ctx, reg)
}
