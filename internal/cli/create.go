package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/idpbuilder/idpbuilder/pkg/auth"
	"github.com/idpbuilder/idpbuilder/pkg/platform"
)

func newCreateCommand(stdio IO) *cobra.Command {
	var opts platform.CreateOptions
	var withRegistry bool
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create (or reconcile) a Kind cluster whose nodes pull from the built-in registry",
		Long: "Create a Kind cluster and a registry beside it, then wire them together: nodes pull\n" +
			"localhost:<port>/IMAGE from the registry, pods push to <in-cluster-name>:5000. Last, each\n" +
			"node pulls a tiny test image through the wiring, to prove it works.\n" +
			"Running create again on an existing cluster re-checks and repairs the wiring.\n" +
			"The registry's settings are kept with the cluster: later commands use them unless told otherwise.\n" +
			"Images are kept in the state dir and survive delete + create (delete --purge removes them).",
		Example: "  idpbuilder create\n" +
			"  idpbuilder create --name dev --registry-port 5002\n" +
			"  IDPBUILDER_NODE_IMAGE=kindest/node:v1.34.0 idpbuilder create --recreate",
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := setup(cmd, stdio)
			if err != nil {
				return err
			}
			opts.NoRegistry = !withRegistry
			log := newProgress(stdio.Out)
			in, err := newPlatform(stdio, cfg, log).Create(cmd.Context(), cfg.Cluster.Name, given(cfg), opts, log)
			if err != nil {
				return err
			}
			printCreated(stdio.Out, in, opts.NoRegistry)
			return nil
		},
	}
	addSettingFlags(cmd.Flags(), "name", "node-image", "kind-config", "registry-port", "in-cluster-name",
		"registry-mode", "registry-tls", "registry-auth", "htpasswd")
	cmd.Flags().BoolVar(&withRegistry, "registry", true, "run the built-in registry and wire the nodes to it")
	cmd.Flags().BoolVar(&opts.Recreate, "recreate", false, "delete the cluster first if it exists")
	return cmd
}

// printCreated tells how to use what create made.
func printCreated(w io.Writer, in platform.Info, noRegistry bool) {
	if noRegistry {
		fmt.Fprintf(w, "Cluster %q is ready (no registry: --registry=false).\n", in.Cluster)
		return
	}
	fmt.Fprintf(w, `Cluster %q is ready; its nodes pull from the built-in registry.
  push from this machine:  %[2]s/IMAGE
  pull/push from pods:     %[3]s/IMAGE
  kubectl context:         kind-%[1]s
`, in.Cluster, in.HostAddr, in.InClusterHost)
	if in.Settings.TLS {
		fmt.Fprintf(w, "  TLS:                     local CA %s (sudo idpbuilder registry trust %s --name %s)\n", in.CAFile, in.HostAddr, in.Cluster)
	}
	if in.Settings.Auth != auth.PolicyNone {
		fmt.Fprintf(w, "  login (--auth=%s):      idpbuilder registry login %s -u USER --password-stdin\n", in.Settings.Auth, in.HostAddr)
	}
	fmt.Fprintf(w, `
Try it:
  docker tag IMAGE %[1]s/myapp:v1
  docker push %[1]s/myapp:v1
  kubectl run myapp --image=%[1]s/myapp:v1
`, in.HostAddr)
}
