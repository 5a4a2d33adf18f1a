// Package kind creates, reuses and deletes Kind clusters whose nodes pull from the
// idpbuilder registry, and wires the registry into them: the containerd patch,
// hosts.toml per registry name, the KEP-1755 ConfigMap and an in-cluster name.
// It knows the registry's names and addresses, not its code.
package kind

import (
	"errors"
	"fmt"
	"os"
	"regexp"

	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/yaml"
)

// CertsDir is where idpbuilder writes the nodes' per-registry host configuration
// (hosts.toml), and where containerd looks for it when its config_path names it.
const CertsDir = "/etc/containerd/certs.d"

// DockerCertsDir is Docker's certificate directory, which containerd also searches
// by default since 2.2: kept in the path so that hosts configured there by the
// user or the node image still apply.
const DockerCertsDir = "/etc/docker/certs.d"

// ConfigPath is the registry host search path the patch sets, containerd 2.2's
// default: CertsDir first, so our hosts.toml wins.
const ConfigPath = CertsDir + ":" + DockerCertsDir

// ContainerdPatch sets config_path under both names the CRI's registry settings
// have had. containerd 1.x reads io.containerd.grpc.v1.cri (and ignores settings
// of plugins it does not have); containerd 2.x reads io.containerd.cri.v1.images,
// and reads the old name only while migrating a config of an older version: on a
// node whose config.toml has 2.x's own version the old key is ignored with a
// warning. containerd >= 2.2 searches ConfigPath even when nothing sets it, but
// 2.0 and 2.1 do not, so the patch is always sent.
const ContainerdPatch = `[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "` + ConfigPath + `"

[plugins."io.containerd.cri.v1.images".registry]
  config_path = "` + ConfigPath + `"
`

// legacyMirrors matches the deprecated registry.mirrors form, which conflicts with
// config_path (containerd refuses the combination and kubelet never comes up).
var legacyMirrors = regexp.MustCompile(`registry\.mirrors|registry\.configs|\.registry\]\s*\n(?s:.*)mirrors`)

// ErrLegacyMirrors is returned for user patches that use registry.mirrors.
var ErrLegacyMirrors = errors.New(`the kind config uses containerd's legacy "registry.mirrors"/"registry.configs", which cannot be combined with config_path (kubelet fails to start on containerd 2.x nodes): describe extra registries as hosts.toml files under ` + CertsDir + ` instead (see docs/kind.md)`)

// ConfigError is a kind config that cannot be used: unreadable, not a kind
// config, or one whose containerd settings conflict with the wiring.
type ConfigError struct {
	Path string
	Err  error
}

func (e *ConfigError) Error() string {
	if e.Path == "" {
		return e.Err.Error()
	}
	return fmt.Sprintf("kind config %s: %v", e.Path, e.Err)
}

func (e *ConfigError) Unwrap() error { return e.Err }

// LoadConfig reads a user's kind config (empty path: none) and adds our
// containerd patch. Unknown fields are errors; every error is a *ConfigError.
func LoadConfig(path string) (*v1alpha4.Cluster, error) {
	cfg := &v1alpha4.Cluster{}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, &ConfigError{Err: fmt.Errorf("read kind config: %w", err)}
		}
		if err := yaml.UnmarshalStrict(data, cfg); err != nil {
			return nil, &ConfigError{Path: path, Err: err}
		}
		if cfg.Kind != "" && cfg.Kind != "Cluster" {
			return nil, &ConfigError{Path: path, Err: fmt.Errorf("kind is %q, want Cluster", cfg.Kind)}
		}
		if cfg.APIVersion != "" && cfg.APIVersion != "kind.x-k8s.io/v1alpha4" {
			return nil, &ConfigError{Path: path, Err: fmt.Errorf("apiVersion %q is not supported (use kind.x-k8s.io/v1alpha4)", cfg.APIVersion)}
		}
	}
	for _, p := range cfg.ContainerdConfigPatches {
		if legacyMirrors.MatchString(p) {
			return nil, &ConfigError{Path: path, Err: ErrLegacyMirrors}
		}
	}
	cfg.Kind, cfg.APIVersion = "Cluster", "kind.x-k8s.io/v1alpha4"
	if len(cfg.Nodes) == 0 {
		cfg.Nodes = []v1alpha4.Node{{Role: v1alpha4.ControlPlaneRole}}
	}
	cfg.ContainerdConfigPatches = append(cfg.ContainerdConfigPatches, ContainerdPatch)
	v1alpha4.SetDefaultsCluster(cfg)
	return cfg, nil
}
