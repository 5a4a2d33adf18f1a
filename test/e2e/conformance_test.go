//go:build e2e

package e2e

import (
	"encoding/xml"
	"fmt"
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
// (pinned in go.mod as a tool) against a real `registry serve` process: plain, and
// with TLS and --auth=all, whose run time must stay within 1.5x of the plain run
// (bcrypt runs once per credential, not per request). Every area is on, the
// referrers API and sha512 digests included; opt-in areas as the runner defaults them.
func TestOCIConformance(t *testing.T) {
	plain := runConformance(t, startServer(t, ""), nil)

	home := t.TempDir()
	addUser(t, home, "conformance", "conformance-password")
	srv := startServerHome(t, home, "", "--tls", "--auth", "all")
	secure := runConformance(t, srv, []string{
		"OCI_TLS=enabled",
		"SSL_CERT_FILE=" + filepath.Join(home, ".local", "state", "idpbuilder", "certs", "ca.crt"),
		"OCI_USERNAME=conformance", "OCI_PASSWORD=conformance-password",
	})
	if !strings.Contains(srv.stderr.String(), "user=conformance") {
		t.Fatalf("the access log shows no authenticated request:\n%s", lastLines(srv.stderr.String(), 20))
	}
	ratio := secure.Seconds() / plain.Seconds()
	t.Logf("conformance suite time: plain %s, TLS + auth=all %s (ratio %.2f)", plain, secure, ratio)
	if ratio > 1.5 {
		t.Errorf("TLS + auth run took %.2fx the plain run (limit 1.5x)", ratio)
	}
}

// TestOCIConformanceAuthPush runs the conformance runner with credentials
// under --auth push, the default once a user exists: anonymous reads, writes
// through the token flow (the runner follows Bearer challenges to
// /auth/token, scopes and cross-repository mounts included).
func TestOCIConformanceAuthPush(t *testing.T) {
	home := t.TempDir()
	addUser(t, home, "conformance", "conformance-password")
	srv := startServerHome(t, home, "", "--auth", "push")
	runConformance(t, srv, []string{"OCI_USERNAME=conformance", "OCI_PASSWORD=conformance-password"})
	log := srv.stderr.String()
	for _, want := range []string{"user=conformance method=GET path=/auth/token route=token status=200", "user=conformance method=POST", "user=conformance method=DELETE"} {
		if !strings.Contains(log, want) {
			t.Errorf("the access log shows no %q:\n%s", want, lastLines(log, 20))
		}
	}
}

// addUser adds a registry user in the state dir under home.
func addUser(t testing.TB, home, user, password string) {
	t.Helper()
	cmd := exec.Command(binary, "registry", "user", "add", user, "--password-stdin")
	cmd.Env = append(os.Environ(), "HOME="+home)
	cmd.Stdin = strings.NewReader(password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("user add: %v\n%s", err, out)
	}
}

// runConformance runs the runner against srv with extra environment and returns
// the suite's own run time; it fails the test on any failure.
func runConformance(t *testing.T, srv *server, env []string) time.Duration {
	t.Helper()
	results := t.TempDir()
	if d := os.Getenv("OCI_RESULTS_DIR"); d != "" {
		results = filepath.Join(d, strings.ReplaceAll(t.Name(), "/", "_")+fmt.Sprint(len(env)))
	}
	cmd := exec.Command("go", "tool", "conformance")
	cmd.Dir = moduleRoot
	cmd.Env = append(append(os.Environ(),
		"OCI_REGISTRY="+srv.Addr,
		"OCI_TLS=disabled",
		"OCI_REPO1=conformance/repo1",
		"OCI_REPO2=conformance/repo2",
		"OCI_VERSION=1.1",
		"OCI_RESULTS_DIR="+results,
		"OCI_LOG=warn",
	), env...)
	out, err := cmd.CombinedOutput()
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
	suite := suiteTime(data)
	t.Logf("OCI conformance (%s): %d tests, %d failures, %d skipped, %d disabled, suite time %s",
		srv.scheme(), rep.Tests, failures, rep.Skipped, rep.Disabled, suite)
	if failures > 0 {
		t.Fatalf("%d conformance failures:\n  %s\n\nrunner output:\n%s\nregistry stderr:\n%s",
			failures, strings.Join(failed, "\n  "), out, lastLines(srv.stderr.String(), 40))
	}
	return suite
}

func suiteTime(junit []byte) time.Duration {
	var v struct {
		Time float64 `xml:"time,attr"`
	}
	_ = xml.Unmarshal(junit, &v)
	return time.Duration(v.Time * float64(time.Second))
}
