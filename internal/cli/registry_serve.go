package cli

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/idpbuilder/idpbuilder/pkg/auth"
	"github.com/idpbuilder/idpbuilder/pkg/certs"
	"github.com/idpbuilder/idpbuilder/pkg/component"
	"github.com/idpbuilder/idpbuilder/pkg/config"
	"github.com/idpbuilder/idpbuilder/pkg/registry"
	"github.com/idpbuilder/idpbuilder/pkg/registryapi"
	"github.com/idpbuilder/idpbuilder/pkg/ui"
)

func newRegistryServeCommand(stdio IO) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the registry in the foreground until SIGINT or SIGTERM",
		Long: "Run the OCI registry in the foreground, storing images on the local filesystem.\n" +
			"It stops gracefully on SIGINT/SIGTERM: in-flight requests get --shutdown-timeout to finish.\n\n" +
			"Every flag can also be set in the config file (registry.<key>) or as an IDPBUILDER_* environment\n" +
			"variable; a flag wins over the environment, which wins over the file.",
		Example: "  idpbuilder registry serve\n" +
			"  idpbuilder registry serve --addr 127.0.0.1:5001 --data-dir ./registry-data\n" +
			"  idpbuilder registry serve --quota 20GiB --repo-quota 5GiB\n" +
			"  IDPBUILDER_ADDR=0.0.0.0:5001 idpbuilder registry serve",
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runRegistryServe(cmd, stdio)
		},
	}
	addSettingFlags(cmd.Flags(), "addr", "extra-addrs", "data-dir", "shutdown-timeout", "upload-purge-age",
		"tls", "tls-cert", "tls-key", "tls-names", "cert-dir", "auth", "htpasswd", "access-log", "rate-limit", "rate-burst",
		"quota", "repo-quota", "gc-interval", "gc-grace", "gc-untagged", "metrics-addr", "ui", "ui-cluster-host", "cert-check-interval")
	return cmd
}

func runRegistryServe(cmd *cobra.Command, stdio IO) error {
	ctx := cmd.Context()
	cfg, err := loadConfig(cmd, stdio)
	if err != nil {
		return err
	}
	logger := newLogger(cfg.Log, stdio.Err)
	opts, policy, closeLog, err := serveOptions(cfg, stdio, logger)
	if err != nil {
		return err
	}
	defer closeLog()
	// Bind first: a busy port must fail before anything is written to the data dir.
	closeListeners, err := listen(ctx, cfg, &opts)
	if err != nil {
		return err
	}
	reg, group, caHint, err := serveComponents(cfg, opts, logger)
	if err == nil {
		err = group.Start(ctx)
	}
	if err != nil {
		closeListeners()
		var dde *registry.DataDirError
		if errors.As(err, &dde) {
			return Usage(err)
		}
		return err
	}
	printServing(stdio, cfg, reg, policy, caHint)
	return serveUntilStopped(ctx, cfg, reg, group, logger)
}

// serveOptions are the registry's options from the configuration, with its
// auth policy and access log (closeLog closes it).
func serveOptions(cfg config.Config, stdio IO, logger *slog.Logger) (registry.Options, auth.Policy, func(), error) {
	opts := registry.Options{
		ExtraAddrs:     cfg.Registry.ExtraAddrs,
		DataDir:        cfg.Registry.DataDir,
		UploadPurgeAge: cfg.Registry.UploadPurgeAge,
		GCGrace:        cfg.Registry.GCGrace,
		Logger:         logger,
		RateLimit: registry.RateLimit{
			RequestsPerSecond: cfg.Registry.RateLimit,
			Burst:             cfg.Registry.RateBurst,
			Disabled:          cfg.Registry.RateLimit == 0,
		},
		Quota:     cfg.Registry.Quota,
		RepoQuota: cfg.Registry.RepoQuota,
	}
	policy, err := authOptions(cfg, &opts)
	if err != nil {
		return opts, "", nil, err
	}
	accessLog, closeLog, err := openAccessLog(cfg, stdio)
	if err != nil {
		return opts, "", nil, err
	}
	opts.AccessLog = accessLog
	if cfg.Registry.UI {
		opts.UI = webUI(cfg, logger)
	}
	return opts, policy, closeLog, nil
}

