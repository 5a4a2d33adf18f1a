package cli

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/idpbuilder/idpbuilder/pkg/auth"
	"github.com/idpbuilder/idpbuilder/pkg/certs"
	"github.com/idpbuilder/idpbuilder/pkg/config"
	"github.com/idpbuilder/idpbuilder/pkg/docker"
	"github.com/idpbuilder/idpbuilder/pkg/kind"
	"github.com/idpbuilder/idpbuilder/pkg/registryruntime"
)

// clusterStateDir holds a cluster's registry data and runtime files.
func clusterStateDir(env func(string) (string, bool), cluster string) string {
	return filepath.Join(config.StateDir(env), "clusters", cluster)
}

// registrySettings are how a cluster's registry was created; later commands
// (status, start, stop, delete) find it the same way unless told otherwise.
type registrySettings struct {
	Mode string `json:"mode"` // container or process
	TLS  bool   `json:"tls"`
	Auth string `json:"auth"` // none, push or all
}

func settingsFile(env func(string) (string, bool), cluster string) string {
	return filepath.Join(clusterStateDir(env, cluster), "registry.json")
}

// resolveSettings: explicit configuration, else what was saved, else defaults.
func resolveSettings(stdio IO, cfg config.Config) registrySettings {
	st := registrySettings{Mode: "container", Auth: "none"}
	if b, err := os.ReadFile(settingsFile(stdio.Env, cfg.Cluster.Name)); err == nil {
		_ = json.Unmarshal(b, &st)
	}
	if cfg.Cluster.RegistryMode != "" {
		st.Mode = cfg.Cluster.RegistryMode
	}
	if cfg.Cluster.RegistryTLS != "" {
		st.TLS = cfg.Cluster.RegistryTLS == "true"
	}
	if cfg.Cluster.RegistryAuth != "" {
		st.Auth = cfg.Cluster.RegistryAuth
	}
	return st
}

func saveSettings(stdio IO, cfg config.Config, st registrySettings) error {
	path := settingsFile(stdio.Env, cfg.Cluster.Name)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o600)
}

// registryMode is the mode the cluster's registry runs in.
func registryMode(stdio IO, cfg config.Config) string { return resolveSettings(stdio, cfg).Mode }

// clusterCertDir holds the cluster registry's CA and certificate.
func clusterCertDir(env func(string) (string, bool), cluster string) string {
	return filepath.Join(clusterStateDir(env, cluster), "certs")
}

