package cli

import "github.com/spf13/cobra"

func newRegistryCommand(stdio IO) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "registry",
		Short: "Run and manage the built-in OCI registry",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	cmd.AddCommand(newRegistryServeCommand(stdio), newRegistryStatusCommand(stdio), newRegistryListCommand(stdio),
		newRegistryStartCommand(stdio), newRegistryStopCommand(stdio), newRegistryPushCommand(stdio),
		newRegistryUserCommand(stdio), newRegistryCertCommand(stdio), newRegistryLoginCommand(stdio), newRegistryTrustCommand(stdio),
		newRegistryGCCommand(stdio),
		newRegistryStatsCommand(stdio),
		newRegistryUICommand(stdio))
	return cmd
}
