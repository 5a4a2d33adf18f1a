package cli

import (
	"errors"
	"fmt"

	"github.com/idpbuilder/idpbuilder/pkg/config"
	"github.com/idpbuilder/idpbuilder/pkg/kind"
	"github.com/idpbuilder/idpbuilder/pkg/registry"
	"github.com/idpbuilder/idpbuilder/pkg/registryruntime"
)

// exitCode picks the exit code from the error's type: the user's input or
// configuration was wrong (2), or something failed (1).
func exitCode(err error) int {
	var ue usageError
	if errors.As(err, &ue) || config.IsConfigError(err) {
		return ExitUsage
	}
	return ExitFailure
}

// hint says what to do about a library's error in this command line's terms:
// libraries name no flags, so the flag that changes the outcome is named here.
func hint(err error) string {
	var (
		foreign *kind.ForeignClusterError
		port    *registryruntime.PortInUseError
		listen  *registry.ListenError
		dataDir *registry.DataDirError
	)
	switch {
	case errors.As(err, &foreign):
		return fmt.Sprintf("containerd reads that setting only when it starts: recreate the cluster with `idpbuilder create --name %s --recreate` (the registry's images are kept)", foreign.Cluster)
	case errors.As(err, &port):
		return "stop what uses it, or choose another port with --registry-port"
	case errors.As(err, &listen) && listen.InUse:
		return "stop the process using it, or choose another address with --addr (or --extra-addrs)"
	case errors.As(err, &dataDir):
		return "fix its permissions, or choose another directory with --data-dir"
	}
	return ""
}
