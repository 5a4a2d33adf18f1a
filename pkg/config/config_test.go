package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

func TestLoadPrecedence(t *testing.T) {
	file := writeFile(t, `
registry:
  addr: 127.0.0.1:7001
  dataDir: /from/file
  shutdownTimeout: 11s
log:
  level: debug
`)
	tests := []struct {
		name      string
		env       map[string]string
		flags     map[string]string
		file      string
		wantAddr  string
		wantDir   string
		wantTO    time.Duration
		wantLevel string
	}{
		{
			name: "defaults", env: map[string]string{"HOME": "/home/u"},
			wantAddr: "127.0.0.1:5001", wantDir: "/home/u/.local/state/idpbuilder/registry", wantTO: 30 * time.Second, wantLevel: "info",
		},
		{
			name: "XDG state dir", env: map[string]string{"HOME": "/home/u", "XDG_STATE_HOME": "/xdg"},
			wantAddr: "127.0.0.1:5001", wantDir: "/xdg/idpbuilder/registry", wantTO: 30 * time.Second, wantLevel: "info",
		},
		{
			name: "file over defaults", file: file, env: map[string]string{"HOME": "/home/u"},
			wantAddr: "127.0.0.1:7001", wantDir: "/from/file", wantTO: 11 * time.Second, wantLevel: "debug",
		},
		{
			name: "env over file", file: file,
			env:      map[string]string{"IDPBUILDER_ADDR": "127.0.0.1:8001", "IDPBUILDER_SHUTDOWN_TIMEOUT": "2m"},
			wantAddr: "127.0.0.1:8001", wantDir: "/from/file", wantTO: 2 * time.Minute, wantLevel: "debug",
		},
		{
			name: "flag over env over file", file: file,
			env:      map[string]string{"IDPBUILDER_ADDR": "127.0.0.1:8001", "IDPBUILDER_DATA_DIR": "/from/env"},
			flags:    map[string]string{"addr": "0.0.0.0:9001", "log-level": "WARN"},
			wantAddr: "0.0.0.0:9001", wantDir: "/from/env", wantTO: 11 * time.Second, wantLevel: "warn",
		},
		{
			name: "default file is read when present", env: map[string]string{"XDG_CONFIG_HOME": filepath.Dir(filepath.Dir(mustDefaultFile(t))), "HOME": "/h"},
			wantAddr: "127.0.0.1:6543", wantDir: "/h/.local/state/idpbuilder/registry", wantTO: 30 * time.Second, wantLevel: "info",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load(Sources{File: tt.file, Env: envMap(tt.env), Flags: tt.flags})
			require.NoError(t, err)
			assert.Equal(t, tt.wantAddr, cfg.Registry.Addr)
			assert.Equal(t, tt.wantDir, cfg.Registry.DataDir)
			assert.Equal(t, tt.wantTO, cfg.Registry.ShutdownTimeout)
			assert.Equal(t, tt.wantLevel, cfg.Log.Level)
		})
	}
}

