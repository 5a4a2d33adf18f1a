package kind

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/idpbuilder/idpbuilder/pkg/exec"
	"github.com/idpbuilder/idpbuilder/pkg/exec/exectest"
)

var testRegistry = Registry{
	HostAddr: "localhost:5001", NodeURL: "http://localdev-registry:5000", NodeHost: "localdev-registry:5000",
	ClusterIP: "172.18.0.3", ClusterPort: 5000, InClusterName: "registry.local", Help: "https://example.invalid/docs",
}

func TestNames(t *testing.T) {
	assert.Equal(t, []string{"localhost:5001", "registry.local:5000", "localdev-registry:5000"}, testRegistry.Names())
}

func TestHostsTOML(t *testing.T) {
	assert.Equal(t, `server = "http://localdev-registry:5000"

[host."http://localdev-registry:5000"]
  capabilities = ["pull", "resolve", "push"]
`, testRegistry.HostsTOML("localhost:5001"))

	secure := testRegistry
	secure.NodeURL = "https://localdev-registry:5000"
	secure.CAPEM = []byte("-----BEGIN CERTIFICATE-----")
	secure.Authorization = "Basic YTpi"
	assert.Equal(t, `server = "https://localdev-registry:5000"

[host."https://localdev-registry:5000"]
  capabilities = ["pull", "resolve", "push"]
  ca = "/etc/containerd/certs.d/registry.local:5000/ca.crt"
  [host."https://localdev-registry:5000".header]
    Authorization = ["Basic YTpi"]
`, secure.HostsTOML("registry.local:5000"))
}

func TestLocalRegistryHosting(t *testing.T) {
	var doc map[string]string
	require.NoError(t, yaml.UnmarshalStrict([]byte(testRegistry.LocalRegistryHosting()), &doc))
	assert.Equal(t, map[string]string{
		"host":                     "localhost:5001",
		"hostFromContainerRuntime": "localdev-registry:5000",
		"hostFromClusterNetwork":   "registry.local:5000",
		"help":                     "https://example.invalid/docs",
	}, doc)
}

const kindCorefile = `.:53 {
    errors
    health {
       lameduck 5s
    }
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
    }
    forward . /etc/resolv.conf
    reload
}
`

func TestWithHostEntry(t *testing.T) {
	once, err := withHostEntry(kindCorefile, "registry.local", "10.96.0.50")
	require.NoError(t, err)
	assert.Contains(t, once, ".:53 {\n"+corefileBegin+"\n    hosts {\n       10.96.0.50 registry.local\n       fallthrough\n    }\n"+corefileEnd+"\n    errors")

	again, err := withHostEntry(once, "registry.local", "10.96.0.50")
	require.NoError(t, err)
	assert.Equal(t, once, again, "idempotent")

	moved, err := withHostEntry(once, "registry.local", "10.96.0.77")
	require.NoError(t, err)
	assert.Equal(t, 1, strings.Count(moved, "hosts {"), "the old block is replaced")
	assert.Contains(t, moved, "10.96.0.77 registry.local")
	assert.NotContains(t, moved, "10.96.0.50")

	_, err = withHostEntry("example.org {\n}\n", "registry.local", "1.2.3.4")
	assert.Error(t, err)
}

func TestObjectsManifest(t *testing.T) {
	obj := testRegistry.objects()
	items := obj["items"].([]any)
	kinds := []string{}
	for _, it := range items {
		kinds = append(kinds, it.(map[string]any)["kind"].(string))
	}
	assert.Equal(t, []string{"Namespace", "ConfigMap", "Service", "EndpointSlice"}, kinds)
	slice := items[3].(map[string]any)
	assert.Equal(t, "registry", slice["metadata"].(map[string]any)["labels"].(map[string]string)["kubernetes.io/service-name"])
}

