package config

import (
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/idpbuilder/idpbuilder/internal/units"
	"github.com/idpbuilder/idpbuilder/pkg/auth"
)

// Setting is one configurable value, reachable from the file (Key), the
// environment (Env) and the command line (Flag).
type Setting struct {
	// Key is the dotted YAML path, e.g. "registry.addr".
	Key string
	// Flag is the command-line flag name without dashes, e.g. "addr".
	Flag string
	// Usage is the flag's help text.
	Usage string
	// Bool settings are boolean flags (--tls, not --tls=true).
	Bool bool
	// Hidden settings are left out of help: knobs for tests and for the
	// programs that start `registry serve` themselves.
	Hidden bool
	set    func(c *Config, v string) error
	get    func(c *Config) string
}

// Env is the environment variable for the setting: IDPBUILDER_ and the flag name
// upper-cased with dashes as underscores (--data-dir -> IDPBUILDER_DATA_DIR).
func (s Setting) Env() string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(s.Flag, "-", "_"))
}

// Get renders the setting's current value in c the way it would be written.
func (s Setting) Get(c *Config) string { return s.get(c) }

// EnvPrefix starts every idpbuilder environment variable.
const EnvPrefix = "IDPBUILDER_"

// Settings returns the table of every setting. Commands expose the subset they
// use as flags; the file and environment accept all of them.
func Settings() []Setting {
	return []Setting{
		{
			Key: "log.level", Flag: "log-level", Usage: "log level: debug, info, warn, error",
			set: func(c *Config, v string) error {
				if _, err := parseLevel(v); err != nil {
					return err
				}
				c.Log.Level = strings.ToLower(v)
				return nil
			},
			get: func(c *Config) string { return c.Log.Level },
		},
		{
			Key: "log.format", Flag: "log-format", Usage: "log format: text or json",
			set: func(c *Config, v string) error {
				v = strings.ToLower(v)
				if v != "text" && v != "json" {
					return fmt.Errorf("%q is not a log format (use text or json)", v)
				}
				c.Log.Format = v
				return nil
			},
			get: func(c *Config) string { return c.Log.Format },
		},
		{
			Key: "registry.addr", Flag: "addr", Usage: "address the registry listens on (host:port)",
			set: func(c *Config, v string) error {
				if err := validateAddr(v); err != nil {
					return err
				}
				c.Registry.Addr = v
				return nil
			},
			get: func(c *Config) string { return c.Registry.Addr },
		},
		{
			Key: "registry.extraAddrs", Flag: "extra-addrs", Usage: "more addresses to listen on, comma-separated (host:port,...)",
			set: func(c *Config, v string) error {
				var addrs []string
				for _, a := range strings.Split(v, ",") {
					if a = strings.TrimSpace(a); a == "" {
						continue
					}
					if err := validateAddr(a); err != nil {
						return err
					}
					addrs = append(addrs, a)
				}
				c.Registry.ExtraAddrs = addrs
				return nil
			},
			get: func(c *Config) string { return strings.Join(c.Registry.ExtraAddrs, ",") },
		},
		{
			Key: "registry.dataDir", Flag: "data-dir", Usage: "directory where images are stored",
			set: func(c *Config, v string) error {
				if strings.TrimSpace(v) == "" {
					return fmt.Errorf("must not be empty")
				}
				abs, err := filepath.Abs(v)
				if err != nil {
					return fmt.Errorf("cannot make %q absolute: %w", v, err)
				}
				c.Registry.DataDir = abs
				return nil
			},
			get: func(c *Config) string { return c.Registry.DataDir },
		},
		{
			Key: "registry.tls", Flag: "tls", Bool: true, Usage: "serve HTTPS with a certificate from the local CA (renewed automatically)",
			set: func(c *Config, v string) error {
				b, err := strconv.ParseBool(strings.TrimSpace(v))
				if err != nil {
					return fmt.Errorf("%q is not true or false", v)
				}
				c.Registry.TLS = b
				return nil
			},
			get: func(c *Config) string { return strconv.FormatBool(c.Registry.TLS) },
		},
		pathSetting("registry.tlsCert", "tls-cert", "your own TLS certificate (PEM) instead of the generated one", func(c *Config) *string { return &c.Registry.TLSCert }),
		pathSetting("registry.tlsKey", "tls-key", "the key of --tls-cert (PEM)", func(c *Config) *string { return &c.Registry.TLSKey }),
		{
			Key: "registry.tlsNames", Flag: "tls-names", Usage: "extra DNS names or IPs for the generated certificate, comma-separated",
			set: func(c *Config, v string) error {
				var names []string
				for _, n := range strings.Split(v, ",") {
					if n = strings.TrimSpace(n); n == "" {
						continue
					}
					if net.ParseIP(n) == nil && !validHostname(n) {
						return fmt.Errorf("%q is neither a host name nor an IP address", n)
					}
					names = append(names, n)
				}
				c.Registry.TLSNames = names
				return nil
			},
			get: func(c *Config) string { return strings.Join(c.Registry.TLSNames, ",") },
		},
		pathSetting("registry.certDir", "cert-dir", "where the local CA and the server certificate are kept", func(c *Config) *string { return &c.Registry.CertDir }),
		{
			Key: "registry.auth", Flag: "auth", Usage: "who must log in: none, push (pushes and deletes) or all (default: push once a user exists, else none)",
			set: func(c *Config, v string) error {
				p, err := auth.ParsePolicy(v)
				if err != nil {
					return err
				}
				c.Registry.Auth = p
				return nil
			},
			get: func(c *Config) string { return string(c.Registry.Auth) },
		},
		pathSetting("registry.htpasswd", "htpasswd", "the user file (bcrypt htpasswd), managed with 'idpbuilder registry user'", func(c *Config) *string { return &c.Registry.Htpasswd }),
		{
			Key: "registry.accessLog", Flag: "access-log", Usage: "access log: stderr, off, or a file path",
			set: func(c *Config, v string) error {
				v = strings.TrimSpace(v)
				if v == "" {
					return fmt.Errorf("must not be empty (use stderr, off or a path)")
				}
				if v != "stderr" && v != "off" {
					abs, err := filepath.Abs(v)
					if err != nil {
						return err
					}
					v = abs
				}
				c.Registry.AccessLog = v
				return nil
			},
			get: func(c *Config) string { return c.Registry.AccessLog },
		},
		{
			Key: "registry.rateLimit", Flag: "rate-limit", Usage: "requests per second per client (0 turns limiting off)",
			set: func(c *Config, v string) error {
				f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				if err != nil || f < 0 {
					return fmt.Errorf("%q is not a non-negative number", v)
				}
				c.Registry.RateLimit = f
				return nil
			},
			get: func(c *Config) string { return strconv.FormatFloat(c.Registry.RateLimit, 'f', -1, 64) },
		},
		{
			Key: "registry.rateBurst", Flag: "rate-burst", Usage: "requests a client may make at once before the rate limit applies",
			set: func(c *Config, v string) error {
				n, err := strconv.Atoi(strings.TrimSpace(v))
				if err != nil || n < 1 {
					return fmt.Errorf("%q is not a positive integer", v)
				}
				c.Registry.RateBurst = n
				return nil
			},
			get: func(c *Config) string { return strconv.Itoa(c.Registry.RateBurst) },
		},
		{
			Key: "registry.metricsAddr", Flag: "metrics-addr", Usage: "also serve /metrics on this host:port, over plain HTTP and without auth (default: only on the registry's own address)",
			set: func(c *Config, v string) error {
				v = strings.TrimSpace(v)
				if v != "" {
					if err := validateAddr(v); err != nil {
						return err
					}
				}
				c.Registry.MetricsAddr = v
				return nil
			},
			get: func(c *Config) string { return c.Registry.MetricsAddr },
		},
		{
			Key: "registry.shutdownTimeout", Flag: "shutdown-timeout", Usage: "how long in-flight requests may finish after SIGINT/SIGTERM",
			set: durationSetter(func(c *Config) *time.Duration { return &c.Registry.ShutdownTimeout }),
			get: func(c *Config) string { return c.Registry.ShutdownTimeout.String() },
		},
		{
			Key: "registry.certCheckInterval", Flag: "cert-check-interval", Hidden: true, Usage: "how often to check the TLS certificate for renewal",
			set: durationSetter(func(c *Config) *time.Duration { return &c.Registry.CertCheckInterval }),
			get: func(c *Config) string { return c.Registry.CertCheckInterval.String() },
		},
		{
			Key: "registry.uploadPurgeAge", Flag: "upload-purge-age", Usage: "delete abandoned uploads older than this",
			set: durationSetter(func(c *Config) *time.Duration { return &c.Registry.UploadPurgeAge }),
			get: func(c *Config) string { return c.Registry.UploadPurgeAge.String() },
		},
		bytesSetting("registry.quota", "quota", "limit what all repositories hold together, each blob counted once, e.g. 20GiB (0: no limit)",
			func(c *Config) *int64 { return &c.Registry.Quota }),
		bytesSetting("registry.repoQuota", "repo-quota", "limit what each repository holds, each blob counted once, e.g. 5GiB (0: no limit)",
			func(c *Config) *int64 { return &c.Registry.RepoQuota }),
		{
			Key: "registry.gcInterval", Flag: "gc-interval", Usage: "run garbage collection inside the registry this often, e.g. 24h (0: never)",
			set: func(c *Config, v string) error {
				d, err := time.ParseDuration(strings.TrimSpace(v))
				if err != nil {
					return fmt.Errorf("%q is not a duration (use e.g. 1h, 24h; 0 turns it off)", v)
				}
				if d < 0 || (d > 0 && d < time.Minute) {
					return fmt.Errorf("%q must be 0 (off) or at least 1m", v)
				}
				c.Registry.GCInterval = d
				return nil
			},
			get: func(c *Config) string { return c.Registry.GCInterval.String() },
		},
		{
			Key: "registry.gcGrace", Flag: "gc-grace", Usage: "garbage collection never deletes anything younger than this (a push in progress is safe)",
			set: durationSetter(func(c *Config) *time.Duration { return &c.Registry.GCGrace }),
			get: func(c *Config) string { return c.Registry.GCGrace.String() },
		},
		{
			Key: "registry.gcUntagged", Flag: "gc-untagged", Bool: true, Usage: "periodic garbage collection (--gc-interval) also deletes images no tag reaches",
			set: func(c *Config, v string) error {
				b, err := strconv.ParseBool(strings.TrimSpace(v))
				if err != nil {
					return fmt.Errorf("%q is not true or false", v)
				}
				c.Registry.GCUntagged = b
				return nil
			},
			get: func(c *Config) string { return strconv.FormatBool(c.Registry.GCUntagged) },
		},
		{
			Key: "registry.ui", Flag: "ui", Bool: true, Usage: "serve the web UI at /ui/ on the registry's address (--ui=false turns it off)",
			set: func(c *Config, v string) error {
				b, err := strconv.ParseBool(strings.TrimSpace(v))
				if err != nil {
					return fmt.Errorf("%q is not true or false", v)
				}
				c.Registry.UI = b
				return nil
			},
			get: func(c *Config) string { return strconv.FormatBool(c.Registry.UI) },
		},
		{
			Key: "registry.uiClusterHost", Flag: "ui-cluster-host", Usage: "host:port pods pull this registry's images by, for the web UI's kubectl commands (default: the address the browser uses)",
			set: func(c *Config, v string) error {
				v = strings.TrimSpace(v)
				if v != "" {
					host, port, err := net.SplitHostPort(v)
					if err != nil || (net.ParseIP(host) == nil && !validHostname(host)) {
						return fmt.Errorf("%q is not host:port (e.g. registry.local:5000)", v)
					}
					if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
						return fmt.Errorf("%q: port %q must be a number from 1 to 65535", v, port)
					}
				}
				c.Registry.UIClusterHost = v
				return nil
			},
			get: func(c *Config) string { return c.Registry.UIClusterHost },
		},
		{
			Key: "cluster.name", Flag: "name", Usage: "kind cluster name",
			set: func(c *Config, v string) error {
				if !clusterNameRE.MatchString(v) {
					return fmt.Errorf("%q is not a valid cluster name (lower-case letters, digits, '.' and '-')", v)
				}
				c.Cluster.Name = v
				return nil
			},
			get: func(c *Config) string { return c.Cluster.Name },
		},
		{
			Key: "cluster.nodeImage", Flag: "node-image", Usage: "kind node image (default: kind's)",
			set: func(c *Config, v string) error { c.Cluster.NodeImage = strings.TrimSpace(v); return nil },
			get: func(c *Config) string { return c.Cluster.NodeImage },
		},
		pathSetting("cluster.kindConfig", "kind-config", "kind config file to merge with idpbuilder's", func(c *Config) *string { return &c.Cluster.KindConfig }),
		{
			Key: "cluster.registryPort", Flag: "registry-port", Usage: "registry port on 127.0.0.1",
			set: func(c *Config, v string) error {
				n, err := strconv.Atoi(strings.TrimSpace(v))
				if err != nil || n < 1 || n > 65535 {
					return fmt.Errorf("%q is not a port (1-65535)", v)
				}
				c.Cluster.RegistryPort = n
				return nil
			},
			get: func(c *Config) string { return strconv.Itoa(c.Cluster.RegistryPort) },
		},
		{
			Key: "cluster.registryMode", Flag: "registry-mode", Usage: "where the registry runs: container (built from this binary) or process (a detached host process)",
			set: func(c *Config, v string) error {
				v = strings.ToLower(strings.TrimSpace(v))
				if v != "container" && v != "process" && v != "" {
					return fmt.Errorf("%q is not a registry mode (use container or process)", v)
				}
				c.Cluster.RegistryMode = v
				return nil
			},
			get: func(c *Config) string { return c.Cluster.RegistryMode },
		},
		{
			Key: "cluster.registryTLS", Flag: "registry-tls", Bool: true, Usage: "serve the cluster registry over HTTPS (local CA trusted by the nodes)",
			set: func(c *Config, v string) error {
				b, err := strconv.ParseBool(strings.TrimSpace(v))
				if err != nil {
					return fmt.Errorf("%q is not true or false", v)
				}
				c.Cluster.RegistryTLS = b
				return nil
			},
			get: func(c *Config) string { return strconv.FormatBool(c.Cluster.RegistryTLS) },
		},
		{
			Key: "cluster.registryAuth", Flag: "registry-auth", Usage: "who must log in to the cluster registry: none, push or all (nodes are given credentials)",
			set: func(c *Config, v string) error {
				p, err := auth.ParsePolicy(v)
				if err != nil {
					return err
				}
				c.Cluster.RegistryAuth = p
				return nil
			},
			get: func(c *Config) string { return string(c.Cluster.RegistryAuth) },
		},
		{
			Key: "cluster.inClusterName", Flag: "in-cluster-name", Usage: "registry host name for pods (port 5000)",
			set: func(c *Config, v string) error {
				if !validHostname(v) {
					return fmt.Errorf("%q is not a host name", v)
				}
				c.Cluster.InClusterName = v
				return nil
			},
			get: func(c *Config) string { return c.Cluster.InClusterName },
		},
	}
}

