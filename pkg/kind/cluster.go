package kind

import (
	"context"
	"errors"
	"fmt"
	osexec "os/exec"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/kind/pkg/cluster"
	"sigs.k8s.io/kind/pkg/cluster/constants"
	"sigs.k8s.io/kind/pkg/cluster/nodes"
	kindexec "sigs.k8s.io/kind/pkg/exec"
	kindlog "sigs.k8s.io/kind/pkg/log"

	"github.com/idpbuilder/idpbuilder/pkg/exec"
)

// Network is the docker network kind puts nodes on.
const Network = "kind"

// Cluster is one named kind cluster.
type Cluster struct {
	Name     string
	provider *cluster.Provider
	// listNodes lists the nodes: through kind's provider, or a fixed list in tests.
	listNodes func() ([]Node, error)
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
	c := &Cluster{Name: name, provider: cluster.NewProvider(opts...)}
	c.listNodes = c.providerNodes
	return c, nil
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

// KubeConfig returns the cluster's kubeconfig for use from this machine.
func (c *Cluster) KubeConfig() (string, error) {
	return c.provider.KubeConfig(c.Name, false)
}

// Nodes lists the cluster's nodes (without the external load balancer), sorted by name.
func (c *Cluster) Nodes() ([]Node, error) {
	ns, err := c.listNodes()
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
func (c *Cluster) ControlPlane() (Node, error) {
	ns, err := c.Nodes()
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

func (c *Cluster) providerNodes() ([]Node, error) {
	kns, err := c.provider.ListInternalNodes(c.Name)
	if err != nil {
		return nil, err
	}
	var ns []Node
	for _, kn := range kns {
		role, err := kn.Role()
		if err != nil {
			return nil, fmt.Errorf("role of node %s: %w", kn, err)
		}
		ns = append(ns, Node{Name: kn.String(), Role: role, Exec: exec.NewCmder("node "+kn.String(), nodeRunner(kn))})
	}
	return ns, nil
}

// nodeRunner runs commands in a node through kind's own handle on it (docker
// exec, or podman's), so node commands fail the same way local ones do.
func nodeRunner(kn nodes.Node) exec.Runner {
	return func(ctx context.Context, s exec.Spec) (int, error) {
		cmd := kn.CommandContext(ctx, s.Name, s.Args...).SetStdout(s.Stdout).SetStderr(s.Stderr)
		if s.Stdin != nil {
			cmd.SetStdin(s.Stdin)
		}
		if s.Env != nil {
			cmd.SetEnv(s.Env...)
		}
		err := cmd.Run()
		if err == nil {
			return 0, nil
		}
		// kind's RunError names its docker exec command line; ours names the
		// command in the node, so keep only the cause.
		if re := kindexec.RunErrorForError(err); re != nil && re.Inner != nil {
			err = re.Inner
		}
		var ee *osexec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), err
		}
		return -1, err
	}
}
