package cli

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/idpbuilder/idpbuilder/pkg/registryapi"
	"github.com/idpbuilder/idpbuilder/pkg/registryclient"
)

func newRegistryStatsCommand(stdio IO) *cobra.Command {
	var output, addr string
	cmd := &cobra.Command{
		Use:   "stats",
		Short: "Show what the registry holds: repositories, tags, sizes, pushes and pulls",
		Long: "Show the registry's usage statistics: repositories, tags and manifests, the content store\n" +
			"(each blob once, as on disk) and the logical size (summed over repositories), the largest\n" +
			"repositories, pushes and pulls since the registry started, and the last garbage collection\n" +
			"and quota usage when the registry has them. Without --registry-addr it asks the registry\n" +
			"of the cluster (--name), as `registry status` does.",
		Example: "  idpbuilder registry stats\n" +
			"  idpbuilder registry stats -o json\n" +
			"  idpbuilder registry stats --registry-addr 127.0.0.1:5001   # a `registry serve` elsewhere",
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
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
			st, err := client.Stats(cmd.Context())
			if err != nil {
				var ae *registryclient.APIError
				switch {
				case errors.As(err, &ae) && ae.Unauthorized():
					return fmt.Errorf("%w: log in first (`idpbuilder registry login %s -u USER --password-stdin`)", err, client.Registry)
				case addr == "" && !errors.As(err, &ae):
					return fmt.Errorf("%w (is the cluster's registry running? `idpbuilder registry status --name %s`)", err, cfg.Cluster.Name)
				}
				return err
			}
			return printOutput(stdio.Out, output, st, func(tw *tabwriter.Writer) { statsTable(tw, st, time.Now()) })
		},
	}
	addSettingFlags(cmd.Flags(), "name", "registry-port", "cert-dir")
	cmd.Flags().StringVar(&addr, "registry-addr", "", "registry host:port (default: the cluster's registry, localhost:<registry-port>)")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table, json or yaml")
	return cmd
}

func statsTable(tw *tabwriter.Writer, st registryapi.Stats, now time.Time) {
	fmt.Fprintf(tw, "Repositories:\t%d\n", st.Repositories)
	fmt.Fprintf(tw, "Tags:\t%d\n", st.Tags)
	fmt.Fprintf(tw, "Manifests:\t%d\n", st.Manifests)
	fmt.Fprintf(tw, "Stored:\t%s in %d blobs (each once, as on disk)\n", humanBytes(st.UniqueBytes), st.Blobs)
	fmt.Fprintf(tw, "Logical size:\t%s (summed over repositories)\n", humanBytes(st.LogicalBytes))
	fmt.Fprintf(tw, "Since start:\t%d pushes, %d pulls, %d blob uploads (started %s ago)\n",
		st.Pushes, st.Pulls, st.BlobUploads, now.Sub(st.StartedAt).Round(time.Second))
	if g := st.LastGC; g != nil {
		line := fmt.Sprintf("%s: freed %s (%d blobs, %d manifests) in %.0f ms", g.StartedAt.Local().Format(time.DateTime),
			humanBytes(g.FreedBytes), g.DeletedBlobs, g.DeletedManifests, g.DurationMS)
		switch {
		case g.Error != "":
			line = fmt.Sprintf("%s: failed: %s", g.StartedAt.Local().Format(time.DateTime), g.Error)
		case g.DryRun:
			line += " (dry run: nothing was deleted)"
		}
		fmt.Fprintf(tw, "Last GC:\t%s\n", line)
	}
	if q := st.Quota; q != nil {
		line := humanBytes(q.UsedBytes) + " used, no registry-wide limit"
		if q.LimitBytes > 0 {
			line = fmt.Sprintf("%s of %s (%.0f%%)", humanBytes(q.UsedBytes), humanBytes(q.LimitBytes), float64(q.UsedBytes)/float64(q.LimitBytes)*100)
		}
		fmt.Fprintf(tw, "Quota:\t%s\n", line)
	}
	updated := "updated " + st.UpdatedAt.Local().Format(time.DateTime)
	if st.Pending {
		updated += " (newer writes are still being counted)"
	}
	fmt.Fprintf(tw, "Counted:\t%s\n", updated)
	if len(st.Largest) == 0 {
		return
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "LARGEST REPOSITORIES\tTAGS\tMANIFESTS\tSIZE")
	for _, r := range st.Largest {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", r.Name, r.Tags, r.Manifests, humanBytes(r.Bytes))
	}
}

// healthChecksTable renders a registry's detailed health under `registry status`.
func healthChecksTable(tw *tabwriter.Writer, h registryapi.Health) {
	fmt.Fprintf(tw, "Checks:\t%s\n", h.Status)
	for _, c := range h.Checks {
		fmt.Fprintf(tw, "\t  %s %s: %s\n", checkMark(c.Status), c.Name, c.Message)
	}
}

func checkMark(s registryapi.HealthStatus) string {
	switch s {
	case registryapi.Healthy:
		return "✓"
	case registryapi.Degraded:
		return "!"
	}
	return "✗"
}

// unhealthyChecks names the failing checks and what they say.
func unhealthyChecks(h registryapi.Health) string {
	var parts []string
	for _, c := range h.Checks {
		if c.Status == registryapi.Unhealthy {
			parts = append(parts, c.Name+": "+c.Message)
		}
	}
	return strings.Join(parts, "; ")
}
