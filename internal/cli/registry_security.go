package cli

import (
	"bufio"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/idpbuilder/idpbuilder/pkg/auth"
	"github.com/idpbuilder/idpbuilder/pkg/certs"
	"github.com/idpbuilder/idpbuilder/pkg/config"
)

func newRegistryUserCommand(stdio IO) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Manage registry users (htpasswd with bcrypt)",
		Long: "Users are kept in an htpasswd file (bcrypt, mode 0600). Once a user exists, `registry serve`\n" +
			"requires one for pushes and deletes (--auth=push); pulls stay anonymous unless --auth=all.",
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	subs := []*cobra.Command{newUserAddCommand(stdio), newUserRemoveCommand(stdio), newUserListCommand(stdio)}
	for _, c := range subs {
		addSettingFlags(c.Flags(), "htpasswd")
	}
	cmd.AddCommand(subs...)
	return cmd
}

func newUserAddCommand(stdio IO) *cobra.Command {
	var passwordStdin bool
	add := &cobra.Command{
		Use:     "add NAME --password-stdin",
		Short:   "Add a user or change their password (the password is read from stdin, never argv)",
		Example: "  printf '%s' \"$PASSWORD\" | idpbuilder registry user add alice --password-stdin",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := setup(cmd, stdio)
			if err != nil {
				return err
			}
			if !passwordStdin {
				return Usage(errors.New("passwords are read from stdin only (never from arguments, which other users can see): add --password-stdin"))
			}
			password, err := readPassword(stdio.In)
			if err != nil {
				return Usage(err)
			}
			if err := auth.ValidateUsername(args[0]); err != nil {
				return Usage(err)
			}
			if err := auth.ValidatePassword(password); err != nil {
				return Usage(err)
			}
			h := auth.Htpasswd{Path: cfg.Registry.Htpasswd}
			if err := h.Set(args[0], password); err != nil {
				return err
			}
			fmt.Fprintf(stdio.Out, "User %s saved in %s\n", args[0], h.Path)
			return nil
		},
	}
	add.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from stdin")
	return add
}

func newUserRemoveCommand(stdio IO) *cobra.Command {
	return &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a user",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := setup(cmd, stdio)
			if err != nil {
				return err
			}
			h := auth.Htpasswd{Path: cfg.Registry.Htpasswd}
			if err := h.Remove(args[0]); err != nil {
				if errors.Is(err, auth.ErrNoSuchUser) {
					return Usage(err)
				}
				return err
			}
			fmt.Fprintf(stdio.Out, "User %s removed\n", args[0])
			return nil
		},
	}
}

func newUserListCommand(stdio IO) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List users",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := setup(cmd, stdio)
			if err != nil {
				return err
			}
			users, err := auth.Htpasswd{Path: cfg.Registry.Htpasswd}.Users()
			if err != nil {
				return err
			}
			for _, u := range users {
				fmt.Fprintln(stdio.Out, u)
			}
			return nil
		},
	}
}

// readPassword takes the first line of r, without its line ending.
func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("no password on stdin")
	}
	return line, nil
}

func newRegistryCertCommand(stdio IO) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cert",
		Short: "Show, rotate or export the registry's TLS certificate and local CA",
		Args:  usageArgs(cobra.NoArgs),
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	subs := []*cobra.Command{newCertShowCommand(stdio), newCertRotateCommand(stdio), newCertExportCommand(stdio)}
	for _, c := range subs {
		addSettingFlags(c.Flags(), "cert-dir", "tls-names")
	}
	cmd.AddCommand(subs...)
	return cmd
}

