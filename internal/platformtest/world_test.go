package platformtest

import (
	"context"
	"debug/elf"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/idpbuilder/idpbuilder/pkg/docker"
	"github.com/idpbuilder/idpbuilder/pkg/exec"
	"github.com/idpbuilder/idpbuilder/pkg/exec/exectest"
	"github.com/idpbuilder/idpbuilder/pkg/registryclient"
)

// TestWorld: the world answers as a cluster with one node and a running
// registry container would, and its registry is real.
func TestWorld(t *testing.T) {
	w := New(t, "dev", Options{})
	ctx := context.Background()
	d := &docker.Client{Exec: w.Rec}

	nodes, err := d.ContainersWithLabel(ctx, "io.x-k8s.kind.cluster=dev", "io.x-k8s.kind.role")
	require.NoError(t, err)
	assert.Equal(t, []docker.ListedContainer{{Name: "dev-control-plane", Label: "control-plane"}}, nodes)

	ct, err := d.InspectContainer(ctx, "dev-registry")
	require.NoError(t, err)
	assert.Nil(t, ct, "not run yet")
	ct, err = d.InspectContainer(ctx, "dev-registry")
	require.NoError(t, err)
	assert.True(t, ct.Running)
	assert.Equal(t, "172.18.0.3", ct.Networks["kind"])

	node := d.In(w.Node(), "node "+w.Node())
	out, err := exec.OutputString(node.Command(ctx, "containerd", "--version"))
	require.NoError(t, err)
	assert.Contains(t, out, "v2.4.2")
	w.OnNode("false").Reply(exectest.Fail(1, "no"))
	assert.Error(t, node.Command(ctx, "false").Run())
	assert.Equal(t, []string{"containerd --version", "false"}, w.NodeCalls())

	require.NoError(t, registryclient.Ready(ctx, nil, "http://"+w.Registry.Addr()))
	assert.NotZero(t, w.Port)

	f, err := elf.Open(w.Binary)
	require.NoError(t, err)
	defer f.Close()
	for _, p := range f.Progs {
		assert.NotEqual(t, elf.PT_INTERP, p.Type, "static")
	}

	empty := New(t, "other", Options{NoCluster: true, StateDir: t.TempDir()})
	nodes, err = (&docker.Client{Exec: empty.Rec}).ContainersWithLabel(ctx, "x", "y")
	require.NoError(t, err)
	assert.Empty(t, nodes)
	_, err = (&docker.Client{Exec: empty.Rec}).InspectContainer(ctx, "other-registry")
	require.NoError(t, err)
	ct, err = (&docker.Client{Exec: empty.Rec}).InspectContainer(ctx, "other-registry")
	require.NoError(t, err)
	assert.Equal(t, "running", ct.Status)
	_ = empty.Container(false)
}
