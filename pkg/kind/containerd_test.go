package kind

import (
	"context"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/idpbuilder/idpbuilder/pkg/exec/exectest"
)

// The dumps in testdata are `containerd config dump` of the two node images the
// e2e suite runs on (see testdata/README.md): containerd 1.6 prints double
// quotes and the old plugin name, 2.x single quotes and the new one.
func readDump(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	require.NoError(t, err)
	return string(b)
}

func TestParseConfigDump(t *testing.T) {
	tests := []struct {
		name string
		dump string
		want RegistryConfig
	}{
		{name: "containerd 1.6 with our patch", dump: readDump(t, "dump-1.6-patched.toml"), want: RegistryConfig{ConfigPath: ConfigPath}},
		{name: "containerd 1.6 plain kind", dump: readDump(t, "dump-1.6-plain.toml")},
		{name: "containerd 2.4 with our patch", dump: readDump(t, "dump-2.4-patched.toml"), want: RegistryConfig{ConfigPath: ConfigPath}},
		{name: "containerd 2.4 plain kind", dump: readDump(t, "dump-2.4-plain.toml")},
		{name: "containerd 2.4, config version 4, old key only: ignored", dump: readDump(t, "dump-2.4-v4-oldkey.toml")},
		{name: "containerd 2.4, config version 4, with our patch", dump: readDump(t, "dump-2.4-v4-patched.toml"), want: RegistryConfig{ConfigPath: ConfigPath}},
		{name: "legacy mirrors", dump: `version = 2
[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = ""
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."localhost:5001"]
    endpoint = ["http://kind-registry:5000"]
`, want: RegistryConfig{Mirrors: true}},
		{name: "no CRI plugin at all", dump: "version = 3\n[plugins.'io.containerd.gc.v1.scheduler']\n  pause_threshold = 0.02\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseConfigDump(tt.dump)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
	_, err := parseConfigDump("[plugins\n")
	assert.ErrorContains(t, err, "parse containerd config dump")
}

func TestReadsCertsDir(t *testing.T) {
	tests := []struct {
		name   string
		rc     RegistryConfig
		want   bool
		reason string
	}{
		{name: "our patch", rc: RegistryConfig{Version: "1.6.20~ds1", ConfigPath: ConfigPath}, want: true},
		{name: "certs.d alone", rc: RegistryConfig{Version: "v2.0.0", ConfigPath: CertsDir}, want: true},
		{name: "another path", rc: RegistryConfig{Version: "v2.4.2", ConfigPath: "/etc/other/certs.d"}, reason: "containerd reads hosts.toml from /etc/other/certs.d, not from /etc/containerd/certs.d"},
		{name: "a prefix of certs.d is not it", rc: RegistryConfig{Version: "v2.4.2", ConfigPath: "/etc/containerd/certs.d/sub:/etc/docker/certs.d"}, reason: "reads hosts.toml from"},
		{name: "legacy mirrors", rc: RegistryConfig{Version: "v2.4.2", Mirrors: true}, reason: "legacy registry.mirrors"},
		{name: "2.2 defaults to certs.d", rc: RegistryConfig{Version: "v2.2.0"}, want: true},
		{name: "2.4 defaults to certs.d", rc: RegistryConfig{Version: "v2.4.2"}, want: true},
		{name: "3.0 too", rc: RegistryConfig{Version: "3.0.0"}, want: true},
		{name: "2.1 has no default", rc: RegistryConfig{Version: "v2.1.5"}, reason: "containerd v2.1.5 has no registry config_path"},
		{name: "1.6 has no default", rc: RegistryConfig{Version: "1.6.20~ds1"}, reason: "containerd 1.6.20~ds1 has no registry config_path"},
		{name: "unknown version", rc: RegistryConfig{Version: "devel"}, reason: "containerd devel has no registry config_path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, why := tt.rc.ReadsCertsDir()
			assert.Equal(t, tt.want, ok)
			if tt.want {
				assert.Empty(t, why)
			} else {
				assert.Contains(t, why, tt.reason)
			}
		})
	}
}

const (
	version16 = "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+b1\n"
	version24 = "containerd github.com/containerd/containerd/v2 v2.4.2 b6b2bd7e4b9a1e5c1a0c6d4a5d3b0e2f1c6e9d8a\n"
)

func TestCheckWiringPossible(t *testing.T) {
	tests := []struct {
		name           string
		dump, version  string
		wantForeignOn  string // node reported, "" when the cluster can be wired
		wantReason     string
		wantOtherError string
	}{
		{name: "made by idpbuilder, containerd 1.6", dump: readDump(t, "dump-1.6-patched.toml"), version: version16},
		{name: "made by idpbuilder, containerd 2.4", dump: readDump(t, "dump-2.4-patched.toml"), version: version24},
		{name: "plain kind, containerd 2.4 reads certs.d by default", dump: readDump(t, "dump-2.4-plain.toml"), version: version24},
		{name: "plain kind, containerd 1.6", dump: readDump(t, "dump-1.6-plain.toml"), version: version16,
			wantForeignOn: "dev-control-plane", wantReason: "containerd 1.6.20~ds1 has no registry config_path"},
		{name: "a config_path without certs.d", dump: "version = 3\n[plugins.'io.containerd.cri.v1.images'.registry]\n  config_path = '/etc/other'\n", version: version24,
			wantForeignOn: "dev-control-plane", wantReason: "reads hosts.toml from /etc/other"},
		{name: "dump fails", dump: "", wantOtherError: "read containerd's configuration"},
		{name: "dump unreadable", dump: "[[", version: version24, wantOtherError: "node dev-control-plane: parse containerd config dump"},
		{name: "version fails", dump: readDump(t, "dump-2.4-plain.toml"), wantOtherError: "read containerd's version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, rec := recordedCluster("dev-control-plane", "dev-worker")
			if tt.dump == "" {
				rec.On("containerd", "config", "dump").Reply(exectest.Fail(1, "containerd: command not found"))
			} else {
				rec.On("containerd", "config", "dump").Reply(exectest.OK(tt.dump))
			}
			if tt.version == "" {
				rec.On("containerd", "--version").Reply(exectest.Fail(127, "not found"))
			} else {
				rec.On("containerd", "--version").Reply(exectest.OK(tt.version))
			}
			err := c.CheckWiringPossible(context.Background())
			switch {
			case tt.wantOtherError != "":
				assert.ErrorContains(t, err, tt.wantOtherError)
			case tt.wantForeignOn == "":
				require.NoError(t, err)
				assert.Equal(t, []string{
					"dev-control-plane: containerd config dump", "dev-control-plane: containerd --version",
					"dev-worker: containerd config dump", "dev-worker: containerd --version",
				}, rec.Lines())
			default:
				var fe *ForeignClusterError
				require.ErrorAs(t, err, &fe)
				assert.Equal(t, "dev", fe.Cluster)
				assert.Equal(t, tt.wantForeignOn, fe.Node)
				assert.Contains(t, fe.Reason, tt.wantReason)
				assert.Contains(t, err.Error(), `cluster "dev" exists but cannot pull from the registry: on node dev-control-plane, containerd`)
			}
		})
	}
}

func TestContainerdRegistryOddVersion(t *testing.T) {
	c, rec := recordedCluster("dev-control-plane")
	rec.On("containerd", "config", "dump").Reply(exectest.OK(readDump(t, "dump-2.4-plain.toml")))
	rec.On("containerd", "--version").Reply(exectest.OK("v2.4.2\n"))
	ns, err := c.Nodes(context.Background())
	require.NoError(t, err)
	rc, err := c.ContainerdRegistry(context.Background(), ns[0])
	require.NoError(t, err)
	assert.Equal(t, "v2.4.2", rc.Version)
}