func newCertShowCommand(stdio IO) *cobra.Command {
	var output string
	show := &cobra.Command{
		Use:   "show",
		Short: "Show the server certificate: names, validity, fingerprint",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutputFormat(output); err != nil {
				return err
			}
			m, cfg, err := certManager(cmd, stdio)
			if err != nil {
				return err
			}
			leaf, ca := m.Leaf(), filepath.Join(cfg.Registry.CertDir, certs.CAFile)
			return printOutput(stdio.Out, output, certInfo(leaf, ca), func(tw *tabwriter.Writer) { certTable(tw, leaf, ca) })
		},
	}
	show.Flags().StringVarP(&output, "output", "o", "table", "output format: table, json or yaml")
	return show
}

// certInfo is `cert show` as JSON or YAML.
func certInfo(leaf *x509.Certificate, ca string) map[string]any {
	return map[string]any{
		"subject":     leaf.Subject.CommonName,
		"issuer":      leaf.Issuer.CommonName,
		"dnsNames":    leaf.DNSNames,
		"ipAddresses": ipStrings(leaf),
		"notBefore":   leaf.NotBefore.UTC().Format(time.RFC3339),
		"notAfter":    leaf.NotAfter.UTC().Format(time.RFC3339),
		"serial":      leaf.SerialNumber.String(),
		"sha256":      certs.Fingerprint(leaf),
		"ca":          ca,
	}
}

func certTable(tw *tabwriter.Writer, leaf *x509.Certificate, ca string) {
	fmt.Fprintf(tw, "Subject:\t%s (issued by %s)\n", leaf.Subject.CommonName, leaf.Issuer.CommonName)
	fmt.Fprintf(tw, "Names:\t%s\n", strings.Join(append(append([]string{}, leaf.DNSNames...), ipStrings(leaf)...), ", "))
	fmt.Fprintf(tw, "Valid:\t%s to %s\n", leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
	fmt.Fprintf(tw, "Serial:\t%s\n", leaf.SerialNumber)
	fmt.Fprintf(tw, "SHA-256:\t%s\n", certs.Fingerprint(leaf))
	fmt.Fprintf(tw, "CA:\t%s\n", ca)
}

func newCertRotateCommand(stdio IO) *cobra.Command {
	return &cobra.Command{
		Use:   "rotate",
		Short: "Issue a new server certificate now (a running registry serves it within its check interval)",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, _, err := certManager(cmd, stdio)
			if err != nil {
				return err
			}
			// Keep every name the current certificate has (a serving registry added its own).
			old := m.Leaf()
			m.Names = append(append(m.Names, old.DNSNames...), ipStrings(old)...)
			if err := m.Rotate(); err != nil {
				return err
			}
			fmt.Fprintf(stdio.Out, "New certificate %s valid until %s\n", certs.Fingerprint(m.Leaf()), m.Leaf().NotAfter.UTC().Format(time.RFC3339))
			return nil
		},
	}
}

func newCertExportCommand(stdio IO) *cobra.Command {
	var out string
	export := &cobra.Command{
		Use:   "export-ca",
		Short: "Write the local CA certificate (PEM) to stdout or a file",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, _, err := certManager(cmd, stdio)
			if err != nil {
				return err
			}
			pem, err := m.CAPEM()
			if err != nil {
				return err
			}
			if out == "" || out == "-" {
				_, err = stdio.Out.Write(pem)
				return err
			}
			return os.WriteFile(out, pem, 0o644)
		},
	}
	export.Flags().StringVar(&out, "output-file", "", "write to this file instead of stdout")
	return export
}

// certManager sets up a configured command and loads (or creates) the CA and
// certificate in the configured directory.
func certManager(cmd *cobra.Command, stdio IO) (*certs.Manager, config.Config, error) {
	cfg, err := setup(cmd, stdio)
	if err != nil {
		return nil, cfg, err
	}
	m := &certs.Manager{Dir: cfg.Registry.CertDir, Names: cfg.Registry.TLSNames}
	if _, err := m.Ensure(); err != nil {
		return nil, cfg, err
	}
	return m, cfg, nil
}

func ipStrings(c *x509.Certificate) []string {
	out := make([]string, 0, len(c.IPAddresses))
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	return out
}
