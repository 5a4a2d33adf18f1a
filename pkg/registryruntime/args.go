package registryruntime

import (
	"fmt"
	"time"

	"github.com/idpbuilder/idpbuilder/pkg/config"
)

// certCheckInterval is how often a cluster registry looks for a rotated
// certificate: `registry cert rotate` shows within seconds.
const certCheckInterval = 5 * time.Second

// serve describes a `registry serve` as the settings it is given.
type serve struct {
	addr       string
	extraAddrs []string
	dataDir    string
	certDir    string
	tlsNames   []string
	htpasswd   string
	opts       Options
	logJSON    bool
}

// args renders the serve's flags from the config table (pkg/config names the
// flags; we name settings by key). The request-rate limit is off: every client
// is on this machine (the port is published on 127.0.0.1 only, the nodes are on
// the local kind network), yet none comes from the registry's own loopback, so
// bulk pushes from the host and parallel pulls by the nodes would be limited.
// Failed logins still are.
func (s serve) args() ([]string, error) {
	c := config.Config{Registry: config.Registry{
		Addr: s.addr, ExtraAddrs: s.extraAddrs, DataDir: s.dataDir, RateLimit: 0,
		TLS: s.certDir != "", CertDir: s.certDir, TLSNames: s.tlsNames, CertCheckInterval: certCheckInterval,
		Htpasswd: s.htpasswd, Auth: s.opts.Auth, UIClusterHost: s.opts.UIClusterHost,
	}, Log: config.Log{Format: "json"}}
	keys := []string{"registry.addr", "registry.extraAddrs", "registry.dataDir", "registry.rateLimit", "registry.uiClusterHost"}
	if s.logJSON {
		keys = append(keys, "log.format")
	}
	if s.certDir != "" {
		keys = append(keys, "registry.tls", "registry.certDir", "registry.certCheckInterval", "registry.tlsNames")
	}
	if s.opts.authOn() {
		keys = append(keys, "registry.htpasswd", "registry.auth")
	}
	args, err := c.Args(keys...)
	if err != nil {
		return nil, fmt.Errorf("registry serve arguments: %w", err)
	}
	return args, nil
}