// listen binds the registry's address and, when configured, the metrics address.
func listen(ctx context.Context, cfg config.Config, opts *registry.Options) (closeListeners func(), err error) {
	ln, err := registry.Listen(ctx, cfg.Registry.Addr)
	if err != nil {
		return nil, Usage(err)
	}
	opts.Listener = ln
	if cfg.Registry.MetricsAddr == "" {
		return func() { _ = ln.Close() }, nil
	}
	mln, err := registry.Listen(ctx, cfg.Registry.MetricsAddr)
	if err != nil {
		_ = ln.Close()
		var le *registry.ListenError
		if errors.As(err, &le) && le.InUse {
			return nil, Usage(fmt.Errorf("metrics address %s is already in use: stop the process using it or choose another (--metrics-addr)", le.Addr))
		}
		return nil, Usage(fmt.Errorf("metrics address (--metrics-addr): %w", err))
	}
	opts.MetricsListener = mln
	return func() { _ = ln.Close(); _ = mln.Close() }, nil
}

// serveComponents are what `registry serve` runs: the certificate renewer
// (first: the registry serves its certificate; stopped last), the registry,
// and the GC scheduler (after the registry: it collects in it, and stops before it).
func serveComponents(cfg config.Config, opts registry.Options, logger *slog.Logger) (*registry.Registry, *component.Group, string, error) {
	caHint := ""
	var components []component.Component
	if cfg.Registry.TLS {
		renewer, hint, err := tlsOptions(cfg, &opts, cfg.Registry.CertCheckInterval, logger)
		if err != nil {
			return nil, nil, "", err
		}
		caHint = hint
		if renewer != nil {
			components = append(components, renewer)
		}
	}
	reg := registry.New(opts)
	components = append(components, reg)
	if cfg.Registry.GCInterval > 0 {
		components = append(components, &registry.GCScheduler{Registry: reg, Interval: cfg.Registry.GCInterval,
			Request: registryapi.GCRequest{Untagged: cfg.Registry.GCUntagged}, Logger: logger})
	}
	return reg, component.NewGroup(components...), caHint, nil
}

// printServing tells where the registry serves and how to use it.
func printServing(stdio IO, cfg config.Config, reg *registry.Registry, policy auth.Policy, caHint string) {
	addr, scheme := reg.Addr(), "http"
	if cfg.Registry.TLS {
		scheme = "https"
	}
	fmt.Fprintf(stdio.Out, "Registry listening on %s://%s (data in %s, auth: %s)\n", scheme, addr, cfg.Registry.DataDir, policy)
	fmt.Fprintf(stdio.Out, "Push an image: docker tag IMAGE %s/IMAGE && docker push %s/IMAGE\n", pushHost(addr), pushHost(addr))
	if caHint != "" {
		fmt.Fprintln(stdio.Out, caHint)
	}
	if m := reg.MetricsAddr(); m != "" {
		fmt.Fprintf(stdio.Out, "Metrics on http://%s/metrics (plain HTTP, no login: anyone who reaches that address can read them)\n", m)
	}
	if cfg.Registry.UI {
		fmt.Fprintf(stdio.Out, "Web UI: %s://%s/ui/\n", scheme, pushHost(addr))
	}
}

// serveUntilStopped serves until a stop signal or the registry's failure,
// then gives in-flight requests the shutdown timeout.
func serveUntilStopped(ctx context.Context, cfg config.Config, reg *registry.Registry, group *component.Group, logger *slog.Logger) error {
	var serveErr error
	select {
	case <-ctx.Done():
		logger.Info("stop signal received, shutting down", "timeout", cfg.Registry.ShutdownTimeout)
	case serveErr = <-reg.Done():
		if serveErr == nil {
			serveErr = errors.New("registry stopped serving unexpectedly")
		}
	}
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.Registry.ShutdownTimeout)
	defer cancel()
	return errors.Join(serveErr, group.Stop(stopCtx))
}

