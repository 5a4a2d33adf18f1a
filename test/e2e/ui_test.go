//go:build e2e

package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// chromiumPath is Debian's chromium. Without it the browser tests fail where
// IDPBUILDER_REQUIRE_BROWSER=1 (hack/test-all.sh, CI) and skip elsewhere.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, n := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	msg := "chromium not found in PATH: the web UI's browser tests need Debian's chromium (apt-get install chromium; hack/test-all.sh installs it)"
	if os.Getenv("IDPBUILDER_REQUIRE_BROWSER") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// tab is one headless Chromium page that records every request it makes and
// every console message, and can never reach beyond this machine.
type tab struct {
	t      *testing.T
	ctx    context.Context
	origin string // http://127.0.0.1:port, the registry
	shots  string

	mu       sync.Mutex
	requests []string
	console  []string
	allowed  []string // console errors a step expects, e.g. the 401 of a wrong password
	others   []string // origins besides the registry a step visits on purpose
}

func newTab(t *testing.T, srv *server) *tab {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox, // CI runs as root
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.WindowSize(1280, 800),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	tb := &tab{t: t, ctx: ctx, origin: "http://" + srv.Addr, shots: t.ArtifactDir()}
	if err := chromedp.Listen(ctx, tb.record); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	for _, perm := range []string{"clipboard-read", "clipboard-write"} {
		if _, err := chromedp.CallBrowser(ctx, browser.SetPermission, browser.SetPermissionParams{
			Permission: &browser.PermissionDescriptor{Name: perm}, Setting: browser.PermissionSettingGranted, Origin: tb.origin,
		}); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(tb.checkNetworkAndConsole)
	return tb
}

// record runs in chromedp's event loop: it only appends.
func (tb *tab) record(ev any) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	switch e := ev.(type) {
	case *network.EventRequestWillBeSent:
		tb.requests = append(tb.requests, e.Request.URL)
	case *runtime.EventConsoleAPICalled:
		if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeAssert {
			var args []string
			for _, a := range e.Args {
				args = append(args, string(a.Value)+a.Description)
			}
			tb.console = append(tb.console, "console."+string(e.Type)+": "+strings.Join(args, " "))
		}
	case *runtime.EventExceptionThrown:
		tb.console = append(tb.console, "exception: "+e.ExceptionDetails.Text+" "+e.ExceptionDetails.URL)
	case *cdplog.EventEntryAdded:
		if e.Entry.Level == cdplog.EntryLevelError {
			tb.console = append(tb.console, "log: "+e.Entry.Text+" "+e.Entry.URL)
		}
	}
}

// expectError allows one console error that contains both parts (a failed
// login's 401, a forged request's 403).
func (tb *tab) expectError(status int, path string) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.allowed = append(tb.allowed, fmt.Sprintf("%d|%s", status, tb.origin+path))
}

// checkNetworkAndConsole: every request went to the registry (or to an origin
// a step chose), and no page logged an error it was not expected to.
func (tb *tab) checkNetworkAndConsole() {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if len(tb.requests) == 0 {
		tb.t.Error("no request was recorded")
	}
	for _, u := range tb.requests {
		ok := strings.HasPrefix(u, tb.origin+"/")
		for _, o := range tb.others {
			ok = ok || strings.HasPrefix(u, o+"/")
		}
		if !ok {
			tb.t.Errorf("the browser asked for %s, which is not the registry", u)
		}
	}
	allowed := slices.Clone(tb.allowed)
	for _, m := range tb.console {
		i := slices.IndexFunc(allowed, func(a string) bool {
			status, u, _ := strings.Cut(a, "|")
			return strings.Contains(m, "status of "+status) && strings.Contains(m, u)
		})
		if i < 0 {
			tb.t.Errorf("console error: %s", m)
			continue
		}
		allowed = slices.Delete(allowed, i, i+1)
	}
	tb.t.Logf("%d requests, all to %s; %d console errors, each expected", len(tb.requests), tb.origin, len(tb.console))
}

func (tb *tab) do(steps ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		tb.t.Fatal(err)
	}
}

// load runs steps that navigate and returns the status of the page that loads.
func (tb *tab) load(steps ...chromedp.Action[chromedp.Void]) int64 {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, time.Minute)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, steps...)
	if err != nil {
		tb.t.Fatal(err)
	}
	tb.checkPage()
	return resp.Status
}

