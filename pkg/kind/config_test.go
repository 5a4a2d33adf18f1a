package kind

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLoadConfig(t *testing.T) {
	tests := []struct {
		name      string
		content   string
		wantErr   string
		wantNodes int
		patches   int
	}{
		{name: "no file", wantNodes: 1, patches: 1},
		{name: "user nodes and patches kept", content: `kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
- role: worker
containerdConfigPatches:
- |
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
`, wantNodes: 2, patches: 2},
		{name: "legacy mirrors rejected", content: `kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
containerdConfigPatches:
- |-
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."localhost:5001"]
    endpoint = ["http://kind-registry:5000"]
`, wantErr: "legacy"},
		{name: "unknown field", content: "kind: Cluster\nnodez: []\n", wantErr: "nodez"},
		{name: "wrong kind", content: "kind: Pod\n", wantErr: `kind is "Pod"`},
		{name: "wrong apiVersion", content: "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha3\n", wantErr: "not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := ""
			if tt.content != "" {
				path = filepath.Join(t.TempDir(), "kind.yaml")
				require.NoError(t, os.WriteFile(path, []byte(tt.content), 0o600))
			}
			cfg, err := LoadConfig(path)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Len(t, cfg.Nodes, tt.wantNodes)
			require.Len(t, cfg.ContainerdConfigPatches, tt.patches)
			assert.Equal(t, ContainerdPatch, cfg.ContainerdConfigPatches[tt.patches-1], "our patch comes last")
		})
	}
}

// TestContainerdPatch: the patch is TOML that sets the same search path under
// both plugin names, with CertsDir first and Docker's directory kept.
func TestContainerdPatch(t *testing.T) {
	var patch map[string]map[string]map[string]map[string]string
	_, err := toml.Decode(ContainerdPatch, &patch)
	require.NoError(t, err)
	want := map[string]string{"config_path": "/etc/containerd/certs.d:/etc/docker/certs.d"}
	assert.Equal(t, map[string]map[string]map[string]string{
		"io.containerd.grpc.v1.cri":   {"registry": want},
		"io.containerd.cri.v1.images": {"registry": want},
	}, patch["plugins"])
	rc, err := parseConfigDump(ContainerdPatch)
	require.NoError(t, err)
	ok, _ := rc.ReadsCertsDir()
	assert.True(t, ok)
}

func TestLoadConfigUnreadable(t *testing.T) {
	_, err := LoadConfig(filepath.Join(t.TempDir(), "missing.yaml"))
	assert.ErrorContains(t, err, "read kind config")
}