// Args renders the settings with the given file keys, in that order, as the
// command-line flags of `idpbuilder registry serve`: programs that start it
// (the cluster registry's container and process) name settings by key and
// never spell a flag, so a renamed flag cannot silently break them. An empty
// value is left out; a bool is --flag or --flag=false.
func (c *Config) Args(keys ...string) ([]string, error) {
	byKey := map[string]Setting{}
	for _, s := range Settings() {
		byKey[s.Key] = s
	}
	var args []string
	for _, k := range keys {
		s, ok := byKey[k]
		if !ok {
			return nil, fmt.Errorf("no setting has the key %q", k)
		}
		v := s.Get(c)
		switch {
		case s.Bool && v == "true":
			args = append(args, "--"+s.Flag)
		case s.Bool:
			args = append(args, "--"+s.Flag+"=false")
		case v != "":
			args = append(args, "--"+s.Flag, v)
		}
	}
	return args, nil
}

// pathSetting is a file or directory path, made absolute; empty clears it.
func pathSetting(key, flag, usage string, field func(*Config) *string) Setting {
	return Setting{
		Key: key, Flag: flag, Usage: usage,
		set: func(c *Config, v string) error {
			v = strings.TrimSpace(v)
			if v == "" {
				*field(c) = ""
				return nil
			}
			abs, err := filepath.Abs(v)
			if err != nil {
				return fmt.Errorf("cannot make %q absolute: %w", v, err)
			}
			*field(c) = abs
			return nil
		},
		get: func(c *Config) string { return *field(c) },
	}
}

// bytesSetting is a size such as 500MB, 20GiB or 1.5GiB; 0 or empty means none.
func bytesSetting(key, flag, usage string, field func(*Config) *int64) Setting {
	return Setting{
		Key: key, Flag: flag, Usage: usage,
		set: func(c *Config, v string) error {
			if strings.TrimSpace(v) == "" {
				*field(c) = 0
				return nil
			}
			n, err := units.ParseBytes(v)
			if err != nil {
				return err
			}
			*field(c) = n
			return nil
		},
		get: func(c *Config) string {
			if *field(c) == 0 {
				return ""
			}
			return units.String(*field(c))
		},
	}
}

func durationSetter(field func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("%q is not a duration (use e.g. 30s, 5m, 1h)", v)
		}
		if d <= 0 {
			return fmt.Errorf("%q must be positive", v)
		}
		*field(c) = d
		return nil
	}
}

func parseLevel(v string) (slog.Level, error) {
	switch strings.ToLower(v) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("%q is not a log level (use debug, info, warn or error)", v)
}

// SlogLevel returns the configured log level. Call after Validate.
func (l Log) SlogLevel() slog.Level {
	lvl, err := parseLevel(l.Level)
	if err != nil {
		return slog.LevelInfo
	}
	return lvl
}
