//go:build e2e

package e2e

import (
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/v1/random"
)

// uiRegistry is the plan's registry with its UI: a real `registry serve`.
type uiRegistry struct {
	t   *testing.T
	srv *server
}

func setupRegistryWithUI(t *testing.T) *uiRegistry {
	t.Helper()
	srv := startServer(t, "")
	for _, ref := range []string{"phase3/app:v1", "phase3/app:v2", "phase3/tools/cli:1.0"} {
		img, err := random.Image(1024, 2)
		if err != nil {
			t.Fatal(err)
		}
		if err := crane.Push(img, srv.Addr+"/"+ref, crane.Insecure); err != nil {
			t.Fatal(err)
		}
	}
	return &uiRegistry{t: t, srv: srv}
}

// GetUIURL is where `registry serve` says its UI is.
func (r *uiRegistry) GetUIURL() string {
	r.t.Helper()
	m := regexp.MustCompile(`Web UI: (\S+)`).FindStringSubmatch(r.srv.stdout.String())
	if m == nil {
		r.t.Fatalf("registry serve printed no UI address:\n%s", r.srv.stdout)
	}
	return m[1]
}

var repoLinkRE = regexp.MustCompile(`<a href="/ui/repo/([^"]+)" class="repo-link">`)

// getImagesFromUI reads the repositories the UI lists, with their tags from
// each repository's page, as repo:tag.
func getImagesFromUI(r *uiRegistry) []string {
	r.t.Helper()
	base := strings.TrimSuffix(r.GetUIURL(), "/ui/")
	var images []string
	for _, m := range repoLinkRE.FindAllStringSubmatch(httpGetBody(r.t, base+"/ui/"), -1) {
		page := httpGetBody(r.t, base+"/ui/repo/"+m[1])
		for _, tag := range regexp.MustCompile(`data-tag="([^"]+)"`).FindAllStringSubmatch(page, -1) {
			images = append(images, m[1]+":"+tag[1])
		}
	}
	return images
}

func httpGetBody(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, b)
	}
	return string(b)
}

// TestPhase3_RegistryUI is the plan's test: the UI answers 200 and shows the
// images pushed. It also checks `idpbuilder registry ui` and --ui=false.
func TestPhase3_RegistryUI(t *testing.T) {
	registry := setupRegistryWithUI(t)

	// Test UI accessibility
	resp, err := http.Get(registry.GetUIURL())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", registry.GetUIURL(), resp.Status)
	}

	// Test image browsing
	images := getImagesFromUI(registry)
	if len(images) == 0 {
		t.Fatal("UI should show images")
	}
	want := map[string]bool{"phase3/app:v1": true, "phase3/app:v2": true, "phase3/tools/cli:1.0": true}
	for _, img := range images {
		delete(want, img)
	}
	if len(want) > 0 {
		t.Fatalf("the UI lists %v; missing %v", images, want)
	}

	// `registry ui` finds the UI of the registry on --registry-port.
	port := registry.srv.Port()
	stdout, stderr, code := runBinary(t, append(osEnv(), "HOME="+t.TempDir()), "registry", "ui", "--registry-port", port)
	if code != 0 || strings.TrimSpace(stdout) != "http://localhost:"+port+"/ui/" {
		t.Fatalf("registry ui: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	// --ui=false: no UI, and `registry ui` says so and fails.
	off := startServer(t, "", "--ui=false")
	if strings.Contains(off.stdout.String(), "Web UI") {
		t.Fatalf("--ui=false still announces a UI:\n%s", off.stdout)
	}
	resp, err = http.Get("http://" + off.Addr + "/ui/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("--ui=false: GET /ui/: %s", resp.Status)
	}
	_, stderr, code = runBinary(t, append(osEnv(), "HOME="+t.TempDir()), "registry", "ui", "--registry-port", off.Port())
	if code != 1 || !strings.Contains(stderr, "serves no web UI") {
		t.Fatalf("registry ui against --ui=false: exit %d, stderr %q", code, stderr)
	}
	// Nothing listening: a clear error, exit 1.
	_, stderr, code = runBinary(t, append(osEnv(), "HOME="+t.TempDir()), "registry", "ui", "--registry-port", "1")
	if code != 1 || !strings.Contains(stderr, "not answering") {
		t.Fatalf("registry ui with nothing there: exit %d, stderr %q", code, stderr)
	}
}

// osEnv is this process's environment, for commands given their own HOME.
func osEnv() []string { return os.Environ() }
