package cli

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/spf13/cobra"

	"github.com/idpbuilder/idpbuilder/pkg/registry"
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
			"  IDPBUILDER_ADDR=0.0.0.0:5001 idpbuilder registry serve",
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runRegistryServe(cmd, stdio)
		},
	}
	addSettingFlags(cmd.Flags(), "addr", "extra-addrs", "data-dir", "shutdown-timeout", "upload-purge-age")
	return cmd
}

func runRegistryServe(cmd *cobra.Command, stdio IO) error {
	ctx := cmd.Context()
	cfg, err := loadConfig(cmd, stdio)
	if err != nil {
		return err
	}
	logger := newLogger(cfg.Log, stdio.Err)

	// Bind first: a busy port must fail before anything is written to the data dir.
	ln, err := registry.Listen(ctx, cfg.Registry.Addr)
	if err != nil {
		return Usage(err)
	}
	reg := registry.New(registry.Options{
		Listener:       ln,
		ExtraAddrs:     cfg.Registry.ExtraAddrs,
		DataDir:        cfg.Registry.DataDir,
		UploadPurgeAge: cfg.Registry.UploadPurgeAge,
		Logger:         logger,
	})
	if err := reg.Start(ctx); err != nil {
		var dde *registry.DataDirError
		if errors.As(err, &dde) {
			return Usage(err)
		}
		return err
	}

	addr := reg.Addr()
	fmt.Fprintf(stdio.Out, "Registry listening on http://%s (data in %s)\n", addr, cfg.Registry.DataDir)
	fmt.Fprintf(stdio.Out, "Push an image: docker tag IMAGE %s/IMAGE && docker push %s/IMAGE\n", pushHost(addr), pushHost(addr))

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
	return errors.Join(serveErr, reg.Stop(stopCtx))
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
