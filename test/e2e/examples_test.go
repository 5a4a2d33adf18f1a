//go:build e2e

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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
