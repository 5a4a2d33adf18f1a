//go:build e2e

package e2e

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"go.yaml.in/yaml/v3"
)

// TestExampleCIRegistry runs examples/ci-registry/run.sh as a user would, so the
// example cannot rot.
func TestExampleCIRegistry(t *testing.T) {
	requireTool(t, "docker")
	cmd := exec.Command("bash", filepath.Join(moduleRoot, "examples", "ci-registry", "run.sh"))
	cmd.Env = append(os.Environ(), "IDPBUILDER="+binary)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("example failed: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "pushed and pulled localhost:") {
		t.Fatalf("example did not report a round trip:\n%s", out)
	}
}

// runExample runs an example's script with the binary under test first in PATH and
// env added; it fails the test with the script's output when the script fails.
func runExample(t *testing.T, script string, env []string, args ...string) string {
	t.Helper()
	binDir := t.TempDir()
	if err := os.Symlink(binary, filepath.Join(binDir, "idpbuilder")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", append([]string{filepath.Join(moduleRoot, "examples", script)}, args...)...)
	cmd.Env = append(os.Environ(), "PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"), "IDPBUILDER="+binary)
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("examples/%s failed: %v\n%s", script, err, out)
	}
	return string(out)
}

// TestExampleSampleApp runs examples/sample-app/run.sh against a real registry:
// build FROM scratch, push, pull back by digest, run, and the app answers.
func TestExampleSampleApp(t *testing.T) {
	requireTool(t, "docker")
	srv := startServer(t, "")
	out := runExample(t, "sample-app/run.sh", []string{"REGISTRY=" + srv.Localhost(), "TAG=e2e-" + strconv.Itoa(os.Getpid())})
	if !strings.Contains(out, "sample-app answered: hello from sample-app") {
		t.Fatalf("the app did not answer:\n%s", out)
	}
	// The image is in the registry under the tag the script pushed.
	if d := srv.manifestDigest(t, "sample-app", "e2e-"+strconv.Itoa(os.Getpid())); !strings.Contains(out, d) {
		t.Fatalf("registry holds %s, the script reported:\n%s", d, out)
	}
}

// TestExampleCI runs examples/ci/ci.sh, the script both pipeline files call, as on
// a GitHub runner (Docker on the same host, the registry on loopback), and checks
// that the pipeline files are YAML and call the script.
func TestExampleCI(t *testing.T) {
	requireTool(t, "docker")
	requireTool(t, "curl")
	for _, f := range []string{"github-actions.yml", "gitlab-ci.yml"} {
		raw, err := os.ReadFile(filepath.Join(moduleRoot, "examples", "ci", f))
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := yaml.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if !strings.Contains(string(raw), "examples/ci/ci.sh") {
			t.Errorf("%s does not call examples/ci/ci.sh", f)
		}
	}
	t.Run("loopback", func(t *testing.T) {
		out := runExample(t, "ci/ci.sh", []string{"GITHUB_SHA=e2e-loop-" + strconv.Itoa(os.Getpid())})
		for _, want := range []string{"registry service at localhost:", "sample-app answered:", "sample-app  e2e-loop-"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})
}

// TestExampleSigning runs examples/signing/run.sh (oras attach, discover, pull;
// openssl signatures) against a real registry; the repository must hold only the
// image's tag afterwards: no fallback tags, the referrers API carried the artifacts.
func TestExampleSigning(t *testing.T) {
	for _, tool := range []string{"docker", "oras", "openssl", "jq"} {
		requireTool(t, tool)
	}
	srv := startServer(t, "")
	out := runExample(t, "signing/run.sh", []string{"REGISTRY=" + srv.Localhost(), "TAG=e2e"})
	if !strings.Contains(out, "verified: "+srv.Localhost()+"/signing-demo/app@sha256:") {
		t.Fatalf("not verified:\n%s", out)
	}
	assertTags(t, srv, "signing-demo/app", "e2e")
}

// TestExampleMultiArch runs examples/multi-arch/run.sh (Go cross-compiles, crane
// assembles) against a real registry: registry list shows both platforms, each
// platform's image says so in its config, and the index runs here with docker.
func TestExampleMultiArch(t *testing.T) {
	requireTool(t, "docker")
	gobin := t.TempDir()
	version := strings.TrimSpace(runCmd(t, 5*time.Minute, "go", "list", "-C", moduleRoot, "-m", "-f", "{{.Version}}", "github.com/google/go-containerregistry"))
	install := exec.Command("go", "install", "github.com/google/go-containerregistry/cmd/crane@"+version)
	install.Dir = t.TempDir()
	install.Env = append(os.Environ(), "GOBIN="+gobin, "GOFLAGS=", "CGO_ENABLED=0")
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("installing crane %s: %v\n%s", version, err, out)
	}
	srv := startServer(t, "")
	out := runExample(t, "multi-arch/run.sh", []string{"REGISTRY=" + srv.Localhost(), "TAG=e2e",
		"PATH=" + gobin + string(os.PathListSeparator) + os.Getenv("PATH")})
	if !strings.Contains(out, "linux/amd64,linux/arm64") {
		t.Fatalf("registry list does not show both platforms:\n%s", out)
	}

	ref, err := name.ParseReference(srv.Localhost()+"/multi-arch/sample-app:e2e", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(ref)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var platforms []string
	for _, d := range im.Manifests {
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if d.Platform == nil || cf.OS+"/"+cf.Architecture != d.Platform.OS+"/"+d.Platform.Architecture {
			t.Errorf("%s: index says %v, config says %s/%s", d.Digest, d.Platform, cf.OS, cf.Architecture)
		}
		if len(cf.Config.Entrypoint) != 1 || cf.Config.Entrypoint[0] != "/sample-app" {
			t.Errorf("%s: entrypoint %q", d.Digest, cf.Config.Entrypoint)
		}
		platforms = append(platforms, cf.OS+"/"+cf.Architecture)
	}
	if strings.Join(platforms, ",") != "linux/amd64,linux/arm64" {
		t.Fatalf("platforms %v", platforms)
	}

	// This machine's platform of the index runs.
	image := srv.Localhost() + "/multi-arch/sample-app:e2e"
	cid := strings.TrimSpace(runCmd(t, 2*time.Minute, "docker", "run", "-d", "--rm", "-p", "127.0.0.1::8080", image))
	t.Cleanup(func() {
		_ = exec.Command("docker", "rm", "-f", cid).Run()
		_ = exec.Command("docker", "rmi", image).Run()
	})
	hostPort := strings.TrimSpace(runCmd(t, time.Minute, "docker", "port", cid, "8080/tcp"))
	hostPort = strings.Split(hostPort, "\n")[0]
	var body string
	for range 100 {
		if resp, err := http.Get("http://" + hostPort + "/"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.HasPrefix(body, "hello from sample-app") {
		t.Fatalf("the app from the index answered %q", body)
	}
}
