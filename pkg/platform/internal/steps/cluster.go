package steps

import (
	"context"
	"fmt"
	"time"

	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
)

// NodeImageError means kind could not create the cluster and its node image
// is not on the Docker engine (nor could it be pulled).
type NodeImageError struct {
	Image string
	Err   error
}

func (e *NodeImageError) Error() string {
	return fmt.Sprintf("%v\nnode image %s is not in the Docker engine and could not be pulled: load or build it, or choose another", e.Err, e.Image)
}

func (e *NodeImageError) Unwrap() error { return e.Err }

// Cluster makes the cluster, or reuses it when it exists and its containerd
// reads the nodes' hosts.toml (a *kind.ForeignClusterError otherwise).
// Recreate deletes an existing one first.
type Cluster struct {
	// Config is the kind config to create with (kind.LoadConfig).
	Config   *v1alpha4.Cluster
	Recreate bool
	// Wait bounds how long kind waits for the control plane.
	Wait time.Duration
}

// Execute implements Step.
func (s Cluster) Execute(ctx context.Context, c *Context) (err error) {
	exists, err := c.Cluster.Exists(ctx)
	if err != nil {
		return err
	}
	if exists && s.Recreate {
		if err := (DeleteCluster{}).Execute(ctx, c); err != nil {
			return err
		}
		exists = false
	}
	if exists {
		c.Status.Start(fmt.Sprintf("Using cluster %q (its nodes' containerd reads hosts.toml)", c.Name()))
		defer func() { c.Status.End(err) }()
		return c.Cluster.CheckWiringPossible(ctx)
	}
	c.Status.Start(fmt.Sprintf("Creating cluster %q", c.Name()))
	defer func() { c.Status.End(err) }()
	return s.create(ctx, c)
}

func (s Cluster) create(ctx context.Context, c *Context) error {
	wait := s.Wait
	if wait == 0 {
		wait = 3 * time.Minute
	}
	return explainCreate(ctx, c, c.Cluster.Create(s.Config, c.Settings.NodeImage, wait))
}

// explainCreate says when kind failed for want of its node image.
func explainCreate(ctx context.Context, c *Context, err error) error {
	image := c.Settings.NodeImage
	if err == nil || image == "" {
		return err
	}
	if ok, ierr := c.Docker.ImageExists(ctx, image); ierr == nil && !ok {
		return &NodeImageError{Image: image, Err: err}
	}
	return err
}

// DeleteCluster deletes the cluster when it exists.
type DeleteCluster struct{}

// Execute implements Step.
func (DeleteCluster) Execute(ctx context.Context, c *Context) (err error) {
	exists, err := c.Cluster.Exists(ctx)
	if err != nil || !exists {
		return err
	}
	c.Status.Start(fmt.Sprintf("Deleting cluster %q", c.Name()))
	defer func() { c.Status.End(err) }()
	return c.Cluster.Delete()
}
