package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"time"

	"github.com/spf13/cobra"

	"github.com/idpbuilder/idpbuilder/pkg/exec"
)

func newRegistryUICommand(stdio IO) *cobra.Command {
	var open bool
	cmd := &cobra.Command{
		Use:   "ui",
		Short: "Print the URL of the cluster registry's web UI (--open opens it in a browser)",
		Long: "Print the URL of the web UI the cluster's registry serves on its own address, after\n" +
			"checking that it answers. Exits 1 when the registry is not running or serves no UI.",
		Example: "  idpbuilder registry ui\n" +
			"  idpbuilder registry ui --name dev --open",
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := setup(cmd, stdio)
			if err != nil {
				return err
			}
			client, scheme, err := registryClient(stdio, cfg, "", false)
			if err != nil {
				return err
			}
			// The cluster's registry, on the port it was created with.
			url := fmt.Sprintf("%s://%s/ui/", scheme, client.Registry)
			if err := probeUI(cmd.Context(), client.Transport, url); err != nil {
				return fmt.Errorf("%w (cluster %q)", err, cfg.Cluster.Name)
			}
			fmt.Fprintln(stdio.Out, url)
			if open {
				openBrowser(cmd.Context(), stdio, url)
			}
			return nil
		},
	}
	addSettingFlags(cmd.Flags(), "name", "registry-port")
	cmd.Flags().BoolVar(&open, "open", false, "open the URL in a browser (xdg-open)")
	return cmd
}

// probeUI checks that a registry answers at url with its UI: a page, or a
// redirect to the login form.
func probeUI(ctx context.Context, tr http.RoundTripper, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	c := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("the registry is not answering at %s: %w; start it with `idpbuilder create` or `idpbuilder registry start`", url, err)
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return errors.New("the registry serves no web UI: it runs with --ui=false or an older idpbuilder (`idpbuilder create` replaces it)")
	case resp.StatusCode >= 400:
		return fmt.Errorf("the registry's web UI answered %s", resp.Status)
	}
	return nil
}

// openBrowser opens url with the desktop's opener, where there is one.
func openBrowser(ctx context.Context, stdio IO, url string) {
	opener := "xdg-open"
	if runtime.GOOS == "darwin" {
		opener = "open"
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := exec.Output(exec.Local().Command(ctx, opener, url)); err != nil {
		if exec.NotFound(err) {
			fmt.Fprintf(stdio.Err, "No %s here to open a browser: open the URL above yourself.\n", opener)
			return
		}
		fmt.Fprintf(stdio.Err, "Could not open a browser: %v\n", err)
	}
}
