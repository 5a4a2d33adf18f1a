// Package platformtest sets up what unit tests of the platform and of the
// commands that drive it run against: a Docker engine with a kind cluster, as
// the exectest recorder plays it (the commands we send are what these tests
// check; e2e proves them against real Docker and Kind), and a real registry
// (pkg/registry on a loopback port) standing in for the cluster's registry
// container, so pushes, pulls through the API and deletes are real.
package platformtest

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/idpbuilder/idpbuilder/pkg/exec/exectest"
	"github.com/idpbuilder/idpbuilder/pkg/registry"
)

// World is one engine with one kind cluster of one node, and a registry.
type World struct {
	T   testing.TB
	Rec *exectest.Recorder
	// Cluster is the cluster's name; its node is <Cluster>-control-plane.
	Cluster string
	// Port is where the registry listens on 127.0.0.1.
	Port int
	// StateDir is idpbuilder's state dir.
	StateDir string
	// Binary is a static Linux program: what a registry image is built from.
	Binary   string
	Registry *registry.Registry
}

// Node is the cluster's only node.
func (w *World) Node() string { return w.Cluster + "-control-plane" }

// Options change the world.
type Options struct {
	// Registry configures the registry (Addr, DataDir and Logger are set here).
	Registry registry.Options
	// NoCluster: the engine has no cluster yet.
	NoCluster bool
	// StateDir is idpbuilder's state dir (a new temporary one when empty).
	StateDir string
}

// New makes a world whose cluster is called cluster.
func New(t testing.TB, cluster string, opts Options) *World {
	t.Helper()
	w := &World{T: t, Rec: exectest.New(), Cluster: cluster, StateDir: opts.StateDir, Binary: StaticBinary(t)}
	if w.StateDir == "" {
		w.StateDir = t.TempDir()
	}
	ro := opts.Registry
	ro.Addr, ro.DataDir, ro.Logger = "127.0.0.1:0", t.TempDir(), slog.New(slog.DiscardHandler)
	ro.RateLimit = registry.RateLimit{Disabled: true}
	w.Registry = registry.New(ro)
	require.NoError(t, w.Registry.Start(context.Background()))
	t.Cleanup(func() { _ = w.Registry.Stop(context.Background()) })
	_, port, err := net.SplitHostPort(w.Registry.Addr())
	require.NoError(t, err)
	_, err = fmt.Sscan(port, &w.Port)
	require.NoError(t, err)
	w.script(opts.NoCluster)
	return w
}

// script answers what the platform asks docker and the node, as they answer
// for a healthy cluster whose registry container runs.
func (w *World) script(noCluster bool) {
	r := w.Rec
	r.On("docker", "version").Reply(exectest.OK("28.2.2 linux " + runtime.GOARCH))
	nodes := exectest.OK(w.Node() + "\tcontrol-plane\n")
	if noCluster {
		nodes = exectest.OK("")
	}
	r.On("docker", "ps").Reply(nodes)
	r.On("docker", "network", "inspect").Reply(exectest.OK("172.18.0.1 fc00:f853:ccd:e793::1"))
	r.On("docker", "container", "inspect", w.Cluster+"-registry").Reply(exectest.Fail(1, "Error: No such container: "+w.Cluster+"-registry"), w.Container(true))
	r.On("docker", "image", "inspect").Reply(exectest.OK("sha256:0123"))
	r.On("docker", "image", "ls").Reply(exectest.OK(""))
	w.OnNode("containerd", "config", "dump").Reply(exectest.OK("version = 3\n[plugins.'io.containerd.cri.v1.images'.registry]\n  config_path = '/etc/containerd/certs.d:/etc/docker/certs.d'\n"))
	w.OnNode("containerd", "--version").Reply(exectest.OK("containerd github.com/containerd/containerd/v2 v2.4.2 0123abcd\n"))
	w.OnNode("kubectl", "--kubeconfig=/etc/kubernetes/admin.conf", "-n", "idpbuilder", "get", "service").Reply(exectest.OK("10.96.0.50"))
	w.OnNode("kubectl", "--kubeconfig=/etc/kubernetes/admin.conf", "-n", "kube-system", "get", "configmap", "coredns").Reply(exectest.OK(".:53 {\n    errors\n}\n"))
}

// OnNode adds a rule for a command in the node (docker exec, with or without stdin).
func (w *World) OnNode(args ...string) *MultiRule {
	prefix := []string{"docker", "exec", "--privileged"}
	return &MultiRule{rules: []*exectest.Rule{
		w.Rec.On(append(append(append([]string{}, prefix...), w.Node()), args...)...),
		w.Rec.On(append(append(append([]string{}, prefix...), "--interactive", w.Node()), args...)...),
	}}
}

// MultiRule answers the same way under several prefixes.
type MultiRule struct{ rules []*exectest.Rule }

// Reply adds responses to every rule.
func (m *MultiRule) Reply(rs ...exectest.Response) *MultiRule {
	for _, r := range m.rules {
		r.Reply(rs...)
	}
	return m
}

// Container is `docker container inspect` of the registry container, running
// or exited, on the kind network.
func (w *World) Container(running bool) exectest.Response {
	status := "running"
	if !running {
		status = "exited"
	}
	b, err := json.Marshal([]map[string]any{{
		"Id": "0123abcd", "Name": "/" + w.Cluster + "-registry", "RestartCount": 1,
		"Config":          map[string]any{"Image": "idpbuilder.local/registry:x", "Labels": map[string]string{"io.idpbuilder.role": "registry"}},
		"State":           map[string]any{"Running": running, "Status": status},
		"NetworkSettings": map[string]any{"Networks": map[string]any{"kind": map[string]string{"IPAddress": "172.18.0.3"}}},
	}})
	require.NoError(w.T, err)
	return exectest.OK(string(b))
}

// NodeCalls are the commands run in the node, as command lines.
func (w *World) NodeCalls() []string {
	var out []string
	for _, c := range w.Rec.Calls() {
		if len(c.Argv) > 3 && c.Argv[1] == "exec" {
			i := 3
			for i < len(c.Argv) && strings.HasPrefix(c.Argv[i], "--") {
				i++
			}
			out = append(out, strings.Join(c.Argv[i+1:], " "))
		}
	}
	return out
}

var (
	staticOnce sync.Once
	staticPath string
	staticErr  error
)

// StaticBinary is a static Linux program, built once per test binary: what a
// registry image is built from needs to be one, not what it does.
func StaticBinary(t testing.TB) string {
	t.Helper()
	staticOnce.Do(func() {
		dir, err := os.MkdirTemp("", "idpbuilder-platformtest-")
		if err != nil {
			staticErr = err
			return
		}
		if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\nfunc main() {}\n"), 0o644); err != nil {
			staticErr = err
			return
		}
		if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module tiny\n\ngo 1.22\n"), 0o644); err != nil {
			staticErr = err
			return
		}
		staticPath = filepath.Join(dir, "tiny")
		cmd := exec.Command("go", "build", "-o", staticPath, ".")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
		if out, err := cmd.CombinedOutput(); err != nil {
			staticErr = fmt.Errorf("build a static binary: %w\n%s", err, out)
		}
	})
	require.NoError(t, staticErr)
	return staticPath
}
