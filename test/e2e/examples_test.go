//go:build e2e

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

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
