package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/idpbuilder/idpbuilder/pkg/config"
	"github.com/idpbuilder/idpbuilder/pkg/docker"
	"github.com/idpbuilder/idpbuilder/pkg/kind"
	"github.com/idpbuilder/idpbuilder/pkg/registryruntime"
)

// clusterStateDir holds a cluster's registry data and runtime files.
func clusterStateDir(env func(string) (string, bool), cluster string) string {
	return filepath.Join(config.StateDir(env), "clusters", cluster)
}

// modeFile remembers which runtime the cluster's registry was created with.
func modeFile(env func(string) (string, bool), cluster string) string {
	return filepath.Join(clusterStateDir(env, cluster), "registry-mode")
}

// registryMode is the configured mode, else the one the cluster was created
// with, else container.
func registryMode(stdio IO, cfg config.Config) string {
	if cfg.Cluster.RegistryMode != "" {
		return cfg.Cluster.RegistryMode
	}
	if b, err := os.ReadFile(modeFile(stdio.Env, cfg.Cluster.Name)); err == nil {
		if m := strings.TrimSpace(string(b)); m == "container" || m == "process" {
			return m
		}
	}
	return "container"
}

func saveRegistryMode(stdio IO, cfg config.Config, mode string) error {
	path := modeFile(stdio.Env, cfg.Cluster.Name)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(mode+"\n"), 0o600)
}

// newRuntime returns the registry runtime of the given mode for the cluster.
func newRuntime(ctx context.Context, stdio IO, cfg config.Config, mode string) (registryruntime.Runtime, error) {
	bin, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the idpbuilder binary: %w", err)
	}
	state := clusterStateDir(stdio.Env, cfg.Cluster.Name)
	d := &docker.Client{}
	switch mode {
	case "container":
		return &registryruntime.Container{Docker: d, Opts: registryruntime.ContainerOptions{
			Name:     cfg.Cluster.Name + "-registry",
			Cluster:  cfg.Cluster.Name,
			Network:  kind.Network,
			HostPort: cfg.Cluster.RegistryPort,
			DataDir:  filepath.Join(state, "registry"),
			Binary:   bin,
		}}, nil
	case "process":
		opts := registryruntime.ProcessOptions{
			HostPort: cfg.Cluster.RegistryPort,
			DataDir:  filepath.Join(state, "registry"),
			StateDir: state,
			Binary:   bin,
		}
		if runtime.GOOS == "linux" {
			// Nodes reach the host at the kind network's gateway; the registry
			// listens there as well as on loopback, never on every interface.
			// Without the network (no cluster yet, or deleted) the runtime can still
			// report and stop the process; Ensure refuses to start without it.
			if gw, err := d.NetworkGateway(ctx, kind.Network); err == nil {
				opts.ListenIP, opts.NodeHostName = gw, gw
			}
		} else {
			opts.NodeHostName = "host.docker.internal"
		}
		return &registryruntime.Process{Opts: opts}, nil
	}
	return nil, Usage(fmt.Errorf("unknown registry mode %q (use container or process)", mode))
}

// ensureRegistry starts the cluster's registry in the configured mode; a
// container that cannot be built from this binary falls back to a process.
func ensureRegistry(ctx context.Context, stdio IO, cfg config.Config) (registryruntime.Runtime, *registryruntime.Endpoint, error) {
	mode := registryMode(stdio, cfg)
	rt, err := newRuntime(ctx, stdio, cfg, mode)
	if err != nil {
		return nil, nil, err
	}
	// An instance of the other mode (the cluster was switched) must not keep the port.
	if other, oerr := newRuntime(ctx, stdio, cfg, otherMode(mode)); oerr == nil {
		if st, _, _ := other.State(ctx); st != "missing" {
			if err := other.Remove(ctx); err != nil {
				return nil, nil, fmt.Errorf("remove the registry %s: %w", other.Describe(), err)
			}
		}
	}
	step(stdio.Err, "Starting registry %s (%s) on 127.0.0.1:%d", rt.Mode(), rt.Describe(), cfg.Cluster.RegistryPort)
	ep, err := rt.Ensure(ctx)
	if err != nil && mode == "container" && cfg.Cluster.RegistryMode == "" && errors.Is(err, registryruntime.ErrNoLinuxBinary) {
		fmt.Fprintf(stdio.Err, "   %v\n   falling back to --registry-mode=process\n", err)
		mode = "process"
		if rt, err = newRuntime(ctx, stdio, cfg, mode); err != nil {
			return nil, nil, err
		}
		step(stdio.Err, "Starting registry %s (%s) on 127.0.0.1:%d", rt.Mode(), rt.Describe(), cfg.Cluster.RegistryPort)
		ep, err = rt.Ensure(ctx)
	}
	if err != nil {
		return nil, nil, err
	}
	if err := saveRegistryMode(stdio, cfg, mode); err != nil {
		return nil, nil, err
	}
	return rt, ep, nil
}

func otherMode(m string) string {
	if m == "container" {
		return "process"
	}
	return "container"
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}
