package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/spf13/cobra"

	"github.com/idpbuilder/idpbuilder/pkg/certs"
	"github.com/idpbuilder/idpbuilder/pkg/config"
	"github.com/idpbuilder/idpbuilder/pkg/docker"
	"github.com/idpbuilder/idpbuilder/pkg/kind"
	"github.com/idpbuilder/idpbuilder/pkg/registryapi"
	"github.com/idpbuilder/idpbuilder/pkg/registryclient"
)

// registryStatus is what `registry status` reports.
type registryStatus struct {
	Cluster      string `json:"cluster"`
	Mode         string `json:"mode"`
	Instance     string `json:"instance"` // container name or pid file
	State        string `json:"state"`    // running, exited, ..., or missing
	RestartCount int    `json:"restartCount"`
	Address      string `json:"address"`
	Health       string `json:"health"` // ok, or what is wrong
	// Checks is the registry's detailed health (GET /health), when it has one.
	Checks       *registryapi.Health `json:"checks,omitempty"`
	DataDir      string              `json:"dataDir"`
	StorageBytes int64               `json:"storageBytes"`
	Repositories int                 `json:"repositories"`
	Tags         int                 `json:"tags"`
	Wiring       *kind.WiringStatus  `json:"wiring,omitempty"`
	WiringError  string              `json:"wiringError,omitempty"`
}

func (s registryStatus) healthy() bool {
	return s.State == "running" && s.Health == "ok" && s.Wiring != nil && s.Wiring.OK() &&
		(s.Checks == nil || s.Checks.Status != registryapi.Unhealthy)
}

func newRegistryStatusCommand(stdio IO) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the cluster registry's state, health, storage, images and cluster wiring",
		Long: "Show the registry that `idpbuilder create` runs for a cluster, with its health checks\n" +
			"(storage, disk space, certificate, ...). Exits 1 when the registry is not running, unhealthy\n" +
			"or not fully wired into the cluster (repair: idpbuilder create); degraded checks are shown\n" +
			"but do not fail it.",
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutputFormat(output); err != nil {
				return err
			}
			cfg, err := setup(cmd, stdio)
			if err != nil {
				return err
			}
			st, err := collectStatus(cmd.Context(), stdio, cfg)
			if err != nil {
				return err
			}
			if err := printOutput(stdio.Out, output, st, func(tw *tabwriter.Writer) { statusTable(tw, st) }); err != nil {
				return err
			}
			if !st.healthy() {
				if st.Checks != nil && st.Checks.Status == registryapi.Unhealthy && st.State == "running" {
					return fmt.Errorf("the registry is unhealthy: %s", unhealthyChecks(*st.Checks))
				}
				return errors.New("the registry is not healthy (see above); `idpbuilder create` repairs it")
			}
			return nil
		},
	}
	addSettingFlags(cmd.Flags(), "name", "registry-port", "in-cluster-name")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table, json or yaml")
	return cmd
}

func collectStatus(ctx context.Context, stdio IO, cfg config.Config) (registryStatus, error) {
	if _, err := (&docker.Client{}).Server(ctx); err != nil {
		return registryStatus{}, err
	}
	mode := registryMode(stdio, cfg)
	rt, err := newRuntime(ctx, stdio, cfg, mode)
	if err != nil {
		return registryStatus{}, err
	}
	dataDir := filepath.Join(clusterStateDir(stdio.Env, cfg.Cluster.Name), "registry")
	client, scheme := registryClient(stdio, cfg, "", false)
	st := registryStatus{
		Cluster: cfg.Cluster.Name, Mode: mode, Instance: rt.Describe(),
		Address: fmt.Sprintf("localhost:%d", cfg.Cluster.RegistryPort), DataDir: dataDir,
		StorageBytes: dirSize(dataDir),
	}
	if st.State, st.RestartCount, err = rt.State(ctx); err != nil {
		return st, err
	}
	switch st.State {
	case "missing":
		st.Health = "no registry (run `idpbuilder create`)"
		return st, nil
	case "running":
		st.Health = probeHealth(ctx, client.Transport, fmt.Sprintf("%s://127.0.0.1:%d/readyz", scheme, cfg.Cluster.RegistryPort))
	default:
		st.Health = "not running (start it: `idpbuilder registry start`)"
	}
	if st.State == "running" {
		hctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		h, err := client.Health(hctx)
		cancel()
		var ae *registryclient.APIError
		switch {
		case err == nil:
			st.Checks = &h
		case errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound:
			// A registry from before detailed health: /readyz is all there is.
		case st.Health == "ok":
			st.Health = "health: " + err.Error()
		}
	}
	if st.Health == "ok" {
		entries, err := client.List(ctx, "")
		if err != nil {
			st.Health = "catalog: " + err.Error()
		}
		repos := map[string]bool{}
		for _, e := range entries {
			repos[e.Repository] = true
		}
		st.Repositories, st.Tags = len(repos), len(entries)
	}

	cl, err := kind.New(cfg.Cluster.Name, &kindLogger{w: stdio.Err})
	if err != nil {
		st.WiringError = err.Error()
		return st, nil
	}
	if ok, err := cl.Exists(); err != nil || !ok {
		st.WiringError = fmt.Sprintf("cluster %q does not exist", cfg.Cluster.Name)
		return st, nil
	}
	ep, err := rt.Endpoint(ctx)
	if err != nil {
		st.WiringError = err.Error()
		return st, nil
	}
	reg, err := clusterRegistry(stdio, cfg, ep)
	if err != nil {
		st.WiringError = err.Error()
		return st, nil
	}
	ws, err := cl.Wiring(ctx, reg)
	if err != nil {
		st.WiringError = err.Error()
		return st, nil
	}
	st.Wiring = &ws
	return st, nil
}