// newRuntime returns the registry runtime of the given mode for the cluster.
func newRuntime(ctx context.Context, stdio IO, cfg config.Config, mode string) (registryruntime.Runtime, error) {
	bin, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the idpbuilder binary: %w", err)
	}
	state := clusterStateDir(stdio.Env, cfg.Cluster.Name)
	st := resolveSettings(stdio, cfg)
	d := &docker.Client{}
	switch mode {
	case "container":
		opts := registryruntime.ContainerOptions{
			Name:     cfg.Cluster.Name + "-registry",
			Cluster:  cfg.Cluster.Name,
			Network:  kind.Network,
			HostPort: cfg.Cluster.RegistryPort,
			DataDir:  filepath.Join(state, "registry"),
			Binary:   bin,
			// The web UI's kubectl commands name the registry as pods do.
			UIClusterHost: kind.Registry{InClusterName: cfg.Cluster.InClusterName}.InClusterHost(),
		}
		if st.TLS {
			opts.CertDir = clusterCertDir(stdio.Env, cfg.Cluster.Name)
			opts.TLSNames = []string{opts.Name, cfg.Cluster.InClusterName}
		}
		if st.Auth != "none" {
			opts.Htpasswd, opts.Auth = cfg.Registry.Htpasswd, st.Auth
		}
		return &registryruntime.Container{Docker: d, Opts: opts}, nil
	case "process":
		opts := registryruntime.ProcessOptions{
			HostPort: cfg.Cluster.RegistryPort,
			DataDir:  filepath.Join(state, "registry"),
			StateDir: state,
			Binary:   bin,
			// The web UI's kubectl commands name the registry as pods do.
			UIClusterHost: kind.Registry{InClusterName: cfg.Cluster.InClusterName}.InClusterHost(),
		}
		if st.TLS {
			opts.CertDir = clusterCertDir(stdio.Env, cfg.Cluster.Name)
			opts.TLSNames = []string{cfg.Cluster.InClusterName}
		}
		if st.Auth != "none" {
			opts.Htpasswd, opts.Auth = cfg.Registry.Htpasswd, st.Auth
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
	if err := prepareSecurity(stdio, cfg, resolveSettings(stdio, cfg), cfg.Cluster.Name+"-registry"); err != nil {
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
	st := resolveSettings(stdio, cfg)
	st.Mode = mode
	if err := saveSettings(stdio, cfg, st); err != nil {
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

// nodeUser is the user cluster nodes pull as when every request needs a login.
func nodeUser(cluster string) string { return "idpbuilder-nodes-" + cluster }

// prepareSecurity creates what TLS and auth need before the registry starts:
// the local CA and certificate, and (for --registry-auth=all) the nodes' user.
func prepareSecurity(stdio IO, cfg config.Config, st registrySettings, containerName string) error {
	if st.TLS {
		m := &certs.Manager{Dir: clusterCertDir(stdio.Env, cfg.Cluster.Name), Names: []string{containerName, cfg.Cluster.InClusterName}}
		if _, err := m.Ensure(); err != nil {
			return fmt.Errorf("registry certificate: %w", err)
		}
	}
	if st.Auth == "none" {
		return nil
	}
	h := auth.Htpasswd{Path: cfg.Registry.Htpasswd}
	users, err := h.Users()
	if err != nil {
		return err
	}
	humans := 0
	for _, u := range users {
		if !strings.HasPrefix(u, "idpbuilder-nodes-") {
			humans++
		}
	}
	if humans == 0 {
		return Usage(fmt.Errorf("--registry-auth=%s needs a user to push with: `idpbuilder registry user add NAME --password-stdin` first", st.Auth))
	}
	if st.Auth != "all" {
		return nil
	}
	secretPath := filepath.Join(clusterStateDir(stdio.Env, cfg.Cluster.Name), "node-pull.secret")
	secret, err := os.ReadFile(secretPath)
	if err != nil || len(secret) < 16 {
		secret = []byte(rand.Text())
		if err := os.MkdirAll(filepath.Dir(secretPath), 0o700); err != nil {
			return err
		}
		if err := auth.WriteFileAtomic(secretPath, secret, 0o600); err != nil {
			return err
		}
	}
	if ok, err := auth.NewVerifier(h).Verify(nodeUser(cfg.Cluster.Name), string(secret)); err != nil || !ok {
		if err := h.Set(nodeUser(cfg.Cluster.Name), string(secret)); err != nil {
			return fmt.Errorf("add the nodes' pull user: %w", err)
		}
	}
	return nil
}

// clusterRegistry describes the registry to the cluster wiring: addresses from
// the runtime, the CA when it speaks TLS, the nodes' login when pulls need one.
func clusterRegistry(stdio IO, cfg config.Config, ep *registryruntime.Endpoint) (kind.Registry, error) {
	reg := kind.Registry{
		HostAddr: ep.HostAddr, NodeURL: ep.NodeURL, NodeHost: ep.NodeHost,
		ClusterIP: ep.ClusterIP, ClusterPort: ep.ClusterPort,
		InClusterName: cfg.Cluster.InClusterName, Help: helpURL,
	}
	st := resolveSettings(stdio, cfg)
	if st.TLS {
		pem, err := os.ReadFile(filepath.Join(clusterCertDir(stdio.Env, cfg.Cluster.Name), certs.CAFile))
		if err != nil {
			return reg, fmt.Errorf("registry CA: %w", err)
		}
		reg.CAPEM = pem
	}
	if st.Auth == "all" {
		secret, err := os.ReadFile(filepath.Join(clusterStateDir(stdio.Env, cfg.Cluster.Name), "node-pull.secret"))
		if err != nil {
			return reg, fmt.Errorf("nodes' pull credentials: %w", err)
		}
		reg.Authorization = "Basic " + base64.StdEncoding.EncodeToString([]byte(nodeUser(cfg.Cluster.Name)+":"+string(secret)))
	}
	return reg, nil
}
