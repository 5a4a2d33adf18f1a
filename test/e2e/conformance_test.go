//go:build e2e

package e2e

import (
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// junitSuites is the part of the conformance runner's junit.xml we read.
type junitSuites struct {
	Tests    int `xml:"tests,attr"`
	Skipped  int `xml:"skipped,attr"`
	Disabled int `xml:"disabled,attr"`
	Suites   []struct {
		Name     string `xml:"name,attr"`
		Tests    int    `xml:"tests,attr"`
		Failures int    `xml:"failures,attr"`
		Errors   int    `xml:"errors,attr"`
		Cases    []struct {
			Name    string    `xml:"name,attr"`
			Failure *struct{} `xml:"failure"`
			Error   *struct{} `xml:"error"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

// TestOCIConformance runs the official OCI distribution-spec conformance runner
// (pinned in go.mod as a tool) against a real `registry serve` process. Referrers
// and sha512 are off: distribution v3 implements neither yet.
func TestOCIConformance(t *testing.T) {
	srv := startServer(t, "")
	results := os.Getenv("OCI_RESULTS_DIR")
	if results == "" {
		results = t.TempDir()
	}
	cmd := exec.Command("go", "tool", "conformance")
	cmd.Dir = moduleRoot
	cmd.Env = append(os.Environ(),
		"OCI_REGISTRY="+srv.Addr,
		"OCI_TLS=disabled",
		"OCI_REPO1=conformance/repo1",
		"OCI_REPO2=conformance/repo2",
		"OCI_VERSION=1.1",
		"OCI_RESULTS_DIR="+results,
		"OCI_API_REFERRER=false",
		"OCI_DATA_SHA512=false",
		"OCI_LOG=warn",
	)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("conformance runner failed to run: %v\n%s", err, out)
	}

	data, err := os.ReadFile(filepath.Join(results, "junit.xml"))
	if err != nil {
		t.Fatalf("no junit.xml from the runner: %v\n%s", err, out)
	}
	var rep junitSuites
	if err := xml.Unmarshal(data, &rep); err != nil {
		t.Fatalf("parse junit.xml: %v", err)
	}
	if len(rep.Suites) == 0 || rep.Tests == 0 {
		t.Fatalf("the runner ran no test:\n%s", out)
	}
	failures := 0
	var failed []string
	for _, s := range rep.Suites {
		failures += s.Failures + s.Errors
		for _, c := range s.Cases {
			if c.Failure != nil || c.Error != nil {
				failed = append(failed, c.Name)
			}
		}
	}
	t.Logf("OCI conformance: %d tests, %d failures, %d skipped, %d disabled, in %s (runner wall time incl. build: %s)",
		rep.Tests, failures, rep.Skipped, rep.Disabled, suiteTime(data), elapsed.Round(time.Millisecond))
	if failures > 0 {
		t.Fatalf("%d conformance failures:\n  %s\n\nrunner output:\n%s\nregistry stderr:\n%s",
			failures, strings.Join(failed, "\n  "), out, srv.stderr)
	}
}

func suiteTime(junit []byte) string {
	var v struct {
		Time string `xml:"time,attr"`
	}
	if err := xml.Unmarshal(junit, &v); err != nil || v.Time == "" {
		return "?"
	}
	return v.Time + "s"
}
