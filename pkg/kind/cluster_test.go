package kind

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
