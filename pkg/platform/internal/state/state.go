// Package state is what idpbuilder keeps on disk for a cluster: where its files
// live, and the settings its registry was created with (registry.json), read
// once per command into a typed struct.
package state

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/idpbuilder/idpbuilder/internal/atomicfile"
	"github.com/idpbuilder/idpbuilder/pkg/auth"
	"github.com/idpbuilder/idpbuilder/pkg/registryruntime"
)

// Layout is where one cluster's files live: <state dir>/clusters/<name>.
type Layout struct {
	// Dir is the cluster's directory; it also holds a registry process's pid
	// file, arguments and log.
	Dir string
}

// NewLayout is the layout of cluster's files under idpbuilder's state dir.
func NewLayout(stateDir, cluster string) Layout {
	return Layout{Dir: filepath.Join(stateDir, "clusters", cluster)}
}

// DataDir is the registry's storage: images survive delete + create in it.
func (l Layout) DataDir() string { return filepath.Join(l.Dir, "registry") }

// CertDir holds the registry's local CA and server certificate.
func (l Layout) CertDir() string { return filepath.Join(l.Dir, "certs") }

// CAFile is the local CA's certificate (PEM).
func (l Layout) CAFile() string { return filepath.Join(l.CertDir(), "ca.crt") }

// SettingsFile is registry.json.
func (l Layout) SettingsFile() string { return filepath.Join(l.Dir, "registry.json") }

// NodeSecretFile is the nodes' password.
func (l Layout) NodeSecretFile() string { return filepath.Join(l.Dir, "node-pull.secret") }

// Settings are how a cluster's registry was created: everything `create` was
// given. Later commands (status, start, stop, delete, clients) find the
// registry the same way unless told otherwise.
type Settings struct {
	Mode          registryruntime.Mode `json:"mode"`
	Port          int                  `json:"port"`
	TLS           bool                 `json:"tls"`
	Auth          auth.Policy          `json:"auth"`
	InClusterName string               `json:"inClusterName"`
	Htpasswd      string               `json:"htpasswd,omitempty"`
	NodeImage     string               `json:"nodeImage,omitempty"`
	KindConfig    string               `json:"kindConfig,omitempty"`
}

// AuthOn reports whether anyone must log in.
func (s Settings) AuthOn() bool { return s.Auth != "" && s.Auth != auth.PolicyNone }

// Fields names settings one by one: which of them a user chose.
type Fields struct {
	Mode, Port, TLS, Auth, InClusterName, Htpasswd, NodeImage, KindConfig bool
}

// Given are the settings a command was given: values (defaults included) and
// which of them the user chose (flag, environment or config file).
type Given struct {
	Settings
	Chosen Fields
}

// Resolve is what a cluster's registry runs with: what it was created with
// (saved, when found), with what the user chose now over it. A setting the
// saved file lacks (written by an older idpbuilder) is the given value.
func Resolve(saved Settings, found bool, g Given) Settings {
	if !found {
		return g.Settings
	}
	out := saved
	pick := func(chosen bool, dst *string, v string) {
		if chosen || *dst == "" {
			*dst = v
		}
	}
	if g.Chosen.Mode || out.Mode == "" {
		out.Mode = g.Mode
	}
	if g.Chosen.Port || out.Port == 0 {
		out.Port = g.Port
	}
	if g.Chosen.TLS {
		out.TLS = g.TLS
	}
	if g.Chosen.Auth || out.Auth == "" {
		out.Auth = g.Auth
	}
	pick(g.Chosen.InClusterName, &out.InClusterName, g.InClusterName)
	pick(g.Chosen.Htpasswd, &out.Htpasswd, g.Htpasswd)
	pick(g.Chosen.NodeImage, &out.NodeImage, g.NodeImage)
	pick(g.Chosen.KindConfig, &out.KindConfig, g.KindConfig)
	return out
}

// CorruptError means a cluster's settings file exists but cannot be used.
type CorruptError struct {
	Path string
	Err  error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("the cluster's registry settings in %s cannot be read: %v", e.Path, e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }

// Load reads the settings file at path; found is false when there is none.
// A file that is not valid settings is a *CorruptError.
func Load(path string) (s Settings, found bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Settings{}, false, nil
	}
	if err != nil {
		return Settings{}, false, &CorruptError{Path: path, Err: err}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return Settings{}, false, &CorruptError{Path: path, Err: err}
	}
	if err := s.validate(); err != nil {
		return Settings{}, false, &CorruptError{Path: path, Err: err}
	}
	return s, true, nil
}

func (s Settings) validate() error {
	if s.Mode != "" {
		if _, err := registryruntime.ParseMode(string(s.Mode)); err != nil {
			return err
		}
	}
	if s.Auth != "" {
		if _, err := auth.ParsePolicy(string(s.Auth)); err != nil {
			return err
		}
	}
	if s.Port < 0 || s.Port > 65535 {
		return fmt.Errorf("port %d is not a port (1-65535)", s.Port)
	}
	return nil
}

// Save writes the settings file at path atomically (0600, its directory made).
func Save(path string, s Settings) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(b, '\n'), 0o600)
}

// NodeUser is the user a cluster's nodes pull as when every request needs a
// login; create's pull check pushes its test image as this user too.
func NodeUser(cluster string) string { return "idpbuilder-nodes-" + cluster }

// IsNodeUser reports whether user is some cluster's nodes' user.
func IsNodeUser(user string) bool {
	return strings.HasPrefix(user, NodeUser(""))
}

// minSecret is the shortest node secret kept: anything shorter was not made here.
const minSecret = 16

// NodeSecret reads the nodes' password.
func NodeSecret(l Layout) (string, error) {
	b, err := os.ReadFile(l.NodeSecretFile())
	if err != nil {
		return "", fmt.Errorf("nodes' pull credentials: %w", err)
	}
	return string(b), nil
}

// EnsureNodeSecret returns the nodes' password, making a new random one when
// there is none (or it is too short to have been made here).
func EnsureNodeSecret(l Layout) (string, error) {
	if s, err := NodeSecret(l); err == nil && len(s) >= minSecret {
		return s, nil
	}
	secret := rand.Text()
	if err := os.MkdirAll(l.Dir, 0o700); err != nil {
		return "", err
	}
	if err := atomicfile.Write(l.NodeSecretFile(), []byte(secret), 0o600); err != nil {
		return "", err
	}
	return secret, nil
}
