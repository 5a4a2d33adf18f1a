package cli

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/idpbuilder/idpbuilder/pkg/registryapi"
	"github.com/idpbuilder/idpbuilder/pkg/registryclient"
)

// gcLong is `registry gc --help`.
const gcLong = "Delete what nothing needs any more from a running registry, without stopping it: pushes\n" +
	"and pulls go on (pushes wait for the short sweep at the end). Kept are every tag's image\n" +
	"and everything it reaches (index children, config, layers, signatures and other\n" +
	"referrers); without --untagged also every image pushed without a tag. Deleted are blobs\n" +
	"nothing names, referrers whose subject is gone and, with --untagged, images no tag reaches.\n" +
	"Nothing younger than the grace period is deleted (the registry's --gc-grace, 1h by\n" +
	"default), so a push in progress is safe.\n\n" +
	"--keep-tags N first deletes all but the N most recently pushed tags of each repository\n" +
	"(matching --repo), never a tag that shares its image with a kept one; the images that\n" +
	"lose their last tag that way are collected too.\n\n" +
	"It works against the cluster's registry (default) or any idpbuilder registry\n" +
	"(--registry-addr, e.g. a `registry serve`). When the registry requires a login, log in\n" +
	"first with `idpbuilder registry login`."

// gcOptions are `registry gc`'s own flags.
type gcOptions struct {
	output, addr string
	grace        time.Duration
	req          registryapi.GCRequest
}

func newRegistryGCCommand(stdio IO) *cobra.Command {
	var o gcOptions
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Collect garbage in a running registry: what no tag needs any more",
		Long:  gcLong,
		Example: "  idpbuilder registry gc --dry-run\n" +
			"  idpbuilder registry gc --untagged\n" +
			"  idpbuilder registry gc --keep-tags 5 --repo 'ci/*'\n" +
			"  idpbuilder registry gc --registry-addr 127.0.0.1:5001 -o json",
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return runGC(cmd, stdio, o) },
	}
	addSettingFlags(cmd.Flags(), "name", "registry-port", "cert-dir")
	cmd.Flags().StringVar(&o.addr, "registry-addr", "", "registry host:port (default localhost:<registry-port>, the cluster's registry)")
	cmd.Flags().BoolVar(&o.req.DryRun, "dry-run", false, "report what would be deleted; delete nothing")
	cmd.Flags().BoolVar(&o.req.Untagged, "untagged", false, "delete images that no tag reaches (pushed by digest, or whose tags were deleted)")
	cmd.Flags().DurationVar(&o.grace, "grace", 0, "keep anything younger than this (default: the registry's --gc-grace, 1h)")
	cmd.Flags().IntVar(&o.req.KeepTags, "keep-tags", 0, "first delete all but the N most recently pushed tags of each repository")
	cmd.Flags().StringVar(&o.req.Repo, "repo", "", "with --keep-tags: only repositories matching this glob ('*' within a path component, '**' across them: 'ci/*', 'team/**')")
	cmd.Flags().StringVarP(&o.output, "output", "o", "table", "output format: table, json or yaml")
	return cmd
}

func runGC(cmd *cobra.Command, stdio IO, o gcOptions) error {
	if err := checkOutputFormat(o.output); err != nil {
		return err
	}
	req := o.req
	if cmd.Flags().Changed("grace") {
		g := registryapi.Duration(o.grace)
		req.Grace = &g
	}
	if err := req.Validate(); err != nil {
		return Usage(gcFlagError(err))
	}
	cfg, err := setup(cmd, stdio)
	if err != nil {
		return err
	}
	client, _, err := registryClient(stdio, cfg, o.addr, true)
	if err != nil {
		return err
	}
	res, err := client.GC(cmd.Context(), req)
	var failed *registryclient.GCFailedError
	if errors.As(err, &failed) {
		// Show what it deleted before it stopped.
		_ = printOutput(stdio.Out, o.output, res, func(tw *tabwriter.Writer) { gcTable(tw, res) })
		return fmt.Errorf("garbage collection on %s failed: %s", client.Registry, failed.Result.Error)
	}
	if err != nil {
		return gcError(client, err)
	}
	return printOutput(stdio.Out, o.output, res, func(tw *tabwriter.Writer) { gcTable(tw, res) })
}

// gcFlagError names the flags where the request's own checks name fields.
func gcFlagError(err error) error {
	msg := err.Error()
	for field, flag := range map[string]string{"grace": "--grace", "keep_tags": "--keep-tags", "repo selects": "--repo selects"} {
		msg = strings.ReplaceAll(msg, field, flag)
	}
	return errors.New(msg)
}

// gcError says what to do about a refused or failed call.
func gcError(client *registryclient.Client, err error) error {
	var api *registryclient.APIError
	if !errors.As(err, &api) {
		return fmt.Errorf("%w (is the registry running? `idpbuilder registry status` shows the cluster's)", err)
	}
	switch {
	case api.Unauthorized() && client.Auth == nil:
		return fmt.Errorf("the registry at %s runs garbage collection only for a logged-in user: log in with `idpbuilder registry login %s -u USER --password-stdin`", client.Registry, client.Registry)
	case api.Unauthorized():
		return fmt.Errorf("the registry at %s refused the stored login (%s): log in again with `idpbuilder registry login %s -u USER --password-stdin`", client.Registry, api.Message, client.Registry)
	case api.StatusCode == http.StatusConflict:
		return fmt.Errorf("a garbage collection is already running on %s: try again when it has finished", client.Registry)
	case api.StatusCode == http.StatusNotFound || api.StatusCode == http.StatusMethodNotAllowed:
		return fmt.Errorf("the registry at %s has no garbage collection endpoint (%s): is it an idpbuilder registry of this version?", client.Registry, api)
	}
	return fmt.Errorf("garbage collection on %s: %w", client.Registry, api)
}

func gcTable(tw *tabwriter.Writer, res *registryapi.GCResult) {
	verb, freed := "Deleted", "freed"
	if res.DryRun {
		verb, freed = "Would delete", "would free"
	}
	took := time.Duration(res.DurationMS) * time.Millisecond
	fmt.Fprintf(tw, "%s %d tags, %d manifests, %d blobs (%d blob links, %d repositories); %s %s in %s (pushes waited %s; grace %s)\n",
		verb, len(res.Tags), len(res.Manifests), len(res.Blobs), len(res.Layers), len(res.Repositories), freed, humanBytes(res.BytesFreed),
		took, time.Duration(res.SweepMS)*time.Millisecond, time.Duration(res.Grace))
	if len(res.Tags)+len(res.Manifests)+len(res.Blobs)+len(res.Repositories) == 0 {
		return
	}
	fmt.Fprintln(tw, "\nKIND\tREPOSITORY\tREFERENCE\tSIZE")
	for _, t := range res.Tags {
		fmt.Fprintf(tw, "tag\t%s\t%s (%s)\t\n", t.Repository, t.Tag, t.Digest)
	}
	for _, m := range res.Manifests {
		ref := m.Digest
		if m.Subject != "" {
			ref += " (referrer of " + m.Subject + ")"
		}
		fmt.Fprintf(tw, "manifest\t%s\t%s\t%s\n", m.Repository, ref, humanBytes(m.Size))
	}
	for _, b := range res.Blobs {
		fmt.Fprintf(tw, "blob\t\t%s\t%s\n", b.Digest, humanBytes(b.Size))
	}
	for _, r := range res.Repositories {
		fmt.Fprintf(tw, "repository\t%s\t\t\n", r)
	}
}
