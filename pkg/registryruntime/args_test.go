package registryruntime

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/idpbuilder/idpbuilder/pkg/auth"
	"github.com/idpbuilder/idpbuilder/pkg/config"
)

// parseServe reads `registry serve` arguments the way its command does:
// flags through the config table, so a flag the table does not know fails.
func parseServe(t *testing.T, args []string) config.Config {
	t.Helper()
	flags := map[string]string{}
	for i := 0; i < len(args); i++ {
		require.True(t, strings.HasPrefix(args[i], "--"), "a flag: %q in %v", args[i], args)
		name, value, ok := strings.Cut(args[i][2:], "=")
		if !ok {
			value = "true"
			if i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
				i++
				value = args[i]
			}
		}
		flags[name] = value
	}
	known := map[string]bool{}
	for _, s := range config.Settings() {
		known[s.Flag] = true
	}
	for f := range flags {
		require.True(t, known[f], "--%s is a setting of registry serve", f)
	}
	cfg, err := config.Load(config.Sources{Env: func(string) (string, bool) { return "", false }, Flags: flags})
	require.NoError(t, err)
	return cfg
}

// TestServeArgs: what both runtimes ask `registry serve` for is what it
// understands, with no request-rate limit (a cluster registry's clients are all
// on this machine but none on its loopback; failed logins stay limited).
func TestServeArgs(t *testing.T) {
	secure := Options{Cluster: "dev", HostPort: 5431, DataDir: "/d", StateDir: "/s", CertDir: "/c", TLSNames: []string{"dev-registry", "registry.local"},
		Htpasswd: "/h", Auth: auth.PolicyAll, ListenIP: "172.18.0.1"}

	args, err := (&Container{Opts: Options{Cluster: "dev", HostPort: 5431, Auth: auth.PolicyNone, Htpasswd: "/h"}}).serveArgs()
	require.NoError(t, err)
	assert.Equal(t, []string{"--addr", "0.0.0.0:5000", "--data-dir", "/var/lib/registry", "--rate-limit", "0"}, args, "no auth: no htpasswd either")

	args, err = (&Container{Opts: secure}).serveArgs()
	require.NoError(t, err)
	cfg := parseServe(t, args)
	assert.Equal(t, "0.0.0.0:5000", cfg.Registry.Addr)
	assert.Equal(t, "/var/lib/registry", cfg.Registry.DataDir)
	assert.True(t, cfg.Registry.TLS)
	assert.Equal(t, "/var/lib/idpbuilder/certs", cfg.Registry.CertDir)
	assert.Equal(t, []string{"dev-registry", "registry.local"}, cfg.Registry.TLSNames)
	assert.Equal(t, 5*time.Second, cfg.Registry.CertCheckInterval)
	assert.Equal(t, "/etc/idpbuilder/htpasswd", cfg.Registry.Htpasswd)
	assert.Equal(t, auth.PolicyAll, cfg.Registry.Auth)
	assert.Zero(t, cfg.Registry.RateLimit)

	args, err = (&Process{Opts: secure}).args()
	require.NoError(t, err)
	require.Equal(t, []string{"registry", "serve"}, args[:2])
	cfg = parseServe(t, args[2:])
	assert.Equal(t, "127.0.0.1:5431", cfg.Registry.Addr)
	assert.Equal(t, []string{"172.18.0.1:5431"}, cfg.Registry.ExtraAddrs)
	assert.Equal(t, "/d", cfg.Registry.DataDir)
	assert.Equal(t, "/c", cfg.Registry.CertDir)
	assert.Equal(t, "/h", cfg.Registry.Htpasswd)
	assert.Equal(t, "json", cfg.Log.Format)
	assert.Zero(t, cfg.Registry.RateLimit)
}

func TestModes(t *testing.T) {
	m, err := ParseMode("process")
	require.NoError(t, err)
	assert.Equal(t, ModeProcess, m)
	assert.Equal(t, ModeContainer, m.Other())
	assert.Equal(t, ModeProcess, ModeContainer.Other())
	_, err = ParseMode("vm")
	assert.ErrorContains(t, err, `"vm" is not a registry mode`)

	rt, err := New(ModeContainer, Options{Cluster: "dev"}, nil)
	require.NoError(t, err)
	assert.Equal(t, "dev-registry", rt.Describe())
	rt, err = New(ModeProcess, Options{StateDir: "/s"}, nil)
	require.NoError(t, err)
	assert.Equal(t, ModeProcess, rt.Mode())
	_, err = New("vm", Options{}, nil)
	assert.Error(t, err)
}
