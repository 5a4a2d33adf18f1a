package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/idpbuilder/idpbuilder/pkg/docker"
	"github.com/idpbuilder/idpbuilder/pkg/kind"
)

func newDeleteCommand(stdio IO) *cobra.Command {
	var purge bool
	cmd := &cobra.Command{
		Use:   "delete",
		Short: "Delete the Kind cluster and its registry container (images are kept unless --purge)",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := setup(cmd, stdio)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			name := cfg.Cluster.Name
			if _, err := (&docker.Client{}).Server(ctx); err != nil {
				return err
			}
			// Resolve the runtime before the cluster (and its network) goes away.
			rt, rtErr := newRuntime(ctx, stdio, cfg, registryMode(stdio, cfg))
			cl := kind.New(name, &docker.Client{}, &kindLogger{w: stdio.Err})
			step(stdio.Err, "Deleting cluster %q", name)
			if err := cl.Delete(); err != nil {
				return err
			}
			if rtErr == nil {
				step(stdio.Err, "Removing registry %s (%s)", rt.Mode(), rt.Describe())
				if err := rt.Remove(ctx); err != nil {
					return err
				}
			}
			state := clusterStateDir(stdio.Env, name)
			if purge {
				step(stdio.Err, "Removing registry data %s", state)
				if err := os.RemoveAll(state); err != nil {
					return fmt.Errorf("remove registry data: %w", err)
				}
				fmt.Fprintf(stdio.Out, "Deleted cluster %q and its registry data.\n", name)
				return nil
			}
			fmt.Fprintf(stdio.Out, "Deleted cluster %q. Its images are kept in %s for the next `idpbuilder create --name %s` (delete --purge removes them).\n", name, filepath.Join(state, "registry"), name)
			return nil
		},
	}
	addSettingFlags(cmd.Flags(), "name")
	cmd.Flags().BoolVar(&purge, "purge", false, "also delete the registry's images")
	return cmd
}
