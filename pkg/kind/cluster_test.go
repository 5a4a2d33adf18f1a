package kind

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	kindexec "sigs.k8s.io/kind/pkg/exec"

	"github.com/idpbuilder/idpbuilder/pkg/exec"
	"github.com/idpbuilder/idpbuilder/pkg/exec/exectest"
)

// recordedCluster is a cluster named dev whose nodes' commands go to a recorder.
func recordedCluster(nodes ...string) (*Cluster, *exectest.Recorder) {
	rec := exectest.New()
	c := &Cluster{Name: "dev", listNodes: func() ([]Node, error) {
		var ns []Node
		for _, n := range nodes {
			role := "worker"
			if n == "dev-control-plane" {
				role = "control-plane"
			}
			ns = append(ns, Node{Name: n, Role: role, Exec: rec.At(n)})
		}
		return ns, nil
	}}
	return c, rec
}

func TestNodes(t *testing.T) {
	c, _ := recordedCluster("dev-worker2", "dev-control-plane", "dev-worker")
	ns, err := c.Nodes()
	require.NoError(t, err)
	var names []string
	for _, n := range ns {
		names = append(names, n.String())
	}
	assert.Equal(t, []string{"dev-control-plane", "dev-worker", "dev-worker2"}, names)
	cp, err := c.ControlPlane()
	require.NoError(t, err)
	assert.Equal(t, "dev-control-plane", cp.Name)

	workers, _ := recordedCluster("dev-worker")
	_, err = workers.ControlPlane()
	assert.ErrorContains(t, err, `cluster "dev" has no control-plane node`)

	empty, _ := recordedCluster()
	_, err = empty.Nodes()
	assert.ErrorContains(t, err, `cluster "dev" has no nodes`)
	_, err = empty.ControlPlane()
	assert.Error(t, err)

	broken := &Cluster{Name: "dev", listNodes: func() ([]Node, error) { return nil, errors.New("docker ps: boom") }}
	_, err = broken.Nodes()
	assert.ErrorContains(t, err, `list nodes of "dev": docker ps: boom`)
	assert.Error(t, broken.WireNodes(context.Background(), testRegistry))
	assert.Error(t, broken.ApplyObjects(context.Background(), testRegistry))
	assert.Error(t, broken.CheckWiringPossible(context.Background()))
	_, err = broken.Wiring(context.Background(), testRegistry)
	assert.Error(t, err)
}

// localKindNode is a kind node that is this machine: kind's own local Cmder
// runs its commands, so nodeRunner is tested against kind's real Cmd and
// RunError, with real processes.
type localKindNode struct{ *kindexec.LocalCmder }

func (localKindNode) String() string               { return "local" }
func (localKindNode) Role() (string, error)        { return "control-plane", nil }
func (localKindNode) IP() (string, string, error)  { return "127.0.0.1", "", nil }
func (localKindNode) SerialLogs(w io.Writer) error { return nil }

func TestNodeRunner(t *testing.T) {
	ctx := context.Background()
	n := Node{Name: "local", Exec: exec.NewCmder("node local", nodeRunner(localKindNode{&kindexec.LocalCmder{}}))}

	out, err := exec.OutputString(n.command(ctx, "sh", "-c", `cat; printf " $GREETING"`).SetStdin(strings.NewReader("in")).SetEnv("GREETING=hi"))
	require.NoError(t, err)
	assert.Equal(t, "in hi", out)

	err = n.command(ctx, "sh", "-c", "echo broken >&2; exit 3").Run()
	var e *exec.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, 3, e.ExitCode)
	assert.Equal(t, "broken", e.Stderr)
	assert.Equal(t, "on node local: sh -c echo broken >&2; exit 3: exit status 3: broken", err.Error(), "names the command in the node, not kind's")

	err = n.command(ctx, "idpbuilder-no-such-program").Run()
	require.ErrorAs(t, err, &e)
	assert.Equal(t, -1, e.ExitCode)
}
