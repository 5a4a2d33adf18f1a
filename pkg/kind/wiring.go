package kind

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/idpbuilder/idpbuilder/pkg/exec"
	"github.com/idpbuilder/idpbuilder/pkg/hoststoml"
)

// Registry is what the cluster needs to know about the registry: its names and
// addresses as seen from each place.
type Registry struct {
	// HostAddr is how people on this machine push: localhost:5001.
	HostAddr string
	// NodeURL is what nodes' containerd talks to: http://localdev-registry:5000.
	NodeURL string
	// NodeHost is NodeURL's host:port (an image may be referenced by it too).
	NodeHost string
	// ClusterIP and ClusterPort are where pods' traffic for the in-cluster name goes.
	ClusterIP   string
	ClusterPort int
	// InClusterName is the name pods use (registry.local); pods reach it on port 5000.
	InClusterName string
	// Help is the documentation URL published in the KEP-1755 ConfigMap.
	Help string
	// CAPEM, when the registry speaks TLS, is the CA nodes must trust; it is
	// written beside each hosts.toml and referenced with ca = (no skip_verify).
	CAPEM []byte
	// Authorization, when nodes must log in to pull, is the header value
	// containerd sends to the registry (e.g. "Basic ...").
	Authorization string
}

// InClusterPort is the port of the in-cluster name.
const InClusterPort = 5000

// Namespace holds idpbuilder's objects in the cluster.
const Namespace = "idpbuilder"

// InClusterHost is the in-cluster host:port, e.g. registry.local:5000.
func (r Registry) InClusterHost() string {
	return r.InClusterName + ":" + strconv.Itoa(InClusterPort)
}

// Names are every host:port an image in the registry may be referenced by.
func (r Registry) Names() []string {
	return []string{r.HostAddr, r.InClusterHost(), r.NodeHost}
}

// HostsTOML is the containerd host config that sends pulls for one of the
// registry's names (name) to NodeURL, trusting the CA and sending the nodes'
// login when the registry has them.
func (r Registry) HostsTOML(name string) string {
	f := hoststoml.File{Server: r.NodeURL, Authorization: r.Authorization}
	if len(r.CAPEM) > 0 {
		f.CA = CertsDir + "/" + name + "/ca.crt"
	}
	return f.String()
}

