// Package config holds idpbuilder's configuration schema, its defaults, and the
// precedence rules that merge a YAML file, IDPBUILDER_* environment variables and
// command-line flags: flag > env > file > default.
//
// Every setting is described once in a table (see settings.go) with its file key,
// flag name and environment variable, and is parsed by the same function whichever
// source it comes from, so a value means the same thing everywhere and every error
// names the setting and the source it came from.
package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/idpbuilder/idpbuilder/pkg/auth"
	"github.com/idpbuilder/idpbuilder/pkg/registry"
	"github.com/idpbuilder/idpbuilder/pkg/registryapi"
)

// Config is the whole idpbuilder configuration.
type Config struct {
	Log      Log
	Registry Registry
	Cluster  Cluster
	// Origins says where each setting that is not a default came from, by key:
	// "flag --registry-port", "env IDPBUILDER_NAME", "config.yaml:3".
	Origins map[string]string
}

// IsSet reports whether the setting with file key key was given (flag,
// environment or file) rather than left at its default.
func (c *Config) IsSet(key string) bool {
	_, ok := c.Origins[key]
	return ok
}

// Cluster configures `idpbuilder create` and the commands that find a cluster's registry.
type Cluster struct {
	// Name of the kind cluster.
	Name string
	// NodeImage overrides kind's default node image.
	NodeImage string
	// KindConfig is a kind config file merged with idpbuilder's.
	KindConfig string
	// RegistryPort is the registry's port on 127.0.0.1.
	RegistryPort int
	// InClusterName is the registry's name for pods.
	InClusterName string
	// RegistryMode is where the registry runs: container or process; empty means
	// container, falling back to process where a container cannot run our binary.
	RegistryMode string
	// RegistryTLS serves the registry over HTTPS.
	RegistryTLS bool
	// RegistryAuth is who must log in to the registry.
	RegistryAuth auth.Policy
	// (A cluster's registry settings that are not set explicitly (IsSet) are
	// what the cluster was created with; these defaults apply to a new one.)
}

// Log configures idpbuilder's own structured logs (always on stderr).
type Log struct {
	// Level is one of debug, info, warn, error.
	Level string
	// Format is text or json.
	Format string
}

// Registry configures the embedded OCI registry.
type Registry struct {
	// Addr is the host:port the registry listens on. Port 0 picks a free port.
	Addr string
	// ExtraAddrs are more host:port addresses to serve on (e.g. a Docker network gateway).
	ExtraAddrs []string
	// DataDir is where images are stored (filesystem storage driver).
	DataDir string
	// ShutdownTimeout bounds how long in-flight requests may run after a stop signal.
	ShutdownTimeout time.Duration
	// UploadPurgeAge is how old an abandoned upload must be before it is deleted.
	UploadPurgeAge time.Duration

	// TLS serves HTTPS with a certificate from CertDir (or TLSCert/TLSKey).
	TLS bool
	// TLSCert and TLSKey bring your own certificate (both or neither).
	TLSCert, TLSKey string
	// TLSNames are extra names (DNS or IP) for the generated certificate.
	TLSNames []string
	// CertDir holds the generated CA and server certificate.
	CertDir string
	// Auth is who must log in; empty means push when users exist, else none.
	Auth auth.Policy
	// Htpasswd is the user file.
	Htpasswd string
	// AccessLog is "stderr", "off" or a file path.
	AccessLog string
	// RateLimit is requests per second per client; RateBurst the bucket size.
	RateLimit float64
	RateBurst int
	// UI serves the web UI at /ui/.
	UI bool
	// UIClusterHost is the host:port pods pull by, for the UI's kubectl
	// commands; empty means the address the browser uses.
	UIClusterHost string
	// Quota bounds what all repositories hold together, RepoQuota what each
	// holds, in bytes, each blob counted once; 0 means no limit.
	Quota, RepoQuota int64

	// GCInterval runs garbage collection inside the registry this often; 0: never.
	GCInterval time.Duration
	// GCGrace: garbage collection never deletes anything younger.
	GCGrace time.Duration
	// GCUntagged makes the periodic runs delete untagged images too.
	GCUntagged bool
	// CertCheckInterval is how often the generated certificate is checked for renewal.
	CertCheckInterval time.Duration
	// MetricsAddr, if set, serves /metrics there too, without auth.
	MetricsAddr string
}