// TestWriteNodeFile runs the script nodes get with this machine's sh: the file
// lands whole, readable by root only, with no temporary file left.
func TestWriteNodeFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs.d", "localhost:5001")
	n := Node{Name: "here", Exec: exec.Local()}
	require.NoError(t, writeNodeFile(context.Background(), n, dir, "hosts.toml", []byte("server = \"x\"\n")))
	require.NoError(t, writeNodeFile(context.Background(), n, dir, "hosts.toml", []byte("server = \"y\"\n")))
	got, err := os.ReadFile(filepath.Join(dir, "hosts.toml"))
	require.NoError(t, err)
	assert.Equal(t, "server = \"y\"\n", string(got))
	fi, err := os.Stat(filepath.Join(dir, "hosts.toml"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	entries, _ := os.ReadDir(dir)
	assert.Len(t, entries, 1, "no .tmp left behind")

	blocked := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(blocked, nil, 0o600))
	err = writeNodeFile(context.Background(), n, filepath.Join(blocked, "sub"), "hosts.toml", []byte("x"))
	assert.ErrorContains(t, err, "write "+blocked+"/sub/hosts.toml")
}

func TestWireNodes(t *testing.T) {
	c, rec := recordedCluster("dev-control-plane", "dev-worker")
	secure := testRegistry
	secure.NodeURL = "https://localdev-registry:5000"
	secure.CAPEM = []byte("CA PEM")
	require.NoError(t, c.WireNodes(context.Background(), secure))

	script := `umask 077 && mkdir -p "$1" && cat > "$1/$2.tmp" && mv "$1/$2.tmp" "$1/$2"`
	var want []string
	for _, n := range []string{"dev-control-plane", "dev-worker"} {
		for _, name := range secure.Names() {
			for _, f := range []string{"ca.crt", "hosts.toml"} { // the CA first
				want = append(want, n+": sh -c "+script+" sh /etc/containerd/certs.d/"+name+" "+f)
			}
		}
	}
	assert.Equal(t, want, rec.Lines())
	calls := rec.Calls()
	assert.Equal(t, "CA PEM", string(calls[0].Stdin))
	assert.Equal(t, secure.HostsTOML("localhost:5001"), string(calls[1].Stdin))

	// Without TLS no CA is written; a failing node stops the wiring with its error.
	c, rec = recordedCluster("dev-control-plane", "dev-worker")
	rec.OnAt("dev-worker", "sh").Reply(exectest.Fail(1, "sh: can't create /etc/containerd/certs.d/x: Read-only file system"))
	err := c.WireNodes(context.Background(), testRegistry)
	var e *exec.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, "dev-worker", e.Where)
	assert.ErrorContains(t, err, "Read-only file system")
	assert.Len(t, rec.Calls(), len(testRegistry.Names())+1)
}

// kubectlArgs is how every kubectl call in a node starts.
var kubectlArgs = []string{"kubectl", "--kubeconfig=/etc/kubernetes/admin.conf"}

func onKubectl(rec *exectest.Recorder, args ...string) *exectest.Rule {
	return rec.OnAt("dev-control-plane", append(kubectlArgs, args...)...)
}

func TestApplyObjects(t *testing.T) {
	c, rec := recordedCluster("dev-control-plane", "dev-worker")
	onKubectl(rec, "-n", Namespace, "get", "service", "registry").Reply(exectest.OK("10.96.0.50"))
	onKubectl(rec, "-n", "kube-system", "get", "configmap", "coredns").Reply(exectest.OK(kindCorefile))
	require.NoError(t, c.ApplyObjects(context.Background(), testRegistry))

	k := "dev-control-plane: kubectl --kubeconfig=/etc/kubernetes/admin.conf "
	assert.Equal(t, []string{
		k + "apply -f -",
		k + "-n idpbuilder get service registry -o jsonpath={.spec.clusterIP}",
		k + "-n kube-system get configmap coredns -o jsonpath={.data.Corefile}",
		k + "-n kube-system patch configmap coredns --type merge --patch-file /dev/stdin",
		k + "-n kube-system rollout restart deployment/coredns",
		k + "-n kube-system rollout status deployment/coredns --timeout=180s",
	}, rec.Lines())
	calls := rec.Calls()
	var applied struct {
		Kind  string
		Items []struct{ Kind string }
	}
	require.NoError(t, json.Unmarshal(calls[0].Stdin, &applied))
	assert.Equal(t, "List", applied.Kind)
	assert.Len(t, applied.Items, 4)
	var patch struct{ Data map[string]string }
	require.NoError(t, json.Unmarshal(calls[3].Stdin, &patch))
	assert.Contains(t, patch.Data["Corefile"], "10.96.0.50 registry.local")

	// Applied again with CoreDNS already right: no patch, no restart.
	c, rec = recordedCluster("dev-control-plane")
	onKubectl(rec, "-n", Namespace, "get", "service", "registry").Reply(exectest.OK("10.96.0.50"))
	onKubectl(rec, "-n", "kube-system", "get", "configmap", "coredns").Reply(exectest.OK(patch.Data["Corefile"]))
	require.NoError(t, c.ApplyObjects(context.Background(), testRegistry))
	assert.Len(t, rec.Calls(), 3)
}

