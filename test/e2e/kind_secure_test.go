//go:build e2e

package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// TestKindClusterTLSAndAuth: a cluster whose registry speaks TLS (local CA,
// verified by containerd: no skip_verify) and requires a login for everything.
// A pod runs an image pushed with auth, without any pull secret; after a forced
// certificate rotation a new pod still pulls, and containerd was not restarted.
// On every node image: containerd reads the CA and the header from hosts.toml.
func TestKindClusterTLSAndAuth(t *testing.T) {
	onNodeImages(t, nodeImages(), func(t *testing.T, nodeImage string) {
		testKindSecure(t, newKindHarness(t, "idpb-e2e-sec", nodeImage), "container")
	})
}

// TestKindClusterTLSAndAuthProcessMode: the same with the registry as a host
// process (its certificate then also names the kind gateway the nodes dial); on
// the first node image, as the mode does not touch containerd.
func TestKindClusterTLSAndAuthProcessMode(t *testing.T) {
	onNodeImages(t, nodeImages()[:1], func(t *testing.T, nodeImage string) {
		testKindSecure(t, newKindHarness(t, "idpb-e2e-sec-proc", nodeImage), "process")
	})
}

func testKindSecure(t *testing.T, h *kindHarness, mode string) {
	addUser(t, h.home, "alice", "alice-password-1")
	h.env = append(h.env, "IDPBUILDER_REGISTRY_TLS=true", "IDPBUILDER_REGISTRY_AUTH=all", "IDPBUILDER_REGISTRY_MODE="+mode)
	h.mustRun("create")

	certDir := filepath.Join(h.home, ".local", "state", "idpbuilder", "clusters", h.name, "certs")
	pem, err := os.ReadFile(filepath.Join(certDir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	reg := fmt.Sprintf("localhost:%d", h.port)
	ref := reg + "/secure/app:v1"

	// Push with a client that verifies the certificate against our CA only.
	importHello(t, "idpbuilder-e2e/secure:v1")
	tarball := filepath.Join(t.TempDir(), "img.tar")
	runCmd(t, time.Minute, "docker", "save", "-o", tarball, "idpbuilder-e2e/secure:v1")
	img, err := crane.Load(tarball)
	if err != nil {
		t.Fatal(err)
	}
	alice := crane.WithAuth(&authn.Basic{Username: "alice", Password: "alice-password-1"})
	if err := crane.Push(img, ref, crane.WithTransport(tr), alice); err != nil {
		t.Fatalf("push with auth over TLS: %v", err)
	}
	want, _ := img.Digest()
	// Everything needs a login: an anonymous pull is refused.
	_, err = crane.Digest(ref, crane.WithTransport(tr))
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous pull: %v (want 401)", err)
	}

	// `registry push` needs a login too; `registry login` verifies it over TLS with the cluster CA.
	dir, _ := multiArchLayout(t)
	if _, errOut, code := h.run("registry", "push", dir, "multi/arch:v1"); code != 1 || !strings.Contains(errOut, "needs a login to push: idpbuilder registry login") {
		t.Fatalf("push without login: exit %d: %s", code, errOut)
	}
	cmd := exec.Command(binary, "registry", "login", "-u", "alice", "--password-stdin")
	cmd.Env, cmd.Stdin = h.env, strings.NewReader("alice-password-1\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("registry login: %v\n%s", err, out)
	}
	h.mustRun("registry", "push", dir, "multi/arch:v1")
	if out := h.mustRun("registry", "list", "multi/arch"); !strings.Contains(out, "linux/amd64,linux/arm64") {
		t.Fatalf("list over TLS with login:\n%s", out)
	}

	toml := runCmd(t, time.Minute, "docker", "exec", h.node(), "cat", "/etc/containerd/certs.d/"+reg+"/hosts.toml")
	if !strings.Contains(toml, `ca = "/etc/containerd/certs.d/`+reg+`/ca.crt"`) || strings.Contains(toml, "skip_verify") || !strings.Contains(toml, "https://") {
		t.Fatalf("hosts.toml on the node:\n%s", toml)
	}
	containerdPID := strings.TrimSpace(runCmd(t, time.Minute, "docker", "exec", h.node(), "pidof", "containerd"))

	if id := h.deploy("secure", ref); !strings.HasSuffix(id, "@"+want.String()) {
		t.Fatalf("pod imageID %s, pushed %s", id, want)
	}

	// Forced rotation; the registry serves the new certificate within seconds.
	served := func() string {
		conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", h.port), &tls.Config{RootCAs: pool})
		if err != nil {
			t.Fatalf("TLS handshake: %v", err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	before := served()
	h.mustRun("registry", "cert", "rotate", "--cert-dir", certDir)
	deadline := time.Now().Add(60 * time.Second)
	for served() == before {
		if time.Now().After(deadline) {
			t.Fatal("the registry still serves the old certificate a minute after rotation")
		}
		time.Sleep(500 * time.Millisecond)
	}
	if id := h.deploy("after-rotation", ref); !strings.HasSuffix(id, "@"+want.String()) {
		t.Fatalf("after rotation the pod runs %s", id)
	}
	if now := strings.TrimSpace(runCmd(t, time.Minute, "docker", "exec", h.node(), "pidof", "containerd")); now != containerdPID {
		t.Fatalf("containerd was restarted (%s -> %s)", containerdPID, now)
	}
	out, errOut, code := h.run("registry", "status", "-o", "json")
	if code != 0 || !strings.Contains(out, `"mode": "`+mode+`"`) {
		t.Fatalf("registry status exit %d\n%s\n%s", code, out, errOut)
	}
}