// mustDefaultFile writes $XDG_CONFIG_HOME/idpbuilder/config.yaml in a temp dir and returns its path.
func mustDefaultFile(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "idpbuilder")
	require.NoError(t, os.MkdirAll(dir, 0o700))
	p := filepath.Join(dir, "config.yaml")
	require.NoError(t, os.WriteFile(p, []byte("registry:\n  addr: 127.0.0.1:6543\n"), 0o600))
	return p
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name    string
		file    string // file content; "" means no file
		env     map[string]string
		flags   map[string]string
		wantErr []string // substrings the message must contain
	}{
		{name: "unknown key names key and line", file: "registry:\n  adress: 1.2.3.4:1\n", wantErr: []string{"config.yaml:2", "registry.adress", "unknown key", "registry.addr"}},
		{name: "unknown section", file: "storage:\n  s3: {}\n", wantErr: []string{"config.yaml:1", "storage", "unknown key"}},
		{name: "bad duration in file", file: "registry:\n  shutdownTimeout: soon\n", wantErr: []string{"config.yaml:2", "registry.shutdownTimeout", `"soon" is not a duration`}},
		{name: "negative duration", file: "registry:\n  shutdownTimeout: -5s\n", wantErr: []string{"registry.shutdownTimeout", "must be positive"}},
		{name: "not yaml", file: "registry: [\n", wantErr: []string{"config.yaml", "not valid YAML"}},
		{name: "top level list", file: "- a\n- b\n", wantErr: []string{"top level must be a mapping"}},
		{name: "section given a scalar", file: "registry: 5\n", wantErr: []string{"registry", "is a section"}},
		{name: "setting given a list", file: "registry:\n  addr: [a, b]\n", wantErr: []string{"registry.addr", "needs a single value"}},
		{name: "bad addr in env names the variable", env: map[string]string{"IDPBUILDER_ADDR": "localhost"}, wantErr: []string{"env IDPBUILDER_ADDR", "registry.addr", "not host:port"}},
		{name: "bad port", flags: map[string]string{"addr": "127.0.0.1:99999"}, wantErr: []string{"flag --addr", "port \"99999\""}},
		{name: "bad host", flags: map[string]string{"addr": "bad_host!:5001"}, wantErr: []string{"flag --addr", "neither an IP address nor a host name"}},
		{name: "bad log level", flags: map[string]string{"log-level": "loud"}, wantErr: []string{"flag --log-level", `"loud" is not a log level`}},
		{name: "bad duration flag", flags: map[string]string{"shutdown-timeout": "10"}, wantErr: []string{"flag --shutdown-timeout", `"10" is not a duration`}},
		{name: "purge age too small", flags: map[string]string{"upload-purge-age": "1s"}, wantErr: []string{"registry.uploadPurgeAge", "at least 1m"}},
		{name: "empty data dir", env: map[string]string{"IDPBUILDER_DATA_DIR": " "}, wantErr: []string{"env IDPBUILDER_DATA_DIR", "must not be empty"}},
		{name: "bad cluster name", flags: map[string]string{"name": "My_Cluster"}, wantErr: []string{"flag --name", "not a valid cluster name"}},
		{name: "bad registry port", env: map[string]string{"IDPBUILDER_REGISTRY_PORT": "0"}, wantErr: []string{"env IDPBUILDER_REGISTRY_PORT", "not a port"}},
		{name: "bad in-cluster name", file: "cluster:\n  inClusterName: reg_istry\n", wantErr: []string{"cluster.inClusterName", "not a host name"}},
		{name: "bad quota", flags: map[string]string{"quota": "20G"}, wantErr: []string{"flag --quota", "registry.quota", `unit "G" is ambiguous`}},
		{name: "bad repo quota in file", file: "registry:\n  repoQuota: lots\n", wantErr: []string{"config.yaml:2", "registry.repoQuota", `"lots" is not a size`}},
		{name: "several errors reported together", flags: map[string]string{"addr": "x", "log-format": "xml"}, wantErr: []string{"flag --addr", "flag --log-format"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := Sources{Env: envMap(tt.env), Flags: tt.flags}
			if tt.file != "" {
				src.File = writeFile(t, tt.file)
			}
			_, err := Load(src)
			require.Error(t, err)
			assert.True(t, IsConfigError(err), "want a config error, got %T", err)
			for _, w := range tt.wantErr {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestLoadMissingExplicitFile(t *testing.T) {
	_, err := Load(Sources{File: filepath.Join(t.TempDir(), "nope.yaml")})
	require.Error(t, err)
	assert.True(t, IsConfigError(err))
	assert.Contains(t, err.Error(), "nope.yaml")
}

func TestEnvNames(t *testing.T) {
	got := map[string]string{}
	for _, s := range Settings() {
		got[s.Flag] = s.Env()
	}
	assert.Equal(t, "IDPBUILDER_DATA_DIR", got["data-dir"])
	assert.Equal(t, "IDPBUILDER_ADDR", got["addr"])
	assert.Equal(t, "IDPBUILDER_LOG_LEVEL", got["log-level"])
	assert.Equal(t, "IDPBUILDER_NODE_IMAGE", got["node-image"])
}

func TestQuotaSettings(t *testing.T) {
	tests := []struct {
		name            string
		src             Sources
		quota, perRepo  int64
		getQ, getPerRep string
	}{
		{name: "none by default", getQ: "", getPerRep: ""},
		{name: "flags", src: Sources{Flags: map[string]string{"quota": "20GiB", "repo-quota": "1.5GiB"}}, quota: 20 << 30, perRepo: 3 << 29, getQ: "20GiB", getPerRep: "1536MiB"},
		{name: "env", src: Sources{Env: envMap(map[string]string{"IDPBUILDER_QUOTA": "500MB", "IDPBUILDER_REPO_QUOTA": "0"})}, quota: 500_000_000, getQ: "500MB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.src.Env == nil {
				tt.src.Env = envMap(nil)
			}
			cfg, err := Load(tt.src)
			require.NoError(t, err)
			assert.Equal(t, tt.quota, cfg.Registry.Quota)
			assert.Equal(t, tt.perRepo, cfg.Registry.RepoQuota)
			for _, s := range Settings() {
				switch s.Flag {
				case "quota":
					assert.Equal(t, tt.getQ, s.Get(&cfg))
				case "repo-quota":
					assert.Equal(t, tt.getPerRep, s.Get(&cfg))
				}
			}
		})
	}
	file := writeFile(t, "registry:\n  quota: 2TiB\n  repoQuota: 10 GiB\n")
	cfg, err := Load(Sources{File: file, Env: envMap(nil)})
	require.NoError(t, err)
	assert.Equal(t, int64(2<<40), cfg.Registry.Quota)
	assert.Equal(t, int64(10<<30), cfg.Registry.RepoQuota)
}

func TestRelativeDataDirBecomesAbsolute(t *testing.T) {
	cfg, err := Load(Sources{Flags: map[string]string{"data-dir": "rel/dir"}})
	require.NoError(t, err)
	assert.True(t, filepath.IsAbs(cfg.Registry.DataDir), cfg.Registry.DataDir)
}
