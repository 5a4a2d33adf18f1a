package cli

import (
	"errors"
	"fmt"

	"github.com/idpbuilder/idpbuilder/pkg/config"
	"github.com/idpbuilder/idpbuilder/pkg/kind"
	"github.com/idpbuilder/idpbuilder/pkg/platform"
	"github.com/idpbuilder/idpbuilder/pkg/registry"
	"github.com/idpbuilder/idpbuilder/pkg/registryruntime"
)

// exitCode picks the exit code from the error's type: the user's input or
// configuration was wrong (2), or something failed (1).
func exitCode(err error) int {
	var (
		ue      usageError
		kindCfg *kind.ConfigError
		noUser  *platform.NoUserError
	)
	if errors.As(err, &ue) || config.IsConfigError(err) || errors.As(err, &kindCfg) || errors.As(err, &noUser) {
		return ExitUsage
	}
	return ExitFailure
}

// hint says what to do about a library's error in this command line's terms:
// libraries name no flags, so the flag that changes the outcome is named here.
func hint(err error) string {
	if h := platformHint(err); h != "" {
		return h
	}
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
	case errors.Is(err, registryruntime.ErrNoLinuxBinary):
		return "the registry container is built from this binary: build a static one with `make build` (CGO_ENABLED=0), or use --registry-mode=process"
	}
	return ""
}

// platformHint covers the platform library's errors.
func platformHint(err error) string {
	var (
		pull      *platform.PullCheckError
		noUser    *platform.NoUserError
		image     *platform.NodeImageError
		corrupt   *platform.CorruptSettingsError
		noCluster *platform.NoClusterError
	)
	switch {
	case errors.As(err, &pull):
		return fmt.Sprintf("node %s's registry wiring is broken: `idpbuilder create --name %s` rewrites it (`idpbuilder registry status --name %s` shows what is missing)", pull.Node, pull.Cluster, pull.Cluster)
	case errors.As(err, &noUser):
		return fmt.Sprintf("add one first: `idpbuilder registry user add NAME --password-stdin` (--registry-auth=%s needs it to push with)", noUser.Policy)
	case errors.As(err, &image):
		return "choose another node image with --node-image (or IDPBUILDER_NODE_IMAGE)"
	case errors.As(err, &corrupt):
		return "fix or remove that file: the next `idpbuilder create` writes it again from the settings it is given (--registry-port, --registry-mode, ...)"
	case errors.As(err, &noCluster):
		return fmt.Sprintf("create the cluster first: `idpbuilder create --name %s`", noCluster.Cluster)
	}
	return ""
}
