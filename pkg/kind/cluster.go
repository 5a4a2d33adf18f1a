package kind

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/kind/pkg/cluster"
	"sigs.k8s.io/kind/pkg/cluster/nodes"
	"sigs.k8s.io/kind/pkg/cluster/nodeutils"
	kindlog "sigs.k8s.io/kind/pkg/log"
)

// Network is the docker network kind puts nodes on.
const Network = "kind"

// Cluster is one named kind cluster.
type Cluster struct {
	Name     string
	provider *cluster.Provider
}

// New returns a handle on the cluster called name, with kind's auto-detected
// provider (KIND_EXPERIMENTAL_PROVIDER is honoured) and logger.
func New(name string, logger kindlog.Logger) (*Cluster, error) {
	opt, err := cluster.DetectNodeProvider()
	if err != nil {
		return nil, fmt.Errorf("detect container runtime for kind: %w", err)
	}
	opts := []cluster.ProviderOption{cluster.ProviderWithLogger(logger)}
	if opt != nil {
		opts = append(opts, opt)
	}
	return &Cluster{Name: name, provider: cluster.NewProvider(opts...)}, nil
}

// Exists reports whether a cluster by this name exists.
func (c *Cluster) Exists() (bool, error) {
	names, err := c.provider.List()
	if err != nil {
		return false, fmt.Errorf("list kind clusters: %w", err)
	}
	return slices.Contains(names, c.Name), nil
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
	if err := c.provider.Create(c.Name, opts...); err != nil {
		return fmt.Errorf("create kind cluster %q: %w", c.Name, err)
	}
	return nil
}

// Delete deletes the cluster (a missing one is not an error).
func (c *Cluster) Delete() error {
	if err := c.provider.Delete(c.Name, ""); err != nil {
		return fmt.Errorf("delete kind cluster %q: %w", c.Name, err)
	}
	return nil
}

// Nodes lists the cluster's nodes (without the external load balancer).
func (c *Cluster) Nodes() ([]nodes.Node, error) {
	ns, err := c.provider.ListInternalNodes(c.Name)
	if err != nil {
		return nil, fmt.Errorf("list nodes of %q: %w", c.Name, err)
	}
	if len(ns) == 0 {
		return nil, fmt.Errorf("cluster %q has no nodes", c.Name)
	}
	return ns, nil
}

// ControlPlane returns the first control-plane node.
func (c *Cluster) ControlPlane() (nodes.Node, error) {
	ns, err := c.Nodes()
	if err != nil {
		return nil, err
	}
	cps, err := nodeutils.ControlPlaneNodes(ns)
	if err != nil || len(cps) == 0 {
		return nil, fmt.Errorf("cluster %q has no control-plane node: %v", c.Name, err)
	}
	return cps[0], nil
}

// KubeConfig returns the cluster's kubeconfig for use from this machine.
func (c *Cluster) KubeConfig() (string, error) {
	return c.provider.KubeConfig(c.Name, false)
}

// ErrForeignConfig means an existing cluster was not made with the registry wiring.
var ErrForeignConfig = errors.New("the cluster exists but its containerd does not read " + CertsDir)

// CheckWiringPossible verifies every node's containerd has config_path set, which
// only a cluster created with our patch has (containerd reads it at start only).
func (c *Cluster) CheckWiringPossible(ctx context.Context) error {
	ns, err := c.Nodes()
	if err != nil {
		return err
	}
	for _, n := range ns {
		out, err := nodeOutput(ctx, n, nil, "cat", "/etc/containerd/config.toml")
		if err != nil {
			return err
		}
		if !strings.Contains(out, `config_path = "`+CertsDir+`"`) {
			return fmt.Errorf("%w (node %s): it was not created by idpbuilder; recreate it with `idpbuilder create --name %s --recreate`", ErrForeignConfig, n, c.Name)
		}
	}
	return nil
}

// nodeOutput runs a command in a node and returns its stdout; errors carry stderr.
func nodeOutput(ctx context.Context, n nodes.Node, stdin io.Reader, name string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := n.CommandContext(ctx, name, args...).SetStdout(&stdout).SetStderr(&stderr)
	if stdin != nil {
		cmd.SetStdin(stdin)
	}
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		return stdout.String(), fmt.Errorf("on node %s: %s %s: %w: %s", n, name, strings.Join(args, " "), err, msg)
	}
	return stdout.String(), nil
}
