package state

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/idpbuilder/idpbuilder/pkg/auth"
	"github.com/idpbuilder/idpbuilder/pkg/registryruntime"
)

func TestLayout(t *testing.T) {
	l := NewLayout("/s", "dev")
	assert.Equal(t, "/s/clusters/dev", l.Dir)
	assert.Equal(t, "/s/clusters/dev/registry", l.DataDir())
	assert.Equal(t, "/s/clusters/dev/certs", l.CertDir())
	assert.Equal(t, "/s/clusters/dev/certs/ca.crt", l.CAFile())
	assert.Equal(t, "/s/clusters/dev/registry.json", l.SettingsFile())
	assert.Equal(t, "/s/clusters/dev/node-pull.secret", l.NodeSecretFile())
}

var defaults = Settings{Mode: registryruntime.ModeContainer, Port: 5001, Auth: auth.PolicyNone, InClusterName: "registry.local", Htpasswd: "/h"}

func TestResolve(t *testing.T) {
	created := Settings{Mode: registryruntime.ModeProcess, Port: 5431, TLS: true, Auth: auth.PolicyAll, InClusterName: "reg.dev",
		Htpasswd: "/users", NodeImage: "kindest/node:v1", KindConfig: "/kind.yaml"}
	tests := []struct {
		name  string
		saved Settings
		found bool
		given Given
		want  Settings
	}{
		{name: "a new cluster: as given", given: Given{Settings: defaults}, want: defaults},
		{name: "an existing cluster: as created", saved: created, found: true, given: Given{Settings: defaults}, want: created},
		{
			name: "chosen settings win", saved: created, found: true,
			given: Given{Settings: Settings{Mode: registryruntime.ModeContainer, Port: 6000, TLS: false, Auth: auth.PolicyPush,
				InClusterName: "r.x", Htpasswd: "/h2", NodeImage: "n2", KindConfig: "/k2"},
				Chosen: Fields{Mode: true, Port: true, TLS: true, Auth: true, InClusterName: true, Htpasswd: true, NodeImage: true, KindConfig: true}},
			want: Settings{Mode: registryruntime.ModeContainer, Port: 6000, Auth: auth.PolicyPush, InClusterName: "r.x", Htpasswd: "/h2", NodeImage: "n2", KindConfig: "/k2"},
		},
		{
			name: "a file from an older idpbuilder: what it lacks is as given", found: true,
			saved: Settings{Mode: registryruntime.ModeProcess, TLS: true},
			given: Given{Settings: defaults},
			want:  Settings{Mode: registryruntime.ModeProcess, Port: 5001, TLS: true, Auth: auth.PolicyNone, InClusterName: "registry.local", Htpasswd: "/h"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, Resolve(tt.saved, tt.found, tt.given))
		})
	}
}

func TestLoadSave(t *testing.T) {
	path := filepath.Join(t.TempDir(), "clusters", "dev", "registry.json")
	_, found, err := Load(path)
	require.NoError(t, err)
	assert.False(t, found)

	s := defaults
	s.Port, s.NodeImage = 5431, "kind-offline/node:v1.34.4"
	require.NoError(t, Save(path, s))
	got, found, err := Load(path)
	require.NoError(t, err)
	assert.True(t, found)
	assert.Equal(t, s, got)
	info, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	// What idpbuilder wrote before the port was kept still reads.
	require.NoError(t, os.WriteFile(path, []byte(`{"mode": "container", "tls": false, "auth": "none"}`), 0o600))
	got, found, err = Load(path)
	require.NoError(t, err)
	assert.True(t, found)
	assert.Equal(t, Settings{Mode: registryruntime.ModeContainer, Auth: auth.PolicyNone}, got)
}

// TestLoadCorrupt: a settings file that cannot be used is an error naming it,
// never silently replaced by defaults.
func TestLoadCorrupt(t *testing.T) {
	for name, content := range map[string]string{
		"not JSON":       `{"mode": "container",`,
		"unknown field":  `{"mode": "container", "colour": "blue"}`,
		"unknown mode":   `{"mode": "vm"}`,
		"unknown policy": `{"auth": "some"}`,
		"not a port":     `{"port": 70000}`,
		"wrong type":     `{"port": "5001"}`,
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "registry.json")
			require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
			_, _, err := Load(path)
			var ce *CorruptError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, path, ce.Path)
			assert.Contains(t, err.Error(), "the cluster's registry settings in "+path+" cannot be read")
		})
	}
	dir := t.TempDir() // a directory where the file should be: unreadable
	_, _, err := Load(dir)
	var ce *CorruptError
	assert.ErrorAs(t, err, &ce)

	blocker := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(blocker, nil, 0o600))
	assert.Error(t, Save(filepath.Join(blocker, "registry.json"), defaults))
}

func TestNodeUser(t *testing.T) {
	assert.Equal(t, "idpbuilder-nodes-dev", NodeUser("dev"))
	assert.True(t, IsNodeUser("idpbuilder-nodes-dev"))
	assert.False(t, IsNodeUser("alice"))
	assert.True(t, Settings{Auth: auth.PolicyPush}.AuthOn())
	assert.False(t, Settings{Auth: auth.PolicyNone}.AuthOn())
	assert.False(t, Settings{}.AuthOn())
}

func TestNodeSecret(t *testing.T) {
	l := NewLayout(t.TempDir(), "dev")
	_, err := NodeSecret(l)
	assert.ErrorContains(t, err, "nodes' pull credentials")

	first, err := EnsureNodeSecret(l)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, len(first), minSecret)
	again, err := EnsureNodeSecret(l)
	require.NoError(t, err)
	assert.Equal(t, first, again, "kept")
	read, err := NodeSecret(l)
	require.NoError(t, err)
	assert.Equal(t, first, read)

	require.NoError(t, os.WriteFile(l.NodeSecretFile(), []byte("short"), 0o600))
	renewed, err := EnsureNodeSecret(l)
	require.NoError(t, err)
	assert.NotEqual(t, "short", renewed, "too short to have been made here: replaced")

	blocked := Layout{Dir: filepath.Join(l.NodeSecretFile(), "x")}
	_, err = EnsureNodeSecret(blocked)
	assert.Error(t, err)
}
