package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/idpbuilder/idpbuilder/pkg/certs"
	"github.com/idpbuilder/idpbuilder/pkg/config"
	"github.com/idpbuilder/idpbuilder/pkg/hoststoml"
)

// trustMarker starts the hosts.toml files `registry trust` writes, so it only
// ever replaces its own.
const trustMarker = "written by idpbuilder registry trust"

func newRegistryTrustCommand(stdio IO) *cobra.Command {
	var root string
	cmd := &cobra.Command{
		Use:   "trust [HOST:PORT]",
		Short: "Install the registry's CA where Docker, containerd and podman look for it",
		Long: "Copies the local CA to /etc/docker/certs.d/HOST:PORT/ca.crt, /etc/containers/certs.d/HOST:PORT/ca.crt\n" +
			"(podman, skopeo, buildah) and /etc/containerd/certs.d/HOST:PORT/ (ca.crt and a hosts.toml that uses it).\n" +
			"Without root it prints the commands to run instead. HOST:PORT defaults to localhost:<registry-port>.",
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error { return runTrust(cmd, stdio, args, root) },
	}
	addSettingFlags(cmd.Flags(), "name", "registry-port", "cert-dir")
	cmd.Flags().StringVar(&root, "root", "/", "install under this directory instead of / (for images and tests)")
	_ = cmd.Flags().MarkHidden("root")
	return cmd
}

func runTrust(cmd *cobra.Command, stdio IO, args []string, root string) error {
	cfg, err := setup(cmd, stdio)
	if err != nil {
		return err
	}
	host, err := serverArg(stdio, cfg, args)
	if err != nil {
		return err
	}
	if strings.ContainsAny(host, "/ ") || !strings.Contains(host, ":") {
		return Usage(fmt.Errorf("%q is not HOST:PORT", host))
	}
	caPath, err := trustCAPath(cmd, stdio, cfg)
	if err != nil {
		return err
	}
	pem, err := os.ReadFile(caPath)
	if err != nil {
		return fmt.Errorf("no CA at %s (start the registry with --tls, or create the cluster with --registry-tls, first): %w", caPath, err)
	}
	files := trustFiles(root, host, pem)
	if os.Geteuid() != 0 && root == "/" {
		fmt.Fprintf(stdio.Out, "Not root: run these to trust %s:\n", host)
		for _, f := range files {
			fmt.Fprintf(stdio.Out, "  sudo install -D -m 0644 /dev/stdin %s <<'EOF'\n%sEOF\n", f.path, f.data)
		}
		return nil
	}
	return writeTrustFiles(stdio, files)
}

// writeTrustFiles installs the files, but never replaces a hosts.toml that
// `registry trust` did not write.
func writeTrustFiles(stdio IO, files []trustFile) error {
	for _, f := range files {
		if strings.HasSuffix(f.path, "hosts.toml") {
			if old, err := os.ReadFile(f.path); err == nil && !strings.HasPrefix(string(old), "# "+trustMarker) {
				fmt.Fprintf(stdio.Err, "kept %s: it was not written by idpbuilder (add ca = %q to it yourself)\n", f.path, filepath.Join(filepath.Dir(f.path), "ca.crt"))
				continue
			}
		}
		if err := os.MkdirAll(filepath.Dir(f.path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(f.path, []byte(f.data), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", f.path, err)
		}
		fmt.Fprintf(stdio.Out, "wrote %s\n", f.path)
	}
	return nil
}

// trustCAPath: an explicit --cert-dir, else the cluster registry's CA when the
// cluster was created with TLS, else the `registry serve` CA.
func trustCAPath(cmd *cobra.Command, stdio IO, cfg config.Config) (string, error) {
	if cmd.Flags().Changed("cert-dir") {
		return filepath.Join(cfg.Registry.CertDir, certs.CAFile), nil
	}
	in, err := newPlatform(stdio, cfg, nil).Info(cfg.Cluster.Name, given(cfg))
	if err != nil {
		return "", err
	}
	if in.Settings.TLS {
		return in.CAFile, nil
	}
	return filepath.Join(cfg.Registry.CertDir, certs.CAFile), nil
}

type trustFile struct {
	path, data string
}

func trustFiles(root, host string, pem []byte) []trustFile {
	ctrd := filepath.Join(root, "etc", "containerd", "certs.d", host)
	return []trustFile{
		{filepath.Join(root, "etc", "docker", "certs.d", host, "ca.crt"), string(pem)},
		{filepath.Join(root, "etc", "containers", "certs.d", host, "ca.crt"), string(pem)},
		{filepath.Join(ctrd, "ca.crt"), string(pem)},
		{filepath.Join(ctrd, "hosts.toml"), hoststoml.File{Comment: trustMarker, Server: "https://" + host, CA: filepath.Join(ctrd, "ca.crt")}.String()},
	}
}
