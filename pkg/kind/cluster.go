package kind

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/kind/pkg/cluster"
	"sigs.k8s.io/kind/pkg/cluster/constants"
	kindlog "sigs.k8s.io/kind/pkg/log"

	"github.com/idpbuilder/idpbuilder/pkg/docker"
	"github.com/idpbuilder/idpbuilder/pkg/exec"
)

// Network is the docker network kind puts nodes on.
const Network = "kind"

// Labels kind puts on its node containers.
const (
	labelCluster = "io.x-k8s.kind.cluster"
	labelRole    = "io.x-k8s.kind.role"
)

// Cluster is one named kind cluster.
type Cluster struct {
	Name string
	// Docker lists the nodes and runs commands in them, as kind's own docker
	// provider does; creating and deleting go through the kind library.
	Docker *docker.Client
	logger kindlog.Logger
	// listNodes lists the nodes: from Docker, or a fixed list in tests.
	listNodes func(ctx context.Context) ([]Node, error)
}

// Node is one node of the cluster and the way to run programs in it.
type Node struct {
	Name string
	// Role is kind's: "control-plane" or "worker".
	Role string
	Exec exec.Cmder
}

func (n Node) String() string { return n.Name }

func (n Node) command(ctx context.Context, name string, args ...string) exec.Cmd {
	return n.Exec.Command(ctx, name, args...)
}

// New returns a handle on the cluster called name on d's engine; kind's
// progress lines go to logger.
func New(name string, d *docker.Client, logger kindlog.Logger) *Cluster {
	c := &Cluster{Name: name, Docker: d, logger: logger}
	c.listNodes = c.dockerNodes
	return c
}

// provider is kind's, for what only kind knows how to do: provisioning and
// deleting nodes along with their kubeconfig entries.
func (c *Cluster) provider() *cluster.Provider {
	opts := []cluster.ProviderOption{cluster.ProviderWithDocker()}
	if c.logger != nil {
		opts = append(opts, cluster.ProviderWithLogger(c.logger))
	}
	return cluster.NewProvider(opts...)
}

// Exists reports whether a cluster by this name has any node.
func (c *Cluster) Exists(ctx context.Context) (bool, error) {
	ns, err := c.Docker.ContainersWithLabel(ctx, labelCluster+"="+c.Name, labelRole)
	if err != nil {
		return false, fmt.Errorf("list kind clusters: %w", err)
	}
	return len(ns) > 0, nil
}

// Create creates the cluster and waits up to wait for its control plane.
func (c *Cluster) Create(cfg *v1alpha4.Cluster, nodeImage string, wait time.Duration) error {
	opts := []cluster.CreateOption{
		cluster.CreateWithV1Alpha4Config(cfg),
		cluster.CreateWithWaitForReady(wait),
		cluster.CreateWithDisplayUsage(false),
		cluster.CreateWithDisplaySalutation(false),
	}
	if nodeImage != "" {
		opts = append(opts, cluster.CreateWithNodeImage(nodeImage))
	}
	if err := c.provider().Create(c.Name, opts...); err != nil {
		return fmt.Errorf("create kind cluster %q: %w", c.Name, err)
	}
	return nil
}

// Delete deletes the cluster (a missing one is not an error).
func (c *Cluster) Delete() error {
	if err := c.provider().Delete(c.Name, ""); err != nil {
		return fmt.Errorf("delete kind cluster %q: %w", c.Name, err)
	}
	return nil
}

// Nodes lists the cluster's nodes (without the external load balancer), sorted by name.
func (c *Cluster) Nodes(ctx context.Context) ([]Node, error) {
	ns, err := c.listNodes(ctx)
	if err != nil {
		return nil, fmt.Errorf("list nodes of %q: %w", c.Name, err)
	}
	if len(ns) == 0 {
		return nil, fmt.Errorf("cluster %q has no nodes", c.Name)
	}
	slices.SortFunc(ns, func(a, b Node) int { return strings.Compare(a.Name, b.Name) })
	return ns, nil
}

// ControlPlane returns the first control-plane node.
func (c *Cluster) ControlPlane(ctx context.Context) (Node, error) {
	ns, err := c.Nodes(ctx)
	if err != nil {
		return Node{}, err
	}
	for _, n := range ns {
		if n.Role == constants.ControlPlaneNodeRoleValue {
			return n, nil
		}
	}
	return Node{}, fmt.Errorf("cluster %q has no control-plane node", c.Name)
}

func (c *Cluster) dockerNodes(ctx context.Context) ([]Node, error) {
	cs, err := c.Docker.ContainersWithLabel(ctx, labelCluster+"="+c.Name, labelRole)
	if err != nil {
		return nil, err
	}
	var ns []Node
	for _, ct := range cs {
		if ct.Label == constants.ExternalLoadBalancerNodeRoleValue {
			continue
		}
		ns = append(ns, Node{Name: ct.Name, Role: ct.Label, Exec: c.Docker.In(ct.Name, "node "+ct.Name)})
	}
	return ns, nil
}
