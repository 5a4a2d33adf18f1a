package registryruntime

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestClusterRegistriesHaveNoRequestRateLimit: a cluster registry's clients are
// all on this machine but none on its loopback, so both runtimes turn the
// request-rate limit off (failed logins stay limited inside the registry).
func TestClusterRegistriesHaveNoRequestRateLimit(t *testing.T) {
	for name, args := range map[string][]string{
		"container":          (&Container{}).serveArgs(),
		"container with TLS": (&Container{Opts: ContainerOptions{CertDir: "/c", Htpasswd: "/h", Auth: "all"}}).serveArgs(),
		"process":            (&Process{Opts: ProcessOptions{HostPort: 5001, DataDir: "/d", ListenIP: "172.18.0.1"}}).args(),
	} {
		assert.Contains(t, strings.Join(args, " "), "--rate-limit 0", name)
	}
}
