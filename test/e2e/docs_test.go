//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// docBlock is a fenced sh block of a page and the marker comment before it.
type docBlock struct {
	Line   int
	Marker string // "runnable", "runnable: background", "not-runnable: why", or "" for none
	Text   string
}

var markerRE = regexp.MustCompile(`^<!--\s*((?:not-)?runnable(?::[^>]*)?)\s*-->$`)

// shBlocks returns the ```sh blocks of a markdown file with their markers.
func shBlocks(t *testing.T, path string) []docBlock {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		blocks  []docBlock
		marker  string
		cur     *docBlock
		lineNum int
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lineNum++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case cur != nil && trimmed == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.Text += line + "\n"
		case trimmed == "```sh":
			cur = &docBlock{Line: lineNum, Marker: marker}
			marker = ""
		case markerRE.MatchString(trimmed):
			marker = markerRE.FindStringSubmatch(trimmed)[1]
		case trimmed != "":
			marker = ""
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return blocks
}

// TestDocsRunnableBlocks runs every ```sh block marked <!-- runnable --> in README.md
// and docs/getting-started.md, in order, in one bash shell per page, against the
// binary under test. The documented equivalents (see "How this page is tested" in
// docs/getting-started.md): a temporary HOME, a free port instead of 5001, unique
// image names, background blocks started and waited for, `go run ./cmd/idpbuilder`
// as the binary under test.
func TestDocsRunnableBlocks(t *testing.T) {
	requireTool(t, "docker")
	requireTool(t, "curl")
	for _, page := range []struct {
		file string
		// every sh block must be marked (getting-started); README's other blocks are reference
		requireMarks bool
	}{
		{"README.md", false},
		{filepath.Join("docs", "getting-started.md"), true},
	} {
		t.Run(filepath.Base(page.file), func(t *testing.T) {
			blocks := shBlocks(t, filepath.Join(moduleRoot, page.file))
			runnable := 0
			for _, b := range blocks {
				if strings.HasPrefix(b.Marker, "runnable") {
					runnable++
				}
				if page.requireMarks && b.Marker == "" {
					t.Errorf("%s:%d: sh block marked neither <!-- runnable --> nor <!-- not-runnable: why -->", page.file, b.Line)
				}
			}
			if runnable == 0 {
				t.Fatalf("%s has no runnable block", page.file)
			}
			runDocBlocks(t, page.file, blocks)
		})
	}
}

func runDocBlocks(t *testing.T, file string, blocks []docBlock) {
	home := t.TempDir()
	binDir := t.TempDir()
	for _, n := range []string{"idpbuilder", "docker-credential-idpbuilder"} {
		if err := os.Symlink(binary, filepath.Join(binDir, n)); err != nil {
			t.Fatal(err)
		}
	}
	port := strconv.Itoa(freePort(t))
	suffix := strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	env := []string{
		"HOME=" + home,
		"PATH=" + binDir + string(os.PathListSeparator) + os.Getenv("PATH"),
		"IDPBUILDER_ADDR=127.0.0.1:" + port,
		"IDPBUILDER_REGISTRY_PORT=" + port,
		// the tests' own Go caches, not the temporary HOME's
		"GOCACHE=" + goEnv(t, "GOCACHE"), "GOMODCACHE=" + goEnv(t, "GOMODCACHE"), "GOPATH=" + goEnv(t, "GOPATH"),
	}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k == "DOCKER_HOST" || k == "TMPDIR" || k == "GOFLAGS" || k == "GOPROXY" {
			env = append(env, kv)
		}
	}
	rewrite := strings.NewReplacer(
		":5001", ":"+port,
		"go run ./cmd/idpbuilder", "idpbuilder",
		"demo/hello", "demo-"+suffix+"/hello",
	)
	// What a page leaves behind in Docker goes when the test ends, passed or not.
	t.Cleanup(func() {
		out, _ := exec.Command("docker", "images", "--format", "{{.Repository}}:{{.Tag}}").Output()
		for _, img := range strings.Fields(string(out)) {
			if strings.Contains(img, "demo-"+suffix+"/") {
				_ = exec.Command("docker", "rmi", "-f", img).Run()
			}
		}
	})

	var script strings.Builder
	for _, b := range blocks {
		if !strings.HasPrefix(b.Marker, "runnable") {
			continue
		}
		text := rewrite.Replace(b.Text)
		opts := strings.TrimSpace(strings.TrimPrefix(b.Marker, "runnable"))
		opts = strings.TrimSpace(strings.TrimPrefix(opts, ":"))
		fmt.Fprintf(&script, "echo '### %s:%d'\n", file, b.Line)
		if strings.Contains(opts, "background") {
			if strings.Contains(opts, "line 1") {
				text, _, _ = strings.Cut(text, "\n")
			}
			// The user's other terminal: a background job, stopped when the page ends.
			fmt.Fprintf(&script, "(\n%s\n) >\"$HOME/background.log\" 2>&1 &\nbgpids+=($!)\n", strings.TrimSpace(text))
			fmt.Fprintf(&script, "for _ in $(seq 600); do curl -sf http://127.0.0.1:%s/health >/dev/null && break; sleep 0.1; done\n", port)
			fmt.Fprintf(&script, "curl -sf http://127.0.0.1:%s/health >/dev/null || { cat \"$HOME/background.log\"; exit 1; }\n", port)
			continue
		}
		script.WriteString(text)
	}
	full := "set -euo pipefail\nbgpids=()\ntrap 'for p in \"${bgpids[@]}\"; do kill $p 2>/dev/null; done; wait' EXIT\n" + script.String()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", full)
	cmd.Dir = moduleRoot
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("runnable blocks of %s failed: %v\nscript:\n%s\noutput:\n%s", file, err, full, out)
	}
	t.Logf("%s:\n%s", file, out)
	// Nothing may keep listening after the page: the background registry was stopped.
	if resp, err := http.Get("http://127.0.0.1:" + port + "/health"); err == nil {
		resp.Body.Close()
		t.Errorf("a background block of %s is still serving on %s", file, port)
	}
}

func goEnv(t *testing.T, name string) string {
	t.Helper()
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}