// Default returns the built-in defaults. env looks up environment variables
// (os.LookupEnv in production); it is used only to locate the user's state dir.
func Default(env func(string) (string, bool)) Config {
	return Config{
		Log: Log{Level: "info", Format: "text"},
		Cluster: Cluster{
			Name:          "localdev",
			RegistryPort:  5001,
			InClusterName: "registry.local",
			RegistryAuth:  auth.PolicyNone,
		},
		Registry: Registry{
			Addr:            "127.0.0.1:5001",
			DataDir:         filepath.Join(StateDir(env), "registry"),
			ShutdownTimeout: 30 * time.Second,
			UploadPurgeAge:  registry.DefaultUploadPurgeAge,
			CertDir:         filepath.Join(StateDir(env), "certs"),
			Htpasswd:        filepath.Join(StateDir(env), "auth", "htpasswd"),
			AccessLog:       "stderr",
			RateLimit:       registry.DefaultRequestsPerSecond,
			RateBurst:       registry.DefaultBurst,
			GCGrace:         registryapi.DefaultGCGrace,
			// An hour: a certificate is renewed long before it expires.
			CertCheckInterval: time.Hour,
			UI:                true,
		},
	}
}

// StateDir is idpbuilder's state directory: $XDG_STATE_HOME/idpbuilder, else
// ~/.local/state/idpbuilder, else a directory under the system temp dir when no
// home directory is known (e.g. a bare container user).
func StateDir(env func(string) (string, bool)) string {
	if v, ok := env("XDG_STATE_HOME"); ok && filepath.IsAbs(v) {
		return filepath.Join(v, "idpbuilder")
	}
	if home, ok := env("HOME"); ok && home != "" {
		return filepath.Join(home, ".local", "state", "idpbuilder")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "idpbuilder")
	}
	return filepath.Join(os.TempDir(), "idpbuilder-state")
}

// Error is a configuration error: a bad value, an unknown key, an unreadable file.
// Callers treat it as a usage error (exit code 2).
type Error struct {
	// Source says where the value came from: "flag --addr", "env IDPBUILDER_ADDR",
	// "config.yaml:3", or "config" for a merged value that fails validation.
	Source string
	// Key is the file key of the setting, e.g. "registry.addr". Empty for
	// errors about the file as a whole.
	Key string
	Err error
}

func (e *Error) Error() string {
	switch {
	case e.Key == "":
		return fmt.Sprintf("%s: %v", e.Source, e.Err)
	default:
		return fmt.Sprintf("%s: %s: %v", e.Source, e.Key, e.Err)
	}
}

func (e *Error) Unwrap() error { return e.Err }

// IsConfigError reports whether err is (or wraps) a configuration error.
func IsConfigError(err error) bool {
	var ce *Error
	return errors.As(err, &ce)
}

// Validate checks the merged configuration and returns every problem found,
// each naming its key.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key string, format string, args ...any) {
		errs = append(errs, &Error{Source: "config", Key: key, Err: fmt.Errorf(format, args...)})
	}
	if _, err := parseLevel(c.Log.Level); err != nil {
		bad("log.level", "%v", err)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		bad("log.format", "%q is not a log format (use text or json)", c.Log.Format)
	}
	if err := validateAddr(c.Registry.Addr); err != nil {
		bad("registry.addr", "%v", err)
	}
	if c.Registry.DataDir == "" {
		bad("registry.dataDir", "must not be empty")
	}
	if c.Registry.ShutdownTimeout <= 0 {
		bad("registry.shutdownTimeout", "must be positive, got %s", c.Registry.ShutdownTimeout)
	}
	if (c.Registry.TLSCert == "") != (c.Registry.TLSKey == "") {
		bad("registry.tlsCert", "give both a certificate (--tls-cert) and its key (--tls-key), or neither")
	}
	if c.Registry.TLSCert != "" && !c.Registry.TLS {
		bad("registry.tls", "--tls-cert/--tls-key are set but TLS is off: add --tls")
	}
	if c.Registry.UploadPurgeAge < time.Minute {
		bad("registry.uploadPurgeAge", "must be at least 1m, got %s (uploads younger than this are never purged)", c.Registry.UploadPurgeAge)
	}
	if !clusterNameRE.MatchString(c.Cluster.Name) {
		bad("cluster.name", "%q is not a valid cluster name (lower-case letters, digits, '.' and '-', starting with a letter or digit)", c.Cluster.Name)
	}
	if c.Cluster.RegistryPort < 1 || c.Cluster.RegistryPort > 65535 {
		bad("cluster.registryPort", "%d is not a port (1-65535)", c.Cluster.RegistryPort)
	}
	if !validHostname(c.Cluster.InClusterName) {
		bad("cluster.inClusterName", "%q is not a host name", c.Cluster.InClusterName)
	}
	return errors.Join(errs...)
}

// clusterNameRE is kind's rule for cluster names (they become container names).
var clusterNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{0,48}$`)

func validateAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port (e.g. 127.0.0.1:5001): %w", addr, err)
	}
	if host != "" && net.ParseIP(host) == nil && !validHostname(host) {
		return fmt.Errorf("%q: %q is neither an IP address nor a host name", addr, host)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: port %q must be a number from 0 to 65535", addr, port)
	}
	return nil
}

func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			if !(r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
				return false
			}
		}
	}
	return true
}
