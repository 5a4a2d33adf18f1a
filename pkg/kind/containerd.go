package kind

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/idpbuilder/idpbuilder/pkg/exec"
)

// ForeignClusterError means an existing cluster's containerd does not read
// CertsDir, so the hosts.toml files wiring writes there would be ignored.
// containerd reads its configuration only when it starts, so only a new cluster
// (created with ContainerdPatch) can fix that.
type ForeignClusterError struct {
	Cluster string
	Node    string
	// Reason says what that containerd does instead of reading CertsDir.
	Reason string
}

func (e *ForeignClusterError) Error() string {
	return fmt.Sprintf("cluster %q exists but cannot pull from the registry: on node %s, %s", e.Cluster, e.Node, e.Reason)
}

// RegistryConfig is the registry configuration a node's containerd runs with, as
// `containerd config dump` reports it (the files it read, merged and migrated).
type RegistryConfig struct {
	// Version is containerd's own, e.g. "2.4.2" or "1.6.20~ds1".
	Version string
	// ConfigPath is the hosts.toml search path; "" when nothing sets it.
	ConfigPath string
	// Mirrors tells the legacy registry.mirrors are set: containerd then uses
	// them instead of any hosts.toml.
	Mirrors bool
}

// defaultConfigPathSince is the first containerd that searches ConfigPath when
// config_path is empty (and no mirrors are set).
var defaultConfigPathSince = [2]int{2, 2}

// ReadsCertsDir reports whether containerd reads hosts.toml files in CertsDir,
// and if not, why not.
func (rc RegistryConfig) ReadsCertsDir() (bool, string) {
	switch {
	case rc.ConfigPath != "":
		if slices.Contains(filepath.SplitList(rc.ConfigPath), CertsDir) {
			return true, ""
		}
		return false, fmt.Sprintf("containerd reads hosts.toml from %s, not from %s", rc.ConfigPath, CertsDir)
	case rc.Mirrors:
		return false, "containerd uses the legacy registry.mirrors, which replace hosts.toml files"
	}
	major, minor, ok := parseVersion(rc.Version)
	if ok && (major > defaultConfigPathSince[0] || major == defaultConfigPathSince[0] && minor >= defaultConfigPathSince[1]) {
		return true, ""
	}
	return false, fmt.Sprintf("containerd %s has no registry config_path, so it reads no hosts.toml", rc.Version)
}

var versionRE = regexp.MustCompile(`^v?(\d+)\.(\d+)`)

func parseVersion(v string) (major, minor int, ok bool) {
	m := versionRE.FindStringSubmatch(v)
	if m == nil {
		return 0, 0, false
	}
	major, _ = strconv.Atoi(m[1])
	minor, _ = strconv.Atoi(m[2])
	return major, minor, true
}

// criPlugins are the names the CRI's registry settings live under: containerd
// 2.x's first (its dump has only that one), then 1.x's.
var criPlugins = []string{"io.containerd.cri.v1.images", "io.containerd.grpc.v1.cri"}

// parseConfigDump reads the registry settings from `containerd config dump`.
func parseConfigDump(dump string) (RegistryConfig, error) {
	var cfg struct {
		Plugins map[string]struct {
			Registry *struct {
				ConfigPath string         `toml:"config_path"`
				Mirrors    map[string]any `toml:"mirrors"`
			} `toml:"registry"`
		} `toml:"plugins"`
	}
	if _, err := toml.Decode(dump, &cfg); err != nil {
		return RegistryConfig{}, fmt.Errorf("parse containerd config dump: %w", err)
	}
	for _, name := range criPlugins {
		if p, ok := cfg.Plugins[name]; ok && p.Registry != nil {
			return RegistryConfig{ConfigPath: p.Registry.ConfigPath, Mirrors: len(p.Registry.Mirrors) > 0}, nil
		}
	}
	return RegistryConfig{}, nil
}

// ContainerdRegistry reads the registry configuration node n's containerd runs with.
func (c *Cluster) ContainerdRegistry(ctx context.Context, n Node) (RegistryConfig, error) {
	dump, err := exec.OutputString(n.command(ctx, "containerd", "config", "dump"))
	if err != nil {
		return RegistryConfig{}, fmt.Errorf("read containerd's configuration: %w", err)
	}
	rc, err := parseConfigDump(dump)
	if err != nil {
		return rc, fmt.Errorf("node %s: %w", n, err)
	}
	out, err := exec.OutputString(n.command(ctx, "containerd", "--version"))
	if err != nil {
		return rc, fmt.Errorf("read containerd's version: %w", err)
	}
	// "containerd github.com/containerd/containerd/v2 v2.4.2 <commit>"
	if f := strings.Fields(out); len(f) >= 3 {
		rc.Version = f[2]
	} else {
		rc.Version = out
	}
	return rc, nil
}

// CheckWiringPossible verifies that every node's containerd reads hosts.toml
// from CertsDir: a cluster created with ContainerdPatch does, and so does a
// plain kind cluster whose containerd is 2.2 or newer. Otherwise it returns a
// *ForeignClusterError.
func (c *Cluster) CheckWiringPossible(ctx context.Context) error {
	ns, err := c.Nodes(ctx)
	if err != nil {
		return err
	}
	for _, n := range ns {
		rc, err := c.ContainerdRegistry(ctx, n)
		if err != nil {
			return err
		}
		if ok, why := rc.ReadsCertsDir(); !ok {
			return &ForeignClusterError{Cluster: c.Name, Node: n.Name, Reason: why}
		}
	}
	return nil
}
