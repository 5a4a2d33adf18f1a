// Package cli holds idpbuilder's cobra commands. It is the only package that knows
// about flags, config files, environment variables and the terminal.
package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/idpbuilder/idpbuilder/pkg/config"
	"github.com/idpbuilder/idpbuilder/pkg/exec"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// IO is what a command run may touch of the outside world.
type IO struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer
	Env func(string) (string, bool)
	// Exec runs programs (docker, and commands in cluster nodes); this machine when nil.
	Exec exec.Cmder
	// Binary is the idpbuilder executable a cluster's registry runs; this
	// process's own (os.Executable) when empty.
	Binary string
}

// usageError marks an error as the user's input being wrong (exit code 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// Usage marks err as a usage or configuration error.
func Usage(err error) error {
	if err == nil {
		return nil
	}
	return usageError{err}
}

// Run executes the idpbuilder command line and returns the process exit code.
func Run(ctx context.Context, args []string, stdio IO) int {
	root := NewRootCommand(stdio)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	// cobra reports an unknown subcommand with a plain error: its own lookup
	// failing tells it is the user's input.
	if _, _, ferr := root.Find(args); ferr != nil {
		err = Usage(err)
	}
	fmt.Fprintf(stdio.Err, "Error: %v\n", err)
	if h := hint(err); h != "" {
		fmt.Fprintln(stdio.Err, h)
	}
	return exitCode(err)
}

// usageArgs makes a positional-argument check report a usage error (exit code 2).
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return Usage(fmt.Errorf("%w (see '%s --help')", err, cmd.CommandPath()))
		}
		return nil
	}
}

// NewRootCommand builds the command tree.
func NewRootCommand(stdio IO) *cobra.Command {
	root := &cobra.Command{
		Use:   "idpbuilder",
		Short: "A local Kubernetes platform with a built-in OCI registry",
		Long: "idpbuilder gives you a local Kind cluster with a built-in OCI registry:\n" +
			"docker push localhost:5001/app:v1 on your laptop, and pods in the cluster run it.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(stdio.In)
	root.SetOut(stdio.Out)
	root.SetErr(stdio.Err)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return Usage(fmt.Errorf("%w (see '%s --help')", err, c.CommandPath()))
	})
	root.PersistentFlags().String("config", "", "config file (default $XDG_CONFIG_HOME/idpbuilder/config.yaml if it exists; env IDPBUILDER_CONFIG)")
	addSettingFlags(root.PersistentFlags(), "log-level", "log-format")

	root.AddCommand(newVersionCommand(stdio), newRegistryCommand(stdio), newCreateCommand(stdio), newDeleteCommand(stdio),
		newCredentialHelperCommand(stdio))
	return root
}

// addSettingFlags registers flags for the named settings, with the built-in defaults
// shown in help. The values are read back through loadConfig, never directly.
func addSettingFlags(fs *pflag.FlagSet, names ...string) {
	defaults := config.Default(func(string) (string, bool) { return "", false })
	for _, s := range config.Settings() {
		for _, n := range names {
			if s.Flag != n {
				continue
			}
			usage := fmt.Sprintf("%s (env %s)", s.Usage, s.Env())
			if s.Bool {
				fs.Bool(s.Flag, s.Get(&defaults) == "true", usage)
			} else {
				fs.String(s.Flag, s.Get(&defaults), usage)
			}
			if s.Hidden {
				_ = fs.MarkHidden(s.Flag)
			}
		}
	}
}

// loadConfig merges defaults, config file, environment and the flags the user set
// on cmd, then validates the result.
func loadConfig(cmd *cobra.Command, stdio IO) (config.Config, error) {
	flags := map[string]string{}
	cmd.Flags().Visit(func(f *pflag.Flag) { flags[f.Name] = f.Value.String() })
	file := flags["config"]
	if file == "" {
		if v, ok := stdio.Env(config.EnvPrefix + "CONFIG"); ok {
			file = v
		}
	}
	cfg, err := config.Load(config.Sources{File: file, Env: stdio.Env, Flags: flags})
	if err != nil {
		return config.Config{}, err
	}
	return cfg, nil
}

// setup loads the configuration for cmd and sets up logging: the start of
// every command that is configured.
func setup(cmd *cobra.Command, stdio IO) (config.Config, error) {
	cfg, err := loadConfig(cmd, stdio)
	if err != nil {
		return config.Config{}, err
	}
	newLogger(cfg.Log, stdio.Err)
	return cfg, nil
}

// newLogger returns the structured logger for stderr and makes it slog's default,
// which is where distribution's own logs are bridged to.
func newLogger(cfg config.Log, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.SlogLevel()}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if cfg.Format == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	logger := slog.New(h)
	slog.SetDefault(logger)
	return logger
}
