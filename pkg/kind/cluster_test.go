package kind

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/idpbuilder/idpbuilder/pkg/docker"
	"github.com/idpbuilder/idpbuilder/pkg/exec"
	"github.com/idpbuilder/idpbuilder/pkg/exec/exectest"
)

// recordedCluster is a cluster named dev whose nodes' commands go to a recorder.
func recordedCluster(nodes ...string) (*Cluster, *exectest.Recorder) {
	rec := exectest.New()
	c := &Cluster{Name: "dev", listNodes: func(context.Context) ([]Node, error) {
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
	ns, err := c.Nodes(context.Background())
	require.NoError(t, err)
	var names []string
	for _, n := range ns {
		names = append(names, n.String())
	}
	assert.Equal(t, []string{"dev-control-plane", "dev-worker", "dev-worker2"}, names)
	cp, err := c.ControlPlane(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "dev-control-plane", cp.Name)

	workers, _ := recordedCluster("dev-worker")
	_, err = workers.ControlPlane(context.Background())
	assert.ErrorContains(t, err, `cluster "dev" has no control-plane node`)

	empty, _ := recordedCluster()
	_, err = empty.Nodes(context.Background())
	assert.ErrorContains(t, err, `cluster "dev" has no nodes`)
	_, err = empty.ControlPlane(context.Background())
	assert.Error(t, err)

	broken := &Cluster{Name: "dev", listNodes: func(context.Context) ([]Node, error) { return nil, errors.New("docker ps: boom") }}
	_, err = broken.Nodes(context.Background())
	assert.ErrorContains(t, err, `list nodes of "dev": docker ps: boom`)
	assert.Error(t, broken.WireNodes(context.Background(), testRegistry))
	assert.Error(t, broken.ApplyObjects(context.Background(), testRegistry))
	assert.Error(t, broken.CheckWiringPossible(context.Background()))
	_, err = broken.Wiring(context.Background(), testRegistry)
	assert.Error(t, err)
}

// TestDockerNodes: nodes are the kind-labelled containers of the cluster, as
// docker lists them, without the external load balancer; commands in them go
// through docker exec.
func TestDockerNodes(t *testing.T) {
	ctx := context.Background()
	rec := exectest.New()
	c := New("dev", &docker.Client{Exec: rec}, nil)
	rec.On("docker", "ps").Reply(
		exectest.OK("dev-worker\tworker\ndev-external-load-balancer\texternal-load-balancer\ndev-control-plane\tcontrol-plane\n"),
		exectest.OK(""),
		exectest.Fail(1, "Cannot connect to the Docker daemon"))
	rec.On("docker", "exec", "--privileged", "dev-worker", "cat").Reply(exectest.OK("hello"))

	ns, err := c.Nodes(ctx)
	require.NoError(t, err)
	require.Len(t, ns, 2)
	assert.Equal(t, Node{Name: "dev-control-plane", Role: "control-plane"}, Node{Name: ns[0].Name, Role: ns[0].Role})
	assert.Equal(t, "worker", ns[1].Role)
	out, err := exec.OutputString(ns[1].command(ctx, "cat", "/f"))
	require.NoError(t, err)
	assert.Equal(t, "hello", out)
	assert.Equal(t, `docker ps --all --filter label=io.x-k8s.kind.cluster=dev --format {{.Names}}\t{{.Label "io.x-k8s.kind.role"}}`, rec.Lines()[0])
	assert.Equal(t, "docker exec --privileged dev-worker cat /f", rec.Lines()[1])

	ok, err := c.Exists(ctx)
	require.NoError(t, err)
	assert.False(t, ok, "no container has the label")
	_, err = c.Exists(ctx)
	assert.ErrorContains(t, err, "list kind clusters")
}
