package kind

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
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
