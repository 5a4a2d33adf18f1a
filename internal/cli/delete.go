package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/idpbuilder/idpbuilder/pkg/platform"
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
			log := newProgress(stdio.Out)
			d, err := newPlatform(stdio, cfg, log).Delete(cmd.Context(), cfg.Cluster.Name, given(cfg), purge, log)
			if err != nil {
				return err
			}
			printDeleted(stdio.Out, d)
			return nil
		},
	}
	addSettingFlags(cmd.Flags(), "name")
	cmd.Flags().BoolVar(&purge, "purge", false, "also delete the registry's images")
	return cmd
}

func printDeleted(w io.Writer, d platform.Deleted) {
	what := fmt.Sprintf("cluster %q", d.Cluster)
	if !d.ClusterExisted {
		what = fmt.Sprintf("the registry of cluster %q (there was no cluster)", d.Cluster)
	}
	if d.Purged {
		fmt.Fprintf(w, "Deleted %s and its registry data.\n", what)
		return
	}
	fmt.Fprintf(w, "Deleted %s. Its images are kept in %s for the next `idpbuilder create --name %s` (delete --purge removes them).\n",
		what, d.DataDir, d.Cluster)
}