func (tb *tab) open(path string) int64 {
	tb.t.Helper()
	return tb.load(chromedp.Navigate(tb.origin + path))
}

func eval[T any](tb *tab, js string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, time.Minute)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.t.Fatalf("%s: %v", js, err)
	}
	return v
}

func (tb *tab) location() string {
	tb.t.Helper()
	u, err := chromedp.Run(tb.ctx, chromedp.Location())
	if err != nil {
		tb.t.Fatal(err)
	}
	return strings.TrimPrefix(u, tb.origin)
}

func (tb *tab) text(sel string) string {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS(sel)))
	if err != nil {
		tb.t.Fatalf("%s: %v", sel, err)
	}
	return strings.Join(strings.Fields(s), " ")
}

// pageProblems lists what a page must not have: inline style or script, a
// control without a name a screen reader can say, a page wider than the window.
const pageProblems = `(() => {
  const out = [];
  if (!document.documentElement.lang) out.push("no lang");
  if (!document.title) out.push("no title");
  if (document.querySelectorAll("h1").length !== 1) out.push("h1 count " + document.querySelectorAll("h1").length);
  document.querySelectorAll("[style]").forEach(e => out.push("style attribute on " + e.tagName));
  document.querySelectorAll("style").forEach(() => out.push("style element"));
  document.querySelectorAll("script").forEach(s => { if (!s.src || s.textContent.trim()) out.push("inline script"); });
  document.querySelectorAll("input:not([type=hidden]), select, textarea").forEach(e => {
    if (!(e.labels && e.labels.length) && !e.getAttribute("aria-label")) out.push("unlabelled " + e.tagName + "#" + e.id);
  });
  document.querySelectorAll("button, a[href]").forEach(e => {
    if (!(e.getAttribute("aria-label") || e.textContent.trim() || e.title)) out.push("nameless " + e.tagName);
  });
  if (document.documentElement.scrollWidth > window.innerWidth + 1) out.push("wider than the window: " + document.documentElement.scrollWidth + " > " + window.innerWidth);
  return out;
})()`

func (tb *tab) checkPage() {
	tb.t.Helper()
	if problems := eval[[]string](tb, pageProblems); len(problems) > 0 {
		tb.t.Errorf("%s: %v", tb.location(), problems)
	}
}

// shoot saves the page in the light and the dark theme (the system's choice,
// as the browser reports it to the page).
func (tb *tab) shoot(name string) {
	tb.t.Helper()
	for _, scheme := range []string{"light", "dark"} {
		if _, err := chromedp.Call(tb.ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
		}); err != nil {
			tb.t.Fatal(err)
		}
		if got := eval[string](tb, `getComputedStyle(document.body).backgroundColor`); (scheme == "dark") != (got == "rgb(13, 17, 23)") {
			tb.t.Errorf("%s in the %s theme: background %s", name, scheme, got)
		}
		png, err := chromedp.Run(tb.ctx, chromedp.FullScreenshot(100))
		if err != nil {
			tb.t.Fatal(err)
		}
		file := filepath.Join(tb.shots, name+"-"+scheme+".png")
		if err := os.WriteFile(file, png, 0o644); err != nil {
			tb.t.Fatal(err)
		}
		if dir := os.Getenv("IDPBUILDER_UI_DOCS"); dir != "" && (name == "repository-index" && scheme == "light" || name == "manifest-index" && scheme == "dark") {
			if err := os.WriteFile(filepath.Join(dir, "ui-"+name+"-"+scheme+".png"), png, 0o644); err != nil {
				tb.t.Fatal(err)
			}
		}
	}
	if _, err := chromedp.Call(tb.ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{}); err != nil {
		tb.t.Fatal(err)
	}
}

// phone shows the page as a 390×844 phone does, checks it fits, and saves it.
func (tb *tab) phone(name string) {
	tb.t.Helper()
	if _, err := chromedp.Call(tb.ctx, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{
		Width: 390, Height: 844, DeviceScaleFactor: 2, Mobile: true,
	}); err != nil {
		tb.t.Fatal(err)
	}
	tb.load(chromedp.Reload())
	tb.shoot("phone-" + name)
	if _, err := chromedp.Call(tb.ctx, emulation.ClearDeviceMetricsOverride, cdp.Empty{}); err != nil {
		tb.t.Fatal(err)
	}
	tb.load(chromedp.Reload())
}

