package docs

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func readRepoFile(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var (
	backquotedRE = regexp.MustCompile("`([^`]+)`")
	goInstallRE  = regexp.MustCompile(`go install (\S+)@(v\S+)`)
	testFuncRE   = regexp.MustCompile(`(?m)^func (Test\w+)\(`)
)

// TestCompatibilityMatrix keeps docs/compatibility.md to what CI runs: every
// version whose source is go.mod, hack/test-all.sh or the e2e tests is pinned
// there, every tool hack/test-all.sh pins is in the table, and every test named
// exists.
func TestCompatibilityMatrix(t *testing.T) {
	page := readRepoFile(t, "docs/compatibility.md")
	gomod := readRepoFile(t, "go.mod")
	testAll := readRepoFile(t, "hack/test-all.sh")
	var e2e strings.Builder
	files, err := filepath.Glob(filepath.Join("..", "test", "e2e", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		e2e.Write(b)
	}
	tests := map[string]bool{}
	for _, m := range testFuncRE.FindAllStringSubmatch(e2e.String(), -1) {
		tests[m[1]] = true
	}

	rows := 0
	for _, line := range strings.Split(page, "\n") {
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if !strings.HasPrefix(line, "|") || len(cells) != 4 || strings.HasPrefix(cells[0], "---") || strings.TrimSpace(cells[0]) == "component" {
			continue
		}
		rows++
		component, source := strings.TrimSpace(cells[0]), strings.TrimSpace(cells[2])
		versions := backquotedRE.FindAllStringSubmatch(cells[1], -1)
		if len(versions) != 1 {
			t.Errorf("%s: want one `version`, have %q", component, cells[1])
			continue
		}
		version := versions[0][1]
		checked := false
		if rest, ok := strings.CutPrefix(source, "go.mod"); ok {
			checked = true
			mod := backquotedRE.FindStringSubmatch(rest)
			if mod == nil {
				t.Errorf("%s: source go.mod names no module", component)
			} else if want := mod[1] + " " + version; mod[1] == "go" && !strings.Contains(gomod, "\ngo "+version+"\n") ||
				mod[1] != "go" && !strings.Contains(gomod, want) {
				t.Errorf("%s: go.mod does not require %s", component, want)
			}
		}
		if strings.Contains(source, "hack/test-all.sh") {
			checked = true
			if !strings.Contains(testAll, "@"+version) && !strings.Contains(testAll, version+",") && !strings.Contains(testAll, version+"\n") {
				t.Errorf("%s: hack/test-all.sh does not use %s", component, version)
			}
		}
		if strings.Contains(source, "test/e2e/") {
			checked = true
			if !strings.Contains(e2e.String(), `"`+version+`"`) {
				t.Errorf("%s: the e2e tests do not use %s", component, version)
			}
		}
		if !checked && !strings.Contains(source, "*observed*") {
			t.Errorf("%s: source %q is neither checkable (go.mod, hack/test-all.sh, test/e2e/) nor marked *observed*", component, source)
		}
		for _, m := range backquotedRE.FindAllStringSubmatch(cells[3], -1) {
			name := m[1]
			if !strings.HasPrefix(name, "Test") {
				continue
			}
			if prefix, ok := strings.CutSuffix(name, "*"); ok {
				found := false
				for tn := range tests {
					found = found || strings.HasPrefix(tn, prefix)
				}
				if !found {
					t.Errorf("%s: no e2e test matches %s", component, name)
				}
			} else if !tests[name] {
				t.Errorf("%s: no e2e test %s", component, name)
			}
		}
	}
	if rows < 10 {
		t.Fatalf("read only %d rows of the matrix", rows)
	}
	for _, m := range goInstallRE.FindAllStringSubmatch(testAll, -1) {
		if !strings.Contains(page, "`"+m[2]+"`") {
			t.Errorf("hack/test-all.sh installs %s@%s; the matrix does not list that version", m[1], m[2])
		}
	}
}