func TestApplyObjectsFailures(t *testing.T) {
	corefile, err := withHostEntry(kindCorefile, "registry.local", "10.96.0.1")
	require.NoError(t, err)
	tests := []struct {
		name    string
		fail    []string
		wantErr string
	}{
		{name: "apply", fail: []string{"apply"}, wantErr: "apply registry objects"},
		{name: "service", fail: []string{"-n", Namespace, "get"}, wantErr: "read registry service"},
		{name: "coredns read", fail: []string{"-n", "kube-system", "get"}, wantErr: "read CoreDNS config"},
		{name: "coredns patch", fail: []string{"-n", "kube-system", "patch"}, wantErr: "update CoreDNS config"},
		{name: "coredns restart", fail: []string{"-n", "kube-system", "rollout", "restart"}, wantErr: "restart CoreDNS"},
		{name: "coredns wait", fail: []string{"-n", "kube-system", "rollout", "status"}, wantErr: "wait for CoreDNS"},
		{name: "no server block", wantErr: "no .:53 server block"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, rec := recordedCluster("dev-control-plane")
			onKubectl(rec, "-n", Namespace, "get", "service", "registry").Reply(exectest.OK("10.96.0.50"))
			if tt.fail == nil {
				onKubectl(rec, "-n", "kube-system", "get").Reply(exectest.OK("example.org {\n}\n"))
			} else {
				onKubectl(rec, "-n", "kube-system", "get").Reply(exectest.OK(corefile))
				onKubectl(rec, tt.fail...).Reply(exectest.Fail(1, "error: the server is currently unable to handle the request"))
			}
			err := c.ApplyObjects(context.Background(), testRegistry)
			assert.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestWiring(t *testing.T) {
	c, rec := recordedCluster("dev-control-plane", "dev-worker")
	cat := func(node, name string) *exectest.Rule {
		return rec.OnAt(node, "cat", CertsDir+"/"+name+"/hosts.toml")
	}
	for _, n := range []string{"dev-control-plane", "dev-worker"} {
		for _, name := range testRegistry.Names() {
			cat(n, name).Reply(exectest.OK(testRegistry.HostsTOML(name)))
		}
	}
	onKubectl(rec, "-n", "kube-public", "get", "configmap", "local-registry-hosting").Reply(exectest.OK(testRegistry.LocalRegistryHosting()))
	ws, err := c.Wiring(context.Background(), testRegistry)
	require.NoError(t, err)
	assert.True(t, ws.OK(), "%+v", ws)
	assert.Len(t, ws.Nodes, 2)

	cat("dev-worker", "localhost:5001").Reply(exectest.Fail(1, "cat: can't open: No such file or directory"))
	cat("dev-worker", "registry.local:5000").Reply(exectest.OK("server = \"http://elsewhere:5000\"\n"))
	onKubectl(rec, "-n", "kube-public").Reply(exectest.OK("host: old\n"))
	ws, err = c.Wiring(context.Background(), testRegistry)
	require.NoError(t, err)
	assert.False(t, ws.OK())
	assert.Equal(t, map[string]string{"localhost:5001": "missing", "registry.local:5000": "stale", "localdev-registry:5000": "ok"}, ws.Nodes[1].HostsTOML)
	assert.Equal(t, "stale", ws.LocalRegistryHosting)

	onKubectl(rec, "-n", "kube-public").Reply(exectest.Fail(1, `Error from server (NotFound): configmaps "local-registry-hosting" not found`))
	ws, err = c.Wiring(context.Background(), testRegistry)
	require.NoError(t, err)
	assert.Equal(t, "missing", ws.LocalRegistryHosting)

	workers, _ := recordedCluster("dev-worker")
	_, err = workers.Wiring(context.Background(), testRegistry)
	assert.ErrorContains(t, err, "no control-plane node")
	assert.False(t, WiringStatus{LocalRegistryHosting: "ok"}.OK(), "no nodes is not wired")
}
