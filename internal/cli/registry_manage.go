package cli

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/idpbuilder/idpbuilder/pkg/platform"
	"github.com/idpbuilder/idpbuilder/pkg/registryapi"
	"github.com/idpbuilder/idpbuilder/pkg/registryclient"
	"github.com/idpbuilder/idpbuilder/pkg/registryruntime"
)

func newRegistryStatusCommand(stdio IO) *cobra.Command {
	var output string
	var pullCheck bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the cluster registry's state, health, storage, images and cluster wiring",
		Long: "Show the registry that `idpbuilder create` runs for a cluster, with its health checks\n" +
			"(storage, disk space, certificate, ...). Exits 1 when the registry is not running, unhealthy\n" +
			"or not fully wired into the cluster (repair: idpbuilder create); degraded checks are shown\n" +
			"but do not fail it. --pull-check also runs create's last step: each node pulls a tiny test\n" +
			"image through its wiring (it is removed again).",
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutputFormat(output); err != nil {
				return err
			}
			cfg, err := setup(cmd, stdio)
			if err != nil {
				return err
			}
			p := newPlatform(stdio, cfg, nil)
			st, err := p.Status(cmd.Context(), cfg.Cluster.Name, given(cfg))
			if err != nil {
				return err
			}
			if err := printOutput(stdio.Out, output, st, func(tw *tabwriter.Writer) { statusTable(tw, st) }); err != nil {
				return err
			}
			if err := statusError(st); err != nil {
				return err
			}
			if pullCheck {
				// Its step line goes to stderr: stdout may be JSON.
				return p.CheckPull(cmd.Context(), cfg.Cluster.Name, given(cfg), newProgress(stdio.Err))
			}
			return nil
		},
	}
	addSettingFlags(cmd.Flags(), "name", "registry-port", "in-cluster-name")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table, json or yaml")
	cmd.Flags().BoolVar(&pullCheck, "pull-check", false, "also prove that each node pulls through its wiring (pushes and removes a tiny image)")
	return cmd
}

// statusError is why a status makes the command fail, or nil.
func statusError(st platform.Report) error {
	if st.Healthy() {
		return nil
	}
	if st.Checks != nil && st.Checks.Status == registryapi.Unhealthy && st.State == registryruntime.StatusRunning {
		return fmt.Errorf("the registry is unhealthy: %s", unhealthyChecks(*st.Checks))
	}
	return errors.New("the registry is not healthy (see above); `idpbuilder create` repairs it")
}

func statusTable(tw *tabwriter.Writer, st platform.Report) {
	fmt.Fprintf(tw, "Cluster:\t%s\n", st.Cluster)
	fmt.Fprintf(tw, "Mode:\t%s (%s)\n", st.Mode, st.Instance)
	fmt.Fprintf(tw, "State:\t%s (restarts: %d)\n", st.State, st.RestartCount)
	fmt.Fprintf(tw, "Address:\t%s\n", st.Address)
	fmt.Fprintf(tw, "Health:\t%s\n", st.Health)
	if st.Checks != nil {
		healthChecksTable(tw, *st.Checks)
	}
	fmt.Fprintf(tw, "Storage:\t%s in %s\n", humanBytes(st.StorageBytes), st.DataDir)
	fmt.Fprintf(tw, "Images:\t%d repositories, %d tags\n", st.Repositories, st.Tags)
	if st.Wiring == nil {
		fmt.Fprintf(tw, "Wiring:\t%s\n", st.WiringError)
		return
	}
	fmt.Fprintf(tw, "Wiring:\tlocal-registry-hosting %s\n", st.Wiring.LocalRegistryHosting)
	for _, n := range st.Wiring.Nodes {
		var parts []string
		for name, s := range n.HostsTOML {
			parts = append(parts, name+" "+s)
		}
		fmt.Fprintf(tw, "\tnode %s: hosts.toml %s\n", n.Node, strings.Join(sortedStrings(parts), ", "))
	}
}

func newRegistryListCommand(stdio IO) *cobra.Command {
	var output, addr string
	cmd := &cobra.Command{
		Use:   "list [REPOSITORY]",
		Short: "List repositories and tags with digests, sizes and platforms",
		Example: "  idpbuilder registry list\n" +
			"  idpbuilder registry list myapp -o json\n" +
			"  idpbuilder registry list --registry-addr 127.0.0.1:5001   # a `registry serve` elsewhere",
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutputFormat(output); err != nil {
				return err
			}
			cfg, err := setup(cmd, stdio)
			if err != nil {
				return err
			}
			client, _, err := registryClient(stdio, cfg, addr, false)
			if err != nil {
				return err
			}
			entries, err := client.List(cmd.Context(), strings.Join(args, ""))
			if err != nil {
				return err
			}
			return printOutput(stdio.Out, output, nonNil(entries), func(tw *tabwriter.Writer) { listTable(tw, entries) })
		},
	}
	addSettingFlags(cmd.Flags(), "name", "registry-port", "cert-dir")
	cmd.Flags().StringVar(&addr, "registry-addr", "", "registry host:port (default localhost:<registry-port>)")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table, json or yaml")
	return cmd
}

// nonNil makes an empty list render as [] in JSON.
func nonNil(entries []registryclient.Entry) []registryclient.Entry {
	if entries == nil {
		return []registryclient.Entry{}
	}
	return entries
}

func listTable(tw *tabwriter.Writer, entries []registryclient.Entry) {
	fmt.Fprintln(tw, "REPOSITORY\tTAG\tDIGEST\tSIZE\tPLATFORMS")
	for _, e := range entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Repository, e.Tag, e.Digest, humanBytes(e.Size), strings.Join(e.Platforms, ","))
	}
}

func newRegistryStartCommand(stdio IO) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "start",
		Short: "Start (or repair) the cluster's registry, and rewire the cluster to it",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := setup(cmd, stdio)
			if err != nil {
				return err
			}
			log := newProgress(stdio.Out)
			st, err := newPlatform(stdio, cfg, log).Start(cmd.Context(), cfg.Cluster.Name, given(cfg), log)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdio.Out, "Registry %s (%s) is running at %s\n", st.Settings.Mode, st.Instance, st.HostAddr)
			return nil
		},
	}
	addSettingFlags(cmd.Flags(), "name", "registry-port", "registry-mode")
	return cmd
}

func newRegistryStopCommand(stdio IO) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "stop",
		Short: "Stop the cluster's registry (images are kept)",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := setup(cmd, stdio)
			if err != nil {
				return err
			}
			st, err := newPlatform(stdio, cfg, nil).Stop(cmd.Context(), cfg.Cluster.Name, given(cfg))
			if err != nil {
				return err
			}
			fmt.Fprintf(stdio.Out, "Registry %s (%s) stopped; `idpbuilder registry start` starts it again.\n", st.Settings.Mode, st.Instance)
			return nil
		},
	}
	addSettingFlags(cmd.Flags(), "name", "registry-port")
	return cmd
}