// webUI builds the UI over the registry. It answers to loopback names, IP
// addresses, this machine's name and the names the registry is configured with.
func webUI(cfg config.Config, logger *slog.Logger) func(*registry.UISource) (http.Handler, error) {
	hosts := append([]string{}, cfg.Registry.TLSNames...)
	for _, a := range append([]string{cfg.Registry.Addr, cfg.Registry.UIClusterHost}, cfg.Registry.ExtraAddrs...) {
		if host, _, err := net.SplitHostPort(a); err == nil && host != "" {
			hosts = append(hosts, host)
		}
	}
	if h, err := os.Hostname(); err == nil {
		hosts = append(hosts, h)
	}
	return func(src *registry.UISource) (http.Handler, error) {
		return ui.New(src, ui.Config{ClusterHost: cfg.Registry.UIClusterHost, Hosts: hosts, Logger: logger})
	}
}

// authOptions resolves the auth policy: the configured one, else push when users
// exist, else none. A policy that needs users when there are none is refused.
func authOptions(cfg config.Config, opts *registry.Options) (auth.Policy, error) {
	verifier := auth.NewVerifier(auth.Htpasswd{Path: cfg.Registry.Htpasswd})
	has, err := verifier.HasUsers()
	if err != nil {
		return "", Usage(fmt.Errorf("read users from %s: %w", cfg.Registry.Htpasswd, err))
	}
	policy := auth.PolicyNone
	if has {
		policy = auth.PolicyPush
	}
	if cfg.Registry.Auth != "" {
		policy = cfg.Registry.Auth
	}
	if policy != auth.PolicyNone && !has {
		return "", Usage(fmt.Errorf("--auth=%s needs at least one user in %s: add one with `idpbuilder registry user add NAME --password-stdin`", policy, cfg.Registry.Htpasswd))
	}
	opts.Auth = &registry.AuthOptions{Policy: policy, Verifier: verifier}
	return policy, nil
}

// tlsOptions sets up HTTPS: your own certificate, or one from the local CA kept
// current by a renewer component. It returns the renewer (nil for your own
// certificate) and a hint about trusting the CA.
func tlsOptions(cfg config.Config, opts *registry.Options, interval time.Duration, logger *slog.Logger) (*certs.Renewer, string, error) {
	if cfg.Registry.TLSCert != "" {
		get, _, err := certs.LoadStatic(cfg.Registry.TLSCert, cfg.Registry.TLSKey)
		if err != nil {
			return nil, "", Usage(err)
		}
		opts.GetCertificate = get
		return nil, "", nil
	}
	names := append([]string{}, cfg.Registry.TLSNames...)
	for _, a := range append([]string{cfg.Registry.Addr}, cfg.Registry.ExtraAddrs...) {
		if host, _, err := net.SplitHostPort(a); err == nil && host != "" && host != "0.0.0.0" && host != "::" {
			names = append(names, host)
		}
	}
	m := &certs.Manager{Dir: cfg.Registry.CertDir, Names: names}
	renewer := &certs.Renewer{Manager: m, Interval: interval, OnRenew: func(leaf *x509.Certificate, err error) {
		if err != nil {
			logger.Error("certificate renewal failed", "err", err)
			return
		}
		logger.Info("serving a renewed certificate", "serial", leaf.SerialNumber.String(), "not_after", leaf.NotAfter)
	}}
	opts.GetCertificate = m.GetCertificate
	return renewer, fmt.Sprintf("Clients must trust the CA %s (idpbuilder registry trust installs it for Docker and containerd)",
		filepath.Join(cfg.Registry.CertDir, certs.CAFile)), nil
}

// openAccessLog returns the access logger: stderr (the main log's format), a
// JSON file, or none.
func openAccessLog(cfg config.Config, stdio IO) (*slog.Logger, func(), error) {
	switch cfg.Registry.AccessLog {
	case "off":
		return nil, func() {}, nil
	case "stderr":
		return slog.Default().With("log", "access"), func() {}, nil
	}
	f, err := os.OpenFile(cfg.Registry.AccessLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, Usage(fmt.Errorf("open access log: %w", err))
	}
	return slog.New(slog.NewJSONHandler(f, nil)), func() { f.Close() }, nil
}

// pushHost is the name docker users should push to: loopback and wildcard
// addresses become "localhost", which Docker treats as an insecure-allowed registry.
func pushHost(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && (ip.IsLoopback() || ip.IsUnspecified())) {
		return net.JoinHostPort("localhost", port)
	}
	return addr
}