// humanSize is the UI's rendering of a size: binary units, one decimal.
func humanSize(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(1024), 0
	for m := n / 1024; m >= 1024; m /= 1024 {
		div *= 1024
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// compressedSize is an image's config and layers, as the UI sums them.
func compressedSize(t *testing.T, img v1.Image) int64 {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	n := m.Config.Size
	for _, l := range m.Layers {
		n += l.Size
	}
	return n
}

func platformImage(t *testing.T, os, arch string, size int64, layers int) v1.Image {
	t.Helper()
	img, err := random.Image(size, int64(layers))
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf.OS, cf.Architecture = os, arch
	cf.Created = v1.Time{Time: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	cf.Config.Entrypoint = []string{"/app", "--serve"}
	cf.Config.Env = []string{"PATH=/usr/bin", "APP_MODE=" + arch}
	cf.Config.Labels = map[string]string{"org.opencontainers.image.title": "app for " + arch}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// helmChart builds a chart archive and its Chart.yaml as helm pushes it (JSON).
func helmChart(t *testing.T, dir, name, version string) (chartFile, configFile string) {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	files := map[string]string{
		name + "/Chart.yaml":  fmt.Sprintf("apiVersion: v2\nname: %s\nversion: %s\nappVersion: \"1.0.0\"\ndescription: A chart built by the UI test\n", name, version),
		name + "/values.yaml": "replicaCount: 1\n",
		name + "/templates/deployment.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n" +
			"spec:\n  replicas: {{ .Values.replicaCount }}\n",
	}
	for _, n := range []string{name + "/Chart.yaml", name + "/values.yaml", name + "/templates/deployment.yaml"} {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), ModTime: time.Unix(0, 0)}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(files[n])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	chartFile = name + "-" + version + ".tgz"
	configFile = "Chart.json"
	if err := os.WriteFile(filepath.Join(dir, chartFile), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`{"name":%q,"version":%q,"description":"A chart built by the UI test","apiVersion":"v2","appVersion":"1.0.0"}`, name, version)
	if err := os.WriteFile(filepath.Join(dir, configFile), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return chartFile, configFile
}

// TestUIInBrowser drives the UI in headless Chromium: it finds what real
// clients pushed, shows an index's platforms with their sizes, an oras-attached
// SBOM, copies a pull command, deletes a tag and a repository through their
// confirmations, logs in and out, and refuses forged requests. Each page is
// checked for inline code, unlabelled controls and overflow, and saved in the
// light and the dark theme.
func TestUIInBrowser(t *testing.T) {
	chromiumPath(t)
	requireTool(t, "oras")
	home := t.TempDir()
	const user, password = "alice", "alice-password-1"
	addUser(t, home, user, password)
	// No grace period: what a delete leaves behind is collectable at once.
	srv := startServerHome(t, home, "", "--auth", "push", "--gc-grace", "1ms")
	host := "localhost:" + srv.Port()
	alice := crane.WithAuth(&authn.Basic{Username: user, Password: password})
	ropts := []remote.Option{remote.WithAuth(&authn.Basic{Username: user, Password: password})}

	// What real clients push: a two-platform index (with a buildx-style
	// attestation manifest), an image with an SBOM attached by oras, a Helm
	// chart pushed by oras with helm's media types, and a repository to delete.
	amd := platformImage(t, "linux", "amd64", 6000, 2)
	arm := platformImage(t, "linux", "arm64", 2000, 1)
	att, err := random.Image(300, 1)
	if err != nil {
		t.Fatal(err)
	}
	amdDigest, _ := amd.Digest()
	armDigest, _ := arm.Digest()
	idx := mutate.IndexMediaType(mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
		mutate.IndexAddendum{Add: att, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "unknown", Architecture: "unknown"},
			Annotations: map[string]string{"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": amdDigest.String()}}},
	), types.OCIImageIndex)
	idxRef, err := name.ParseReference(srv.Addr+"/multi/app:1.0", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(idxRef, idx, ropts...); err != nil {
		t.Fatal(err)
	}
	web := platformImage(t, "linux", "amd64", 4000, 2)
	for _, tag := range []string{"v1", "stable"} {
		if err := crane.Push(web, srv.Addr+"/team/web:"+tag, crane.Insecure, alice); err != nil {
			t.Fatal(err)
		}
	}
	if err := crane.Push(platformImage(t, "linux", "amd64", 1000, 1), srv.Addr+"/team/web:v2", crane.Insecure, alice); err != nil {
		t.Fatal(err)
	}
	if err := crane.Push(platformImage(t, "linux", "amd64", 500, 1), srv.Addr+"/scratch/tmp:v1", crane.Insecure, alice); err != nil {
		t.Fatal(err)
	}
	env, work := toolEnv(t), t.TempDir()
	if err := os.WriteFile(filepath.Join(work, "sbom.spdx.json"), []byte(`{"spdxVersion":"SPDX-2.3","name":"team/web"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	runTool(t, env, work, "oras", "attach", "--plain-http", "-u", user, "-p", password, "--artifact-type", "application/spdx+json",
		srv.Addr+"/team/web:v1", "sbom.spdx.json:application/spdx+json")
	chart, chartCfg := helmChart(t, work, "hello", "0.1.0")
	runTool(t, env, work, "oras", "push", "--plain-http", "-u", user, "-p", password,
		"--config", chartCfg+":application/vnd.cncf.helm.config.v1+json",
		srv.Addr+"/charts/hello:0.1.0", chart+":application/vnd.cncf.helm.chart.content.v1.tar+gzip")

	tb := newTab(t, srv)

	t.Log("the repository list, and search")
	if st := tb.open("/ui/"); st != http.StatusOK {
		t.Fatalf("/ui/: %d", st)
	}
	list := tb.text("table.repos tbody")
	for _, r := range []string{"multi/app", "team/web", "charts/hello", "scratch/tmp"} {
		if !strings.Contains(list, r) {
			t.Errorf("the list lacks %s: %s", r, list)
		}
	}
	tb.shoot("repositories")
	tb.load(chromedp.SetValue(chromedp.ID("q"), "hello"), chromedp.Click(chromedp.CSS(`form.search button[type=submit]`)))
	if got := tb.location(); got != "/ui/?q=hello" {
		t.Errorf("search went to %s", got)
	}
	if rows := eval[int](tb, `document.querySelectorAll("table.repos tbody tr").length`); rows != 1 || !strings.Contains(tb.text("table.repos tbody"), "charts/hello") {
		t.Errorf("search for hello: %d rows: %s", rows, tb.text("table.repos tbody"))
	}

	t.Log("the index: both platforms with their own sizes, the attestation apart")
	tb.open("/ui/?q=multi")
	tb.load(chromedp.Click(chromedp.CSS(`a[href="/ui/repo/multi/app"]`)))
	row := tb.text(`tr[data-tag="1.0"]`)
	for _, want := range []string{"multi-arch index", "linux/amd64", humanSize(compressedSize(t, amd)), "linux/arm64/v8", humanSize(compressedSize(t, arm)), "attestation"} {
		if !strings.Contains(row, want) {
			t.Errorf("index row lacks %q: %s", want, row)
		}
	}
	if strings.Contains(row, "unknown") {
		t.Errorf("an attestation shown as a platform: %s", row)
	}
	tb.shoot("repository-index")
	tb.load(chromedp.Click(chromedp.CSS(`a[href="/ui/repo/multi/app/-/manifest/1.0"]`)))
	if got := eval[int](tb, `document.querySelectorAll("#platform option").length`); got != 2 {
		t.Errorf("platform picker has %d entries, want 2", got)
	}
	// From the keyboard an arrow only moves the choice; Enter shows it.
	tb.do(chromedp.Focus(chromedp.ID("platform")), chromedp.KeyEvent(kb.ArrowDown))
	if got := eval[string](tb, `document.getElementById("platform").value`); got != armDigest.String() {
		t.Errorf("after ArrowDown the picker holds %s", got)
	}
	if got := tb.location(); got != "/ui/repo/multi/app/-/manifest/1.0" {
		t.Errorf("an arrow key changed the page to %s", got)
	}
	if eval[bool](tb, `document.querySelector("form.picker button").hidden`) {
		t.Error("the Show button stays hidden for a keyboard user")
	}
	tb.load(chromedp.KeyEvent("\r"))
	if got := tb.location(); got != "/ui/repo/multi/app/-/manifest/1.0?platform="+url.QueryEscape(armDigest.String()) {
		t.Errorf("the picker went to %s", got)
	}
	detail := tb.text(`section[aria-labelledby="detail-h"]`)
	for _, want := range []string{"linux/arm64", `["/app","--serve"]`, "APP_MODE=arm64", "app for arm64", humanSize(compressedSize(t, arm))} {
		if !strings.Contains(detail, want) {
			t.Errorf("arm64 detail lacks %q: %s", want, detail)
		}
	}
	if n := eval[int](tb, `document.querySelectorAll("table.layers tbody tr").length`); n != 1 {
		t.Errorf("arm64 shows %d layers, want 1", n)
	}
	tb.shoot("manifest-index")

	t.Log("the image with its SBOM, opened")
	tb.open("/ui/repo/team/web")
	if badge := tb.text(`tr[data-tag="v1"] .badge-sbom`); badge != "SBOM" {
		t.Errorf("v1's SBOM badge: %q", badge)
	}
	tb.shoot("repository-image")
	tb.load(chromedp.Click(chromedp.CSS(`tr[data-tag="v1"] td.tag a`)))
	if badge := tb.text(`table.referrers tbody tr .badge-sbom`); badge != "SBOM" {
		t.Errorf("the referrer's kind: %q", badge)
	}
	tb.load(chromedp.Click(chromedp.CSS(`table.referrers tbody a`)))
	sbomPage := tb.text("main")
	webDigest, _ := web.Digest()
	for _, want := range []string{"Refers to", webDigest.String(), "application/spdx+json", "sbom.spdx.json", "oras pull --plain-http " + host + "/team/web@sha256:"} {
		if !strings.Contains(sbomPage, want) {
			t.Errorf("the SBOM's page lacks %q", want)
		}
	}
	tb.shoot("manifest-sbom")

	t.Log("copy a pull command")
	tb.open("/ui/repo/team/web/-/manifest/v1")
	tb.do(chromedp.Click(chromedp.CSS(`button[data-copy^="docker pull"]`)))
	if got, want := eval[string](tb, `navigator.clipboard.readText()`), "docker pull "+host+"/team/web:v1"; got != want {
		t.Errorf("clipboard: %q, want %q", got, want)
	}
	if live := eval[string](tb, `document.getElementById("live").textContent`); live != "Copied: docker pull "+host+"/team/web:v1" {
		t.Errorf("screen reader announcement: %q", live)
	}
	tb.shoot("manifest-image")

	t.Log("keyboard: skip link first, theme toggle by Enter")
	tb.load(chromedp.Reload())
	tb.do(chromedp.KeyEvent("\t"))
	if got := eval[string](tb, `document.activeElement.textContent`); got != "Skip to content" {
		t.Errorf("first Tab focuses %q", got)
	}
	tb.do(chromedp.Focus(chromedp.ID("theme-toggle")), chromedp.KeyEvent("\r"))
	if got := eval[string](tb, `document.documentElement.dataset.theme`); got != "dark" {
		t.Errorf("after the toggle the theme is %q, want dark (the system's is light)", got)
	}
	tb.load(chromedp.Reload())
	if got := eval[string](tb, `document.documentElement.dataset.theme`); got != "dark" {
		t.Errorf("the chosen theme does not survive a reload: %q", got)
	}
	tb.do(chromedp.Click(chromedp.ID("theme-toggle")))
	eval[chromedp.Void](tb, `document.cookie = "idpbuilder_theme=; Path=/ui/; Max-Age=0"`)

	t.Log("deleting a tag needs a login; the confirmation names the tag that shares its manifest")
	tb.open("/ui/repo/team/web")
	tb.load(chromedp.Click(chromedp.CSS(`a[href^="/ui/login"]`)))
	if got := tb.location(); !strings.HasPrefix(got, "/ui/login?next=") {
		t.Fatalf("log in to delete went to %s", got)
	}
	tb.shoot("login")
	tb.load(chromedp.SendKeys(chromedp.ID("username"), user), chromedp.SendKeys(chromedp.ID("password"), password+"\r"))
	if got := tb.location(); got != "/ui/repo/team/web" {
		t.Errorf("after the login: %s", got)
	}
	if who := tb.text(".who"); who != "Signed in as alice" {
		t.Errorf("header says %q", who)
	}
	tb.load(chromedp.Click(chromedp.CSS(`a[aria-label="Delete tag v1"]`)))
	if w := tb.text(".warning"); !strings.Contains(w, "Other tags point to the same manifest: stable") {
		t.Errorf("confirmation: %q", w)
	}
	tb.shoot("delete-tag")
	tb.load(chromedp.Click(chromedp.ID("confirm-delete")))
	if f := tb.text(".flash"); !strings.Contains(f, "Deleted tag team/web:v1.") || !strings.Contains(f, "Run garbage collection") {
		t.Errorf("after the delete: %q", f)
	}
	tb.shoot("deleted")
	tags, err := crane.ListTags(srv.Addr+"/team/web", crane.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(tags, "v1") || !slices.Contains(tags, "stable") {
		t.Errorf("tags after deleting v1: %v", tags)
	}

	t.Log("deleting a repository: the button waits for its name")
	tb.open("/ui/repo/scratch/tmp")
	tb.load(chromedp.Click(chromedp.CSS(`a[href="/ui/repo/scratch/tmp/-/delete"]`)))
	if !eval[bool](tb, `document.getElementById("confirm-delete").disabled`) {
		t.Error("the delete button is enabled before the name is typed")
	}
	tb.do(chromedp.SendKeys(chromedp.ID("confirm"), "scratch/tmp"))
	if eval[bool](tb, `document.getElementById("confirm-delete").disabled`) {
		t.Error("the delete button stays disabled with the name typed")
	}
	tb.shoot("delete-repository")
	tb.load(chromedp.Click(chromedp.ID("confirm-delete")))
	if got := tb.location(); got != "/ui/" {
		t.Errorf("after deleting the repository: %s", got)
	}
	if f := tb.text(".flash"); !strings.Contains(f, "Deleted repository scratch/tmp") {
		t.Errorf("flash: %q", f)
	}
	if strings.Contains(tb.text("table.repos tbody"), "scratch/tmp") {
		t.Error("the deleted repository is still listed")
	}
	catalog, err := crane.Catalog(srv.Addr, crane.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(catalog, "scratch/tmp") {
		t.Errorf("the API's catalog still has it: %v", catalog)
	}

	t.Log("forged requests: no CSRF token, or another origin, are refused")
	tb.expectError(http.StatusForbidden, "/ui/repo/team/web/-/delete")
	status := eval[int](tb, `fetch("/ui/repo/team/web/-/delete", {method: "POST", headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: "tag=stable"}).then(r => r.status)`)
	if status != http.StatusForbidden {
		t.Errorf("a POST without the CSRF token: %d", status)
	}
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><html lang="en"><head><title>win a prize</title></head><body><h1>prize</h1>
<form id="f" method="post" action="%s/ui/repo/team/web/-/delete"><input type="hidden" name="tag" value="stable"></form>
<script>document.getElementById("f").submit()</script></body></html>`, tb.origin)
	}))
	defer attacker.Close()
	tb.mu.Lock()
	tb.others = append(tb.others, attacker.URL)
	tb.mu.Unlock()
	tb.expectError(http.StatusForbidden, "/ui/repo/team/web/-/delete")
	ctx, cancel := context.WithTimeout(tb.ctx, time.Minute)
	_, err = chromedp.Run(ctx, chromedp.WaitEvent(network.ResponseReceived, func(e network.EventResponseReceived) bool {
		return strings.HasSuffix(e.Response.URL, "/ui/repo/team/web/-/delete")
	}, chromedp.Navigate(attacker.URL)))
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	tb.do(chromedp.WaitVisible(chromedp.CSS("main h1")))
	if h := tb.text("main h1"); h != "403 Forbidden" {
		t.Errorf("the forged form got %q", h)
	}
	tags, err = crane.ListTags(srv.Addr+"/team/web", crane.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(tags, "stable") {
		t.Errorf("a forged request deleted a tag: %v", tags)
	}

	t.Log("a phone-sized window, the Helm chart, the storage page")
	tb.open("/ui/repo/multi/app")
	tb.phone("repository-index")
	tb.open("/ui/repo/charts/hello")
	if k := tb.text(`tr[data-tag="0.1.0"] .kind`); k != "Helm chart" {
		t.Errorf("the chart's kind: %q", k)
	}
	if cmd := eval[string](tb, `document.querySelector('tr[data-tag="0.1.0"] button.copy').dataset.copy`); cmd != "helm install hello oci://"+host+"/charts/hello --version 0.1.0 --plain-http" {
		t.Errorf("the chart's command: %q", cmd)
	}
	tb.shoot("repository-chart")

	t.Log("garbage collection: a dry run first, then the run it previewed")
	tb.open("/ui/storage")
	tb.shoot("storage")
	tb.load(chromedp.Click(chromedp.ID("gc-preview")))
	result := tb.text("#gc-result")
	if !strings.Contains(result, "A run now would delete") || strings.Contains(result, "Nothing") {
		t.Errorf("the dry run shows: %s", result)
	}
	if eval[int](tb, `document.querySelectorAll("#gc-run").length`) != 1 {
		t.Error("no button to run what was previewed")
	}
	tb.shoot("storage-gc-preview")
	tb.load(chromedp.Click(chromedp.ID("gc-run")))
	if f := tb.text(".flash"); !strings.Contains(f, "Garbage collection deleted") {
		t.Errorf("after the run: %q", f)
	}
	if got := tb.location(); got != "/ui/storage#last-gc" {
		t.Errorf("after the run: %s", got)
	}
	tb.shoot("storage-after-gc")
	if _, err := crane.Pull(srv.Addr+"/team/web:stable", crane.Insecure); err != nil {
		t.Errorf("a kept image does not pull after the run: %v", err)
	}
	tb.phone("storage")
}

// TestUIInBrowserLogin: under --auth=all every page sends the browser to the
// login form; a wrong password fails, the right one gets in, logout ends it.
func TestUIInBrowserLogin(t *testing.T) {
	chromiumPath(t)
	home := t.TempDir()
	const user, password = "alice", "alice-password-1"
	addUser(t, home, user, password)
	srv := startServerHome(t, home, "", "--auth", "all")
	if err := crane.Push(platformImage(t, "linux", "amd64", 500, 1), srv.Addr+"/private/app:v1", crane.Insecure,
		crane.WithAuth(&authn.Basic{Username: user, Password: password})); err != nil {
		t.Fatal(err)
	}
	tb := newTab(t, srv)

	tb.open("/ui/repo/private/app")
	if got := tb.location(); got != "/ui/login?next="+url.QueryEscape("/ui/repo/private/app") {
		t.Fatalf("an anonymous visit went to %s", got)
	}
	if strings.Contains(tb.text("body"), "private/app:v1") {
		t.Error("the login page shows content")
	}
	tb.shoot("login-required")

	tb.expectError(http.StatusUnauthorized, "/ui/login")
	if st := tb.load(chromedp.SendKeys(chromedp.ID("username"), user), chromedp.SendKeys(chromedp.ID("password"), "not the password\r")); st != http.StatusUnauthorized {
		t.Errorf("a wrong password: status %d", st)
	}
	if e := tb.text("#login-error"); e != "Invalid user name or password." {
		t.Errorf("a wrong password says %q", e)
	}
	tb.shoot("login-failed")

	tb.load(chromedp.SendKeys(chromedp.ID("password"), password+"\r"))
	if got := tb.location(); got != "/ui/repo/private/app" {
		t.Errorf("after the login: %s", got)
	}
	if !strings.Contains(tb.text("table.tags"), "v1") {
		t.Error("logged in, the tag is not shown")
	}
	cookies, err := chromedp.Call(tb.ctx, network.GetCookies, network.GetCookiesParams{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cookies.Cookies {
		if c.Name == "idpbuilder_session" && (!c.HTTPOnly || c.SameSite != network.CookieSameSiteStrict || c.Path != "/ui/" || c.Session) {
			t.Errorf("session cookie: %+v", c)
		}
	}

	tb.load(chromedp.Click(chromedp.CSS(`form[action="/ui/logout"] button`)))
	if got := tb.location(); !strings.HasPrefix(got, "/ui/login") {
		t.Errorf("after logout: %s", got)
	}
	tb.open("/ui/repo/private/app")
	if got := tb.location(); !strings.HasPrefix(got, "/ui/login") {
		t.Errorf("logged out, a visit went to %s", got)
	}
}
