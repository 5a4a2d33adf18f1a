package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/idpbuilder/idpbuilder/pkg/auth"
	"github.com/idpbuilder/idpbuilder/pkg/config"
)

// helperBinary is the name Docker looks for on PATH.
const helperBinary = "docker-credential-" + auth.HelperName

// Main is the process entry point: run as docker-credential-idpbuilder (a link
// to this binary), it speaks the credential-helper protocol; otherwise it is the
// idpbuilder command line.
func Main(ctx context.Context, argv []string, stdio IO) int {
	if len(argv) > 0 && filepath.Base(argv[0]) == helperBinary {
		return runCredentialHelper(argv[1:], stdio)
	}
	return Run(ctx, argv[1:], stdio)
}

func credStore(env func(string) (string, bool)) auth.CredStore {
	return auth.CredStore{Path: filepath.Join(config.StateDir(env), "auth", "credentials.json")}
}

func runCredentialHelper(args []string, stdio IO) int {
	if len(args) != 1 {
		fmt.Fprintf(stdio.Err, "usage: %s get|store|erase|list (Docker runs this; see `idpbuilder registry login`)\n", helperBinary)
		return ExitUsage
	}
	if err := auth.ServeHelper(credStore(stdio.Env), args[0], stdio.In, stdio.Out); err != nil {
		return ExitFailure
	}
	return ExitOK
}

func newCredentialHelperCommand(stdio IO) *cobra.Command {
	return &cobra.Command{
		Use:    "credential-helper get|store|erase|list",
		Short:  "Docker credential helper protocol (what docker-credential-idpbuilder runs)",
		Hidden: true,
		Args:   usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if code := runCredentialHelper(args, stdio); code != ExitOK {
				return errors.New("credential helper failed")
			}
			return nil
		},
	}
}

func newRegistryLoginCommand(stdio IO) *cobra.Command {
	var user string
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "login [SERVER] -u USER --password-stdin",
		Short: "Log Docker in to the registry through the idpbuilder credential helper",
		Long: "Checks the credentials against the registry, keeps them in idpbuilder's credential store\n" +
			"(0600), and sets credHelpers[SERVER] = \"idpbuilder\" in Docker's config.json (rewritten\n" +
			"atomically; every other key is kept). SERVER defaults to localhost:<registry-port>.",
		Example: "  printf '%s' \"$PASSWORD\" | idpbuilder registry login -u alice --password-stdin",
		Args:    usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if user == "" {
				return Usage(errors.New("give the user name with -u"))
			}
			if !passwordStdin {
				return Usage(errors.New("passwords are read from stdin only: add --password-stdin"))
			}
			return runLogin(cmd, stdio, args, user)
		},
	}
	addSettingFlags(cmd.Flags(), "name", "registry-port", "cert-dir")
	cmd.Flags().StringVarP(&user, "username", "u", "", "user name")
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from stdin")
	return cmd
}

func runLogin(cmd *cobra.Command, stdio IO, args []string, user string) error {
	cfg, err := setup(cmd, stdio)
	if err != nil {
		return err
	}
	server, err := serverArg(stdio, cfg, args)
	if err != nil {
		return err
	}
	password, err := readPassword(stdio.In)
	if err != nil {
		return Usage(err)
	}
	client, _, err := registryClient(stdio, cfg, server, true)
	if err != nil {
		return err
	}
	if err := checkLogin(cmd.Context(), client.Transport, server, user, password); err != nil {
		return err
	}
	if err := credStore(stdio.Env).Store(auth.Credentials{ServerURL: server, Username: user, Secret: password}); err != nil {
		return fmt.Errorf("save credentials: %w", err)
	}
	dockerCfg := dockerConfigPath(stdio.Env)
	if err := auth.SetCredHelper(dockerCfg, server); err != nil {
		return fmt.Errorf("update %s: %w", dockerCfg, err)
	}
	fmt.Fprintf(stdio.Out, "Login succeeded: Docker uses the idpbuilder credential helper for %s (%s)\n", server, dockerCfg)
	if hint := ensureHelperOnPath(); hint != "" {
		fmt.Fprintln(stdio.Err, hint)
	}
	return nil
}

// checkLogin asks the registry's /v2/ with the credentials, over HTTPS (with tr,
// which trusts the system roots and the local CAs) or, failing that, plain HTTP.
func checkLogin(ctx context.Context, tr http.RoundTripper, server, user, password string) error {
	client := &http.Client{Timeout: 30 * time.Second, Transport: tr}
	var lastErr error
	for _, scheme := range []string{"https", "http"} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+server+"/v2/", nil)
		req.SetBasicAuth(user, password)
		resp, err := client.Do(req)
		if err != nil {
			lastErr = err
			continue
		}
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			return nil
		case http.StatusUnauthorized:
			return fmt.Errorf("login to %s failed: invalid username or password", server)
		case http.StatusTooManyRequests:
			return fmt.Errorf("login to %s refused: too many failed logins, retry after %ss", server, resp.Header.Get("Retry-After"))
		default:
			return fmt.Errorf("login to %s: the registry answered %s", server, resp.Status)
		}
	}
	return fmt.Errorf("cannot reach the registry at %s: %w", server, lastErr)
}

func dockerConfigPath(env func(string) (string, bool)) string {
	if d, ok := env("DOCKER_CONFIG"); ok && d != "" {
		return filepath.Join(d, "config.json")
	}
	home, _ := env("HOME")
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	return filepath.Join(home, ".docker", "config.json")
}

// ensureHelperOnPath links docker-credential-idpbuilder to this binary beside it
// when Docker cannot find the helper; it returns advice when it cannot.
func ensureHelperOnPath() string {
	if _, err := exec.LookPath(helperBinary); err == nil {
		return ""
	}
	self, err := os.Executable()
	if err != nil {
		return "Docker needs " + helperBinary + " on PATH: link it to the idpbuilder binary"
	}
	link := filepath.Join(filepath.Dir(self), helperBinary)
	if err := os.Symlink(self, link); err == nil {
		if _, err := exec.LookPath(helperBinary); err == nil {
			return ""
		}
		return fmt.Sprintf("Linked %s; add %s to PATH so Docker finds it", link, filepath.Dir(self))
	}
	return fmt.Sprintf("Docker needs %s on PATH: ln -s %s /usr/local/bin/%s", helperBinary, self, helperBinary)
}