// registryClient is a client for addr, or for the cluster's registry when addr
// is empty. It trusts the system roots plus the local CAs (of `registry serve`
// and of the cluster), and logs in with what `registry login` stored for the
// server; for reading only, a cluster whose every request needs a login is read
// as its nodes (never to write: pushing stays the logged-in user's). It also
// returns the scheme the registry speaks, as far as the settings tell.
func registryClient(stdio IO, cfg config.Config, addr string, write bool) (*registryclient.Client, string) {
	st := resolveSettings(stdio, cfg)
	scheme := "http"
	if addr == "" {
		addr = fmt.Sprintf("localhost:%d", cfg.Cluster.RegistryPort)
		if st.TLS {
			scheme = "https"
		}
	}
	c := registryclient.New(addr)
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	for _, ca := range []string{
		filepath.Join(clusterCertDir(stdio.Env, cfg.Cluster.Name), certs.CAFile),
		filepath.Join(cfg.Registry.CertDir, certs.CAFile),
	} {
		if pem, err := os.ReadFile(ca); err == nil {
			pool.AppendCertsFromPEM(pem)
		}
	}
	// Insecure still lets go-containerregistry try HTTPS first, now with our CAs.
	c.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	if cr, err := credStore(stdio.Env).Get(addr); err == nil {
		c.Auth = &authn.Basic{Username: cr.Username, Password: cr.Secret}
	} else if !write && st.Auth == "all" && addr == fmt.Sprintf("localhost:%d", cfg.Cluster.RegistryPort) {
		if secret, err := os.ReadFile(filepath.Join(clusterStateDir(stdio.Env, cfg.Cluster.Name), "node-pull.secret")); err == nil {
			c.Auth = &authn.Basic{Username: nodeUser(cfg.Cluster.Name), Password: string(secret)}
		}
	}
	return c, scheme
}

func probeHealth(ctx context.Context, tr http.RoundTripper, url string) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if tr == nil {
		tr = http.DefaultTransport
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return err.Error()
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "readyz: " + resp.Status
	}
	return "ok"
}

func statusTable(tw *tabwriter.Writer, st registryStatus) {
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
	switch {
	case st.Wiring != nil:
		fmt.Fprintf(tw, "Wiring:\tlocal-registry-hosting %s\n", st.Wiring.LocalRegistryHosting)
		for _, n := range st.Wiring.Nodes {
			var parts []string
			for name, s := range n.HostsTOML {
				parts = append(parts, name+" "+s)
			}
			fmt.Fprintf(tw, "\tnode %s: hosts.toml %s\n", n.Node, strings.Join(sortedStrings(parts), ", "))
		}
	default:
		fmt.Fprintf(tw, "Wiring:\t%s\n", st.WiringError)
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
			repo := ""
			if len(args) == 1 {
				repo = args[0]
			}
			client, _ := registryClient(stdio, cfg, addr, false)
			entries, err := client.List(cmd.Context(), repo)
			if err != nil {
				return err
			}
			if entries == nil {
				entries = []registryclient.Entry{}
			}
			return printOutput(stdio.Out, output, entries, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "REPOSITORY\tTAG\tDIGEST\tSIZE\tPLATFORMS")
				for _, e := range entries {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Repository, e.Tag, e.Digest, humanBytes(e.Size), strings.Join(e.Platforms, ","))
				}
			})
		},
	}
	addSettingFlags(cmd.Flags(), "name", "registry-port", "cert-dir")
	cmd.Flags().StringVar(&addr, "registry-addr", "", "registry host:port (default localhost:<registry-port>)")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table, json or yaml")
	return cmd
}

func newRegistryStartCommand(stdio IO) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "start",
		Short: "Start (or repair) the cluster's registry",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := setup(cmd, stdio)
			if err != nil {
				return err
			}
			ok, err := (&docker.Client{}).NetworkExists(cmd.Context(), kind.Network)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("docker network %q does not exist: create the cluster first (`idpbuilder create --name %s`)", kind.Network, cfg.Cluster.Name)
			}
			rt, ep, err := ensureRegistry(cmd.Context(), stdio, cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdio.Out, "Registry %s (%s) is running at %s\n", rt.Mode(), rt.Describe(), ep.HostAddr)
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
			rt, err := newRuntime(cmd.Context(), stdio, cfg, registryMode(stdio, cfg))
			if err != nil {
				return err
			}
			if err := rt.Stop(cmd.Context()); err != nil {
				return err
			}
			fmt.Fprintf(stdio.Out, "Registry %s (%s) stopped; `idpbuilder registry start` starts it again.\n", rt.Mode(), rt.Describe())
			return nil
		},
	}
	addSettingFlags(cmd.Flags(), "name", "registry-port")
	return cmd
}
