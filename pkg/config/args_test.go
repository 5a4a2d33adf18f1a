package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestArgsRoundTrip: what Args renders, `registry serve` parses back to the
// same values, for every setting of the table.
func TestArgsRoundTrip(t *testing.T) {
	want := Default(envMap(map[string]string{"HOME": "/home/u"}))
	want.Registry.Addr = "0.0.0.0:5000"
	want.Registry.ExtraAddrs = []string{"172.18.0.1:5001", "127.0.0.2:5001"}
	want.Registry.TLS = true
	want.Registry.TLSNames = []string{"dev-registry", "registry.local"}
	want.Registry.Auth = "all"
	want.Registry.RateLimit = 0
	want.Registry.CertCheckInterval = 5 * time.Second
	want.Registry.Quota = 20 << 30
	want.Cluster.RegistryTLS = true

	var keys []string
	for _, s := range Settings() {
		keys = append(keys, s.Key)
	}
	args, err := want.Args(keys...)
	require.NoError(t, err)

	flags := map[string]string{}
	for i := 0; i < len(args); i++ {
		name, value, hasValue := cutFlag(args[i])
		if !hasValue {
			value = "true"
			if i+1 < len(args) && !isFlag(args[i+1]) {
				i++
				value = args[i]
			}
		}
		flags[name] = value
	}
	got, err := Load(Sources{Env: envMap(map[string]string{"HOME": "/home/u"}), Flags: flags})
	require.NoError(t, err)
	got.Origins = nil
	assert.Equal(t, want, got)
}

func cutFlag(arg string) (name, value string, hasValue bool) {
	arg = arg[2:]
	for i := range arg {
		if arg[i] == '=' {
			return arg[:i], arg[i+1:], true
		}
	}
	return arg, "", false
}

func isFlag(s string) bool { return len(s) > 2 && s[:2] == "--" }

func TestArgs(t *testing.T) {
	c := Default(envMap(nil))
	c.Registry.Addr = "127.0.0.1:5001"
	c.Registry.RateLimit = 0
	tests := []struct {
		name string
		keys []string
		want []string
	}{
		{name: "in the order asked", keys: []string{"registry.rateLimit", "registry.addr"}, want: []string{"--rate-limit", "0", "--addr", "127.0.0.1:5001"}},
		{name: "a bool off", keys: []string{"registry.tls"}, want: []string{"--tls=false"}},
		{name: "an empty value is left out", keys: []string{"registry.tlsNames", "registry.extraAddrs"}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.Args(tt.keys...)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
	c.Registry.TLS = true
	got, err := c.Args("registry.tls")
	require.NoError(t, err)
	assert.Equal(t, []string{"--tls"}, got)

	_, err = c.Args("registry.listen")
	assert.ErrorContains(t, err, `no setting has the key "registry.listen"`)
}

// TestOrigins: a setting given by flag, environment or file is set, and says
// where it came from; a default is not.
func TestOrigins(t *testing.T) {
	file := writeFile(t, "cluster:\n  name: fromfile\n")
	cfg, err := Load(Sources{
		File:  file,
		Env:   envMap(map[string]string{"IDPBUILDER_REGISTRY_PORT": "5431"}),
		Flags: map[string]string{"registry-auth": "all"},
	})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{
		"cluster.name":         file + ":2",
		"cluster.registryPort": "env IDPBUILDER_REGISTRY_PORT",
		"cluster.registryAuth": "flag --registry-auth",
	}, cfg.Origins)
	assert.True(t, cfg.IsSet("cluster.registryPort"))
	assert.False(t, cfg.IsSet("cluster.registryTLS"))
	assert.Equal(t, 5431, cfg.Cluster.RegistryPort)
}

func TestHiddenSettings(t *testing.T) {
	var hidden []string
	for _, s := range Settings() {
		if s.Hidden {
			hidden = append(hidden, s.Flag)
		}
	}
	assert.Equal(t, []string{"cert-check-interval"}, hidden)
}