// WireNodes writes hosts.toml for every registry name on every node. containerd
// reads the directory on each pull, so no restart is needed.
func (c *Cluster) WireNodes(ctx context.Context, r Registry) error {
	ns, err := c.Nodes(ctx)
	if err != nil {
		return err
	}
	for _, n := range ns {
		for _, name := range r.Names() {
			dir := CertsDir + "/" + name
			// The CA first: hosts.toml must never name a ca.crt that is not there.
			if len(r.CAPEM) > 0 {
				if err := writeNodeFile(ctx, n, dir, "ca.crt", r.CAPEM); err != nil {
					return err
				}
			}
			if err := writeNodeFile(ctx, n, dir, "hosts.toml", []byte(r.HostsTOML(name))); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeNodeFile replaces dir/file on a node atomically, readable by root only
// (hosts.toml may carry the pull credentials).
func writeNodeFile(ctx context.Context, n Node, dir, file string, data []byte) error {
	script := `umask 077 && mkdir -p "$1" && cat > "$1/$2.tmp" && mv "$1/$2.tmp" "$1/$2"`
	if err := n.command(ctx, "sh", "-c", script, "sh", dir, file).SetStdin(bytes.NewReader(data)).Run(); err != nil {
		return fmt.Errorf("write %s/%s: %w", dir, file, err)
	}
	return nil
}

// kubectl runs kubectl inside the control-plane node with its admin kubeconfig,
// as kind does for its own manifests.
func kubectl(ctx context.Context, cp Node, stdin []byte, args ...string) (string, error) {
	cmd := cp.command(ctx, "kubectl", append([]string{"--kubeconfig=/etc/kubernetes/admin.conf"}, args...)...)
	if stdin != nil {
		cmd.SetStdin(bytes.NewReader(stdin))
	}
	out, err := exec.Output(cmd)
	return string(out), err
}

// LocalRegistryHosting is the KEP-1755 document published in
// kube-public/local-registry-hosting.
func (r Registry) LocalRegistryHosting() string {
	return fmt.Sprintf("host: %q\nhostFromContainerRuntime: %q\nhostFromClusterNetwork: %q\nhelp: %q\n",
		r.HostAddr, r.NodeHost, r.InClusterHost(), r.Help)
}

// objects are the cluster objects for the registry: the KEP-1755 ConfigMap, and a
// selector-less Service whose EndpointSlice points at the registry, so pods reach
// it through a stable ClusterIP.
func (r Registry) objects() map[string]any {
	meta := func(name, ns string, labels map[string]string) map[string]any {
		m := map[string]any{"name": name, "namespace": ns}
		if labels != nil {
			m["labels"] = labels
		}
		return m
	}
	managed := map[string]string{"app.kubernetes.io/managed-by": "idpbuilder"}
	return map[string]any{
		"apiVersion": "v1",
		"kind":       "List",
		"items": []any{
			map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": Namespace, "labels": managed}},
			map[string]any{
				"apiVersion": "v1", "kind": "ConfigMap",
				"metadata": meta("local-registry-hosting", "kube-public", managed),
				"data":     map[string]string{"localRegistryHosting.v1": r.LocalRegistryHosting()},
			},
			map[string]any{
				"apiVersion": "v1", "kind": "Service",
				"metadata": meta("registry", Namespace, managed),
				"spec": map[string]any{
					"type":  "ClusterIP",
					"ports": []any{map[string]any{"name": "registry", "port": InClusterPort, "targetPort": r.ClusterPort, "protocol": "TCP"}},
				},
			},
			map[string]any{
				"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
				"metadata":    meta("registry", Namespace, map[string]string{"kubernetes.io/service-name": "registry", "endpointslice.kubernetes.io/managed-by": "idpbuilder"}),
				"addressType": "IPv4",
				"endpoints":   []any{map[string]any{"addresses": []string{r.ClusterIP}, "conditions": map[string]bool{"ready": true}}},
				"ports":       []any{map[string]any{"name": "registry", "port": r.ClusterPort, "protocol": "TCP"}},
			},
		},
	}
}

// ApplyObjects applies the registry's cluster objects and makes the in-cluster
// name resolve in pods (a hosts entry in CoreDNS pointing at the Service).
func (c *Cluster) ApplyObjects(ctx context.Context, r Registry) error {
	cp, err := c.ControlPlane(ctx)
	if err != nil {
		return err
	}
	manifest, err := json.Marshal(r.objects())
	if err != nil {
		return err
	}
	if _, err := kubectl(ctx, cp, manifest, "apply", "-f", "-"); err != nil {
		return fmt.Errorf("apply registry objects: %w", err)
	}
	ip, err := kubectl(ctx, cp, nil, "-n", Namespace, "get", "service", "registry", "-o", "jsonpath={.spec.clusterIP}")
	if err != nil {
		return fmt.Errorf("read registry service: %w", err)
	}
	return setCoreDNSHost(ctx, cp, r.InClusterName, strings.TrimSpace(ip))
}

const (
	corefileBegin = "    # idpbuilder: in-cluster registry name (begin)"
	corefileEnd   = "    # idpbuilder: in-cluster registry name (end)"
)

// withHostEntry returns corefile with a hosts block mapping name to ip inside the
// main server block, replacing any block idpbuilder added before.
func withHostEntry(corefile, name, ip string) (string, error) {
	lines := strings.Split(corefile, "\n")
	var out []string
	skipping := false
	for _, l := range lines {
		switch {
		case l == corefileBegin:
			skipping = true
		case l == corefileEnd:
			skipping = false
		case !skipping:
			out = append(out, l)
		}
	}
	block := []string{corefileBegin, "    hosts {", "       " + ip + " " + name, "       fallthrough", "    }", corefileEnd}
	for i, l := range out {
		if strings.HasPrefix(strings.TrimSpace(l), ".:53") && strings.HasSuffix(strings.TrimSpace(l), "{") {
			res := append([]string{}, out[:i+1]...)
			res = append(res, block...)
			res = append(res, out[i+1:]...)
			return strings.Join(res, "\n"), nil
		}
	}
	return "", fmt.Errorf("CoreDNS Corefile has no .:53 server block to add %s to", name)
}

func setCoreDNSHost(ctx context.Context, cp Node, name, ip string) error {
	cur, err := kubectl(ctx, cp, nil, "-n", "kube-system", "get", "configmap", "coredns", "-o", "jsonpath={.data.Corefile}")
	if err != nil {
		return fmt.Errorf("read CoreDNS config: %w", err)
	}
	next, err := withHostEntry(cur, name, ip)
	if err != nil {
		return err
	}
	if next == cur {
		return nil
	}
	patch, err := json.Marshal(map[string]any{"data": map[string]string{"Corefile": next}})
	if err != nil {
		return err
	}
	if _, err := kubectl(ctx, cp, patch, "-n", "kube-system", "patch", "configmap", "coredns", "--type", "merge", "--patch-file", "/dev/stdin"); err != nil {
		return fmt.Errorf("update CoreDNS config: %w", err)
	}
	// CoreDNS's reload plugin would notice within ~45 s; a restart makes the name
	// resolvable before create returns.
	if _, err := kubectl(ctx, cp, nil, "-n", "kube-system", "rollout", "restart", "deployment/coredns"); err != nil {
		return fmt.Errorf("restart CoreDNS: %w", err)
	}
	if _, err := kubectl(ctx, cp, nil, "-n", "kube-system", "rollout", "status", "deployment/coredns", "--timeout=180s"); err != nil {
		return fmt.Errorf("wait for CoreDNS: %w", err)
	}
	return nil
}

// NodeWiring is what one node has of the registry wiring.
type NodeWiring struct {
	Node string `json:"node"`
	// HostsTOML maps each registry name to "ok", "missing" or "stale".
	HostsTOML map[string]string `json:"hostsToml"`
}

// WiringStatus is what the cluster has of the registry wiring.
type WiringStatus struct {
	Nodes []NodeWiring `json:"nodes"`
	// LocalRegistryHosting is "ok", "missing" or "stale".
	LocalRegistryHosting string `json:"localRegistryHosting"`
}

// OK reports whether everything is in place and current.
func (w WiringStatus) OK() bool {
	if w.LocalRegistryHosting != "ok" || len(w.Nodes) == 0 {
		return false
	}
	for _, n := range w.Nodes {
		for _, s := range n.HostsTOML {
			if s != "ok" {
				return false
			}
		}
	}
	return true
}

// Wiring inspects the nodes and the cluster objects.
func (c *Cluster) Wiring(ctx context.Context, r Registry) (WiringStatus, error) {
	var ws WiringStatus
	ns, err := c.Nodes(ctx)
	if err != nil {
		return ws, err
	}
	for _, n := range ns {
		nw := NodeWiring{Node: n.String(), HostsTOML: map[string]string{}}
		for _, name := range r.Names() {
			got, err := exec.Output(n.command(ctx, "cat", CertsDir+"/"+name+"/hosts.toml"))
			switch {
			case err != nil:
				nw.HostsTOML[name] = "missing"
			case string(got) != r.HostsTOML(name):
				nw.HostsTOML[name] = "stale"
			default:
				nw.HostsTOML[name] = "ok"
			}
		}
		ws.Nodes = append(ws.Nodes, nw)
	}
	cp, err := c.ControlPlane(ctx)
	if err != nil {
		return ws, err
	}
	got, err := kubectl(ctx, cp, nil, "-n", "kube-public", "get", "configmap", "local-registry-hosting", "-o", `jsonpath={.data.localRegistryHosting\.v1}`)
	switch {
	case err != nil:
		ws.LocalRegistryHosting = "missing"
	case got != r.LocalRegistryHosting():
		ws.LocalRegistryHosting = "stale"
	default:
		ws.LocalRegistryHosting = "ok"
	}
	return ws, nil
}
