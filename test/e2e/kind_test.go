//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/kind/pkg/cluster"
	"sigs.k8s.io/yaml"

	"github.com/idpbuilder/idpbuilder/pkg/registryapi"
)

// defaultNodeImages are what ../shared/kind-node/build-node-image.sh builds:
// containerd 1.6, and containerd 2.4 (CONTAINERD=2) as current kind releases
// ship. On a machine with internet, IDPBUILDER_NODE_IMAGE=kindest/node:...
// (one image) or IDPBUILDER_NODE_IMAGES=a,b (several) works instead.
var defaultNodeImages = []string{"kind-offline/node:v1.34.4", "kind-offline/node:v1.34.4-containerd2"}

// nodeImages are the node images the Kind tests run on.
func nodeImages() []string {
	if v := os.Getenv("IDPBUILDER_NODE_IMAGES"); v != "" {
		var out []string
		for _, img := range strings.Split(v, ",") {
			if img = strings.TrimSpace(img); img != "" {
				out = append(out, img)
			}
		}
		if len(out) > 0 {
			return out
		}
	}
	if v := os.Getenv("IDPBUILDER_NODE_IMAGE"); v != "" {
		return []string{v}
	}
	return defaultNodeImages
}

// onNodeImages runs f as one subtest per node image, named by the image's tag.
// The subtests run one after another: each makes its own cluster.
func onNodeImages(t *testing.T, images []string, f func(t *testing.T, nodeImage string)) {
	for _, img := range images {
		t.Run(img[strings.LastIndex(img, ":")+1:], func(t *testing.T) { f(t, img) })
	}
}

// kindHarness runs idpbuilder against real Kind clusters.
type kindHarness struct {
	t         *testing.T
	home      string // HOME of every command: the state dir lives under it
	name      string
	port      int
	env       []string
	nodeImage string
}

func newKindHarness(t *testing.T, name, nodeImage string) *kindHarness {
	t.Helper()
	requireTool(t, "docker")
	shared := filepath.Join(moduleRoot, "..", "shared", "kind-node")
	if _, err := tryCmd(time.Minute, "docker", "image", "inspect", nodeImage); err != nil {
		script := filepath.Join(shared, "build-node-image.sh")
		if _, serr := os.Stat(script); serr != nil {
			t.Fatalf("node image %s is missing and %s is not there to build it: set IDPBUILDER_NODE_IMAGES", nodeImage, script)
		}
		env := append(os.Environ(), "IMAGE="+nodeImage)
		if strings.HasSuffix(nodeImage, "-containerd2") {
			env = append(env, "CONTAINERD=2")
		}
		t.Logf("building node image %s with %s (about 20 minutes cold)", nodeImage, script)
		cmd := exec.Command("bash", script)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build node image: %v\n%s", err, lastLines(string(out), 40))
		}
	}
	path := os.Getenv("PATH")
	// Where `docker run --privileged` cannot work (no CAP_SYS_RESOURCE here), kind
	// needs the shim as its docker.
	if shim := filepath.Join(shared, "docker-shim"); fileExists(shim) {
		dir := t.TempDir()
		if err := os.Symlink(shim, filepath.Join(dir, "docker")); err != nil {
			t.Fatal(err)
		}
		path = dir + string(os.PathListSeparator) + path
	}
	home := t.TempDir() // the state dir (registry data) lives here across delete/create
	// A per-run suffix: a node Docker could not remove in an earlier run (seen: a
	// `runc init` stuck in uninterruptible sleep) must not block this run's cluster.
	name = fmt.Sprintf("%s-%04x", name, rand.IntN(1<<16))
	h := &kindHarness{
		t: t, home: home, name: name, port: freePort(t), nodeImage: nodeImage,
		env: append(os.Environ(),
			"HOME="+home, "PATH="+path, "IDPBUILDER_NODE_IMAGE="+nodeImage,
		),
	}
	// Every command finds the cluster and its registry through the environment.
	h.env = append(h.env, "IDPBUILDER_NAME="+name, fmt.Sprintf("IDPBUILDER_REGISTRY_PORT=%d", h.port),
		"KUBECONFIG="+filepath.Join(home, "kubeconfig"))
	t.Cleanup(func() {
		if t.Failed() {
			out, _, _ := h.run("registry", "status")
			t.Logf("registry status at failure:\n%s", out)
		}
		h.deletePurge()
		// The registry image this run's binary made (other binaries' images are theirs).
		if out, err := tryCmd(time.Minute, "docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}",
			"--filter", "label=io.idpbuilder.binary-path="+binary, "idpbuilder.local/registry"); err == nil {
			for _, img := range strings.Fields(out) {
				_, _ = tryCmd(time.Minute, "docker", "image", "rm", img) // kept while another test's container uses it
			}
		}
	})
	return h
}

// deletePurge removes the cluster and its registry. Docker sometimes needs more
// than one try to kill a busy node (it reported "did not receive an exit event"
// under load), so a failure is retried before it fails the test.
func (h *kindHarness) deletePurge() {
	h.t.Helper()
	var errOut string
	var code int
	for attempt := 1; attempt <= 4; attempt++ {
		if _, errOut, code = h.run("delete", "--purge"); code == 0 {
			return
		}
		h.t.Logf("delete --purge (attempt %d) exited %d: %s", attempt, code, lastLines(errOut, 5))
		time.Sleep(time.Duration(attempt) * 5 * time.Second)
	}
	h.t.Errorf("delete --purge exited %d after 4 attempts: %s", code, errOut)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// run runs idpbuilder in the harness environment.
func (h *kindHarness) run(args ...string) (string, string, int) {
	h.t.Helper()
	return runBinary(h.t, h.env, args...)
}

func (h *kindHarness) mustRun(args ...string) string {
	h.t.Helper()
	out, errOut, code := h.run(args...)
	if code != 0 {
		h.t.Fatalf("idpbuilder %s exited %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func (h *kindHarness) node() string { return h.name + "-control-plane" }

// kubectl runs kubectl in the control-plane node.
func (h *kindHarness) kubectl(stdin string, args ...string) (string, error) {
	full := append([]string{"exec", "-i", h.node(), "kubectl", "--kubeconfig=/etc/kubernetes/admin.conf"}, args...)
	cmd := exec.Command("docker", full...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, ee.Stderr)
		}
		return string(out), err
	}
	return string(out), nil
}

func (h *kindHarness) mustKubectl(stdin string, args ...string) string {
	h.t.Helper()
	out, err := h.kubectl(stdin, args...)
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

// deploy runs image in a Deployment and waits until its pod runs; it returns the
// pod's imageID.
func (h *kindHarness) deploy(app, image string) string {
	h.t.Helper()
	manifest := map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": app, "namespace": "default"},
		"spec": map[string]any{
			"replicas": 1,
			"selector": map[string]any{"matchLabels": map[string]string{"app": app}},
			"template": map[string]any{
				"metadata": map[string]any{"labels": map[string]string{"app": app}},
				"spec": map[string]any{
					"terminationGracePeriodSeconds": 1,
					"containers": []any{map[string]any{
						"name": app, "image": image, "args": []string{"sleep"}, "imagePullPolicy": "Always",
					}},
				},
			},
		},
	}
	b, _ := json.Marshal(manifest)
	h.mustKubectl(string(b), "apply", "-f", "-")
	if _, err := h.kubectl("", "rollout", "status", "deployment/"+app, "--timeout=180s"); err != nil {
		desc, _ := h.kubectl("", "describe", "pods", "-l", "app="+app)
		h.t.Fatalf("deployment %s (%s) did not become ready: %v\n%s", app, image, err, lastLines(desc, 40))
	}
	var phase, imageID string
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		out := h.mustKubectl("", "get", "pods", "-l", "app="+app, "--field-selector=status.phase=Running",
			"-o", "jsonpath={.items[0].status.phase} {.items[0].status.containerStatuses[0].imageID}")
		if f := strings.Fields(out); len(f) == 2 {
			phase, imageID = f[0], f[1]
			break
		}
		time.Sleep(time.Second)
	}
	if phase != "Running" {
		h.t.Fatalf("no Running pod for %s", app)
	}
	return imageID
}

// TestKindCluster is the product promise end to end on a real Kind cluster, with
// the registry as a container built from our binary: create, docker push, a
// Deployment runs the image; pods push to the in-cluster name; the KEP-1755
// ConfigMap; images survive delete + create; a killed registry is reported and
// restarted; multi-platform push and list. On every node image.
func TestKindCluster(t *testing.T) {
	onNodeImages(t, nodeImages(), func(t *testing.T, nodeImage string) {
		h := newKindHarness(t, "idpb-e2e", nodeImage)
		testKindFlow(t, h, "container", func(t *testing.T) {
			runCmd(t, time.Minute, "docker", "kill", h.name+"-registry")
		}, func(t *testing.T) string { return h.name + "-registry:5000" })
	})
}

// TestKindClusterProcessMode is the same flow with --registry-mode=process: the
// registry is a detached host process listening on loopback and on the kind
// network's gateway, which is how nodes reach it. The registry's mode does not
// touch containerd, so one node image is enough (the first).
func TestKindClusterProcessMode(t *testing.T) {
	onNodeImages(t, nodeImages()[:1], testKindProcessMode)
}

func testKindProcessMode(t *testing.T, nodeImage string) {
	h := newKindHarness(t, "idpb-e2e-proc", nodeImage)
	h.env = append(h.env, "IDPBUILDER_REGISTRY_MODE=process")
	gateway := func(t *testing.T) string {
		gw := strings.TrimSpace(runCmd(t, time.Minute, "docker", "network", "inspect", "--format", "{{range .IPAM.Config}}{{.Gateway}} {{end}}", "kind"))
		return fmt.Sprintf("%s:%d", strings.Fields(gw)[0], h.port)
	}
	testKindFlow(t, h, "process", func(t *testing.T) {
		out := h.mustRun("registry", "status", "-o", "json")
		var st struct{ Instance string }
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatal(err)
		}
		pidFile := strings.TrimPrefix(st.Instance, "pid file ")
		pid := strings.TrimSpace(readFile(t, pidFile))
		runCmd(t, time.Minute, "kill", "-9", pid)
		waitGone(t, pid)
	}, gateway)
}

func readFile(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// waitGone waits until process pid has exited (or is a zombie).
func waitGone(t testing.TB, pid string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		stat, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil || strings.Contains(string(stat), ") Z") {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("process %s still running", pid)
}

// testKindFlow runs the whole flow; kill simulates the registry dying, and
// runtimeHost gives the registry's host:port as nodes' containerd knows it.
func testKindFlow(t *testing.T, h *kindHarness, mode string, kill func(*testing.T), runtimeHost func(*testing.T) string) {
	reg := fmt.Sprintf("localhost:%d", h.port)

	start := time.Now()
	out := h.mustRun("create")
	t.Logf("create took %s", time.Since(start).Round(time.Second))
	for _, want := range []string{"docker push " + reg + "/myapp:v1", "registry.local:5000/IMAGE", "kubectl run myapp --image=" + reg + "/myapp:v1"} {
		if !strings.Contains(out, want) {
			t.Fatalf("create output lacks %q:\n%s", want, out)
		}
	}
	requireSteps(t, out, "Creating cluster", "Starting the registry "+mode, "Wiring 1 node(s)", "Publishing kube-public/local-registry-hosting",
		"Checking that 1 node(s) pull from the registry")

	// What containerd runs with, not what config.toml says: on containerd 2.x a
	// key under the wrong plugin name is in the file and ignored.
	ok := t.Run("containerd reads our config_path", func(t *testing.T) {
		dump := runCmd(t, time.Minute, "docker", "exec", h.node(), "containerd", "config", "dump")
		if !configPathRE.MatchString(dump) {
			t.Fatalf("containerd config dump on %s (%s) lacks config_path = %s:\n%s", h.node(), h.nodeImage, wantConfigPath, registrySection(dump))
		}
	})

	ok = ok && t.Run("configmap", func(t *testing.T) {
		raw := h.mustKubectl("", "-n", "kube-public", "get", "configmap", "local-registry-hosting", "-o", `jsonpath={.data.localRegistryHosting\.v1}`)
		var doc map[string]string
		if err := yaml.UnmarshalStrict([]byte(raw), &doc); err != nil {
			t.Fatalf("localRegistryHosting.v1 is not YAML: %v\n%s", err, raw)
		}
		want := map[string]string{
			"host":                     reg,
			"hostFromContainerRuntime": runtimeHost(t),
			"hostFromClusterNetwork":   "registry.local:5000",
			"help":                     "https://github.com/idpbuilder/idpbuilder/blob/main/docs/kind.md",
		}
		for k, v := range want {
			if doc[k] != v {
				t.Errorf("%s = %q, want %q", k, doc[k], v)
			}
		}
		if len(doc) != len(want) {
			t.Errorf("unexpected fields: %v", doc)
		}
	})

	var pushed string
	ok = ok && t.Run("docker push, deployment runs it", func(t *testing.T) {
		importHello(t, "idpbuilder-e2e/kindapp:v1")
		ref := reg + "/e2e/kindapp:v1"
		pushed = dockerPush(t, "idpbuilder-e2e/kindapp:v1", ref)
		imageID := h.deploy("kindapp", ref)
		if !strings.HasSuffix(imageID, "@"+pushed) {
			t.Fatalf("pod imageID %s, pushed %s", imageID, pushed)
		}
	})

	ok = ok && t.Run("sample-app example deploys and answers", func(t *testing.T) {
		// The example's own script, as a user runs it against this cluster: build
		// FROM scratch, push, deploy by digest, port-forward, curl.
		cmd := exec.Command("bash", filepath.Join(moduleRoot, "examples", "sample-app", "run.sh"), "--deploy")
		cmd.Env = append(append([]string{}, h.env...), "REGISTRY="+reg, "TAG=kind-e2e")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "sample-app answered: hello from sample-app on Kind") {
			desc, _ := h.kubectl("", "describe", "pods", "-l", "app=sample-app")
			t.Fatalf("examples/sample-app/run.sh --deploy: %v\n%s\n%s", err, out, lastLines(desc, 40))
		}
		h.mustKubectl("", "delete", "deployment/sample-app", "service/sample-app")
	})

	ok = ok && t.Run("pod pushes to the in-cluster name, another pod runs it", func(t *testing.T) {
		job := map[string]any{
			"apiVersion": "batch/v1", "kind": "Job",
			"metadata": map[string]any{"name": "pusher", "namespace": "default"},
			"spec": map[string]any{
				"backoffLimit": 2,
				"template": map[string]any{"spec": map[string]any{
					"restartPolicy": "Never",
					"containers": []any{map[string]any{
						"name": "pusher", "image": reg + "/e2e/kindapp:v1",
						"args": []string{"push", "registry.local:5000/e2e/built-in-cluster:v1"},
					}},
				}},
			},
		}
		b, _ := json.Marshal(job)
		h.mustKubectl(string(b), "apply", "-f", "-")
		if _, err := h.kubectl("", "wait", "--for=condition=complete", "job/pusher", "--timeout=240s"); err != nil {
			logs, _ := h.kubectl("", "logs", "job/pusher")
			t.Fatalf("pusher job: %v\nlogs:\n%s", err, logs)
		}
		digest := strings.TrimSpace(h.mustKubectl("", "logs", "job/pusher"))
		if !strings.HasPrefix(digest, "sha256:") {
			t.Fatalf("pusher printed %q", digest)
		}
		// The registry has it under the name the pod used.
		if got, err := crane.Digest(reg+"/e2e/built-in-cluster:v1", crane.Insecure); err != nil || got != digest {
			t.Fatalf("registry has %s (%v), pod pushed %s", got, err, digest)
		}
		imageID := h.deploy("built", "registry.local:5000/e2e/built-in-cluster:v1")
		if !strings.HasSuffix(imageID, "@"+digest) {
			t.Fatalf("pod imageID %s, want digest %s", imageID, digest)
		}
	})

	ok = ok && t.Run("create again reconciles", func(t *testing.T) {
		h.mustRun("create")
		out := h.mustRun("registry", "status", "-o", "json")
		var st struct {
			State  string
			Health string
			Tags   int
			Wiring struct{ LocalRegistryHosting string }
		}
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatal(err)
		}
		if st.State != "running" || st.Health != "ok" || st.Tags < 2 || st.Wiring.LocalRegistryHosting != "ok" {
			t.Fatalf("status: %s", out)
		}
	})

	ok = ok && t.Run("a broken wiring fails the pull check, naming the node; create repairs it", func(t *testing.T) {
		testBrokenWiring(t, h, reg)
	})

	ok = ok && t.Run("killed: status reports it, start restores it with its data", func(t *testing.T) {
		kill(t)
		out, _, code := h.run("registry", "status", "-o", "json")
		if code != 1 || !strings.Contains(out, `"state": "exited"`) || !strings.Contains(out, `"mode": "`+mode+`"`) {
			t.Fatalf("status after kill: exit %d\n%s", code, out)
		}
		h.mustRun("registry", "start")
		if _, _, code := h.run("registry", "status"); code != 0 {
			t.Fatalf("status after start: exit %d", code)
		}
		if got, err := crane.Digest(reg+"/e2e/kindapp:v1", crane.Insecure); err != nil || got != pushed {
			t.Fatalf("after restart: %s, %v; want %s", got, err, pushed)
		}
	})

	ok = ok && t.Run("delete and create keep the images", func(t *testing.T) {
		h.mustRun("delete")
		h.mustRun("create")
		imageID := h.deploy("again", reg+"/e2e/kindapp:v1")
		if !strings.HasSuffix(imageID, "@"+pushed) {
			t.Fatalf("after recreate the pod runs %s, want %s", imageID, pushed)
		}
	})

	ok = ok && t.Run("registry push of a two-platform layout, list shows both", func(t *testing.T) {
		dir, _ := multiArchLayout(t)
		h.mustRun("registry", "push", dir, "multi/arch:v1")
		out := h.mustRun("registry", "list", "multi/arch")
		if !strings.Contains(out, "linux/amd64,linux/arm64") {
			t.Fatalf("list:\n%s", out)
		}
	})

	_ = ok && t.Run("registry gc frees space, a pod still pulls the kept image", func(t *testing.T) {
		testKindGC(t, h, reg)
	})
}

// testKindGC pushes two images (the app plus a layer of their own), deletes
// one, collects with `registry gc`, and runs the other in a pod: its own
// layer is not on the node yet, so the pod pulls it from the collected
// registry.
func testKindGC(t *testing.T, h *kindHarness, reg string) {
	base, err := remote.Image(mustRef(t, reg+"/e2e/kindapp:v1"))
	if err != nil {
		t.Fatal(err)
	}
	variant := func(size int64) v1.Image {
		l, err := random.Layer(size, types.DockerLayer)
		if err != nil {
			t.Fatal(err)
		}
		img, err := mutate.AppendLayers(base, l)
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	keep, drop := variant(64<<10), variant(1<<20)
	for ref, img := range map[string]v1.Image{"e2e/gc-keep:v1": keep, "e2e/gc-drop:v1": drop} {
		if err := remote.Write(mustRef(t, reg+"/"+ref), img); err != nil {
			t.Fatal(err)
		}
	}
	dropDigest, _ := drop.Digest()
	keepDigest, _ := keep.Digest()
	if err := deleteByDigest(reg, "e2e/gc-drop", dropDigest); err != nil {
		t.Fatal(err)
	}
	storage := func() int64 {
		var st struct{ StorageBytes int64 }
		if err := json.Unmarshal([]byte(h.mustRun("registry", "status", "-o", "json")), &st); err != nil {
			t.Fatal(err)
		}
		return st.StorageBytes
	}
	before := storage()
	out := h.mustRun("registry", "gc", "--grace", "0s", "-o", "json")
	var res registryapi.GCResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("registry gc output: %v\n%s", err, out)
	}
	dropBlobs, err := imageBlobs(drop)
	if err != nil {
		t.Fatal(err)
	}
	deleted := map[string]int64{}
	var content int64
	for _, b := range res.Blobs {
		deleted[b.Digest] = b.Size
		content += b.Size
	}
	// The dropped image's own config and layer go; the layers it shares
	// with the kept image stay.
	for _, d := range []v1.Hash{dropBlobs[0], dropBlobs[len(dropBlobs)-1], dropDigest} {
		if _, ok := deleted[d.String()]; !ok {
			t.Errorf("blob %s of the deleted image was not collected:\n%s", d, out)
		}
	}
	for _, d := range dropBlobs[1 : len(dropBlobs)-1] {
		if _, ok := deleted[d.String()]; ok {
			t.Errorf("shared layer %s was collected", d)
		}
	}
	if after := storage(); before-after < content || content < 1<<20 {
		t.Fatalf("storage %d -> %d bytes, the run deleted %d bytes of blobs", before, after, content)
	}
	t.Logf("registry gc freed %d bytes (%d blobs) in %d ms", res.BytesFreed, len(res.Blobs), res.DurationMS)
	if imageID := h.deploy("gckept", reg+"/e2e/gc-keep:v1"); !strings.HasSuffix(imageID, "@"+keepDigest.String()) {
		t.Fatalf("pod imageID %s, want %s", imageID, keepDigest)
	}
}

// stepLineRE is one step of create's output: plain lines (stdout is a pipe
// here), each ending with ✓ or ✗ and the time the step took.
var stepLineRE = regexp.MustCompile(`^ ([✓✗]) (.+) \((\d+\.\ds|\d+m\d+s)\)$`)

// requireSteps checks that out shows the steps starting with want, in that
// order, each with ✓, and no step failed.
func requireSteps(t *testing.T, out string, want ...string) {
	t.Helper()
	var got []string
	for _, l := range strings.Split(out, "\n") {
		if m := stepLineRE.FindStringSubmatch(l); m != nil {
			if m[1] != "✓" {
				t.Fatalf("step failed: %q\n%s", l, out)
			}
			got = append(got, m[2])
			t.Log(l)
		}
	}
	i := 0
	for _, g := range got {
		if i < len(want) && strings.HasPrefix(g, want[i]) {
			i++
		}
	}
	if i != len(want) {
		t.Fatalf("create's steps %q lack %q (in this order: %q)", got, want[i], want)
	}
}

// testBrokenWiring removes a node's hosts.toml for the registry's host name:
// the pull check fails with ✗ and says which node and what to run; create
// repairs the wiring and the check passes again. Status finds the registry on
// the port create was given without being told it again.
func testBrokenWiring(t *testing.T, h *kindHarness, reg string) {
	runCmd(t, time.Minute, "docker", "exec", h.node(), "rm", "/etc/containerd/certs.d/"+reg+"/hosts.toml")
	_, errOut, code := h.run("registry", "status", "--pull-check")
	if code != 1 || !strings.Contains(errOut, " ✗ Checking that 1 node(s) pull from the registry (") ||
		!strings.Contains(errOut, "node "+h.node()+" cannot pull "+reg+"/idpbuilder/pull-check:") ||
		!strings.Contains(errOut, "idpbuilder create --name "+h.name) {
		t.Fatalf("pull check on a broken wiring: exit %d\n%s", code, errOut)
	}
	h.mustRun("create")
	var env []string
	for _, e := range h.env {
		if !strings.HasPrefix(e, "IDPBUILDER_REGISTRY_PORT=") {
			env = append(env, e)
		}
	}
	out, errOut, code := runBinary(t, env, "registry", "status", "--pull-check")
	if code != 0 || !strings.Contains(out, "Address:") || !strings.Contains(out, reg) ||
		!strings.Contains(errOut, " ✓ Checking that 1 node(s) pull from the registry (") {
		t.Fatalf("status --pull-check after create, without the port: exit %d\n%s\n%s", code, out, errOut)
	}
}

// wantConfigPath is the search path idpbuilder's containerd patch sets:
// containerd 2.x prints it with single quotes, 1.6 with double quotes.
const wantConfigPath = "/etc/containerd/certs.d:/etc/docker/certs.d"

var configPathRE = regexp.MustCompile(`(?m)^\s*config_path = ['"]` + regexp.QuoteMeta(wantConfigPath) + `['"]\s*$`)

// registrySection is the part of a containerd config dump about registries, for messages.
func registrySection(dump string) string {
	var out []string
	for _, l := range strings.Split(dump, "\n") {
		if strings.Contains(l, "registry") || strings.Contains(l, "config_path") || strings.HasPrefix(strings.TrimSpace(l), "version") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// containerdReadsCertsDirByDefault tells whether the node's containerd searches
// /etc/containerd/certs.d without config_path (containerd >= 2.2).
func containerdReadsCertsDirByDefault(t *testing.T, node string) bool {
	out := runCmd(t, time.Minute, "docker", "exec", node, "containerd", "--version")
	f := strings.Fields(out) // containerd github.com/containerd/containerd/v2 v2.4.2 <commit>
	if len(f) < 3 {
		t.Fatalf("containerd --version: %q", out)
	}
	var major, minor int
	if _, err := fmt.Sscanf(strings.TrimPrefix(f[2], "v"), "%d.%d", &major, &minor); err != nil {
		t.Fatalf("containerd version %q: %v", f[2], err)
	}
	return major > 2 || major == 2 && minor >= 2
}

// plainKindCluster creates h's cluster with the kind library, as a user would
// with `kind create cluster`, with the given containerd patches.
func plainKindCluster(t *testing.T, h *kindHarness, patches ...string) {
	t.Helper()
	for _, e := range h.env {
		if strings.HasPrefix(e, "PATH=") {
			t.Setenv("PATH", strings.TrimPrefix(e, "PATH=")) // the kind library needs the shim too
		}
	}
	cfg := &v1alpha4.Cluster{ContainerdConfigPatches: patches}
	if err := cluster.NewProvider().Create(h.name, cluster.CreateWithNodeImage(h.nodeImage), cluster.CreateWithV1Alpha4Config(cfg),
		cluster.CreateWithWaitForReady(2*time.Minute), cluster.CreateWithKubeconfigPath(filepath.Join(t.TempDir(), "kubeconfig"))); err != nil {
		t.Fatalf("plain kind create: %v", err)
	}
}

// requireRefused checks that create refuses a cluster it cannot wire, says why
// and what to do, and starts no registry for it.
func requireRefused(t *testing.T, h *kindHarness, why string) {
	t.Helper()
	_, errOut, code := h.run("create")
	if code != 1 || !strings.Contains(errOut, "cannot pull from the registry") || !strings.Contains(errOut, why) ||
		!strings.Contains(errOut, "idpbuilder create --name "+h.name+" --recreate") {
		t.Fatalf("create on a cluster it cannot wire: exit %d\n%s", code, errOut)
	}
	if out, _ := tryCmd(time.Minute, "docker", "ps", "-a", "--filter", "name="+h.name+"-registry", "--format", "{{.Names}}"); strings.TrimSpace(out) != "" {
		t.Fatalf("a registry was started for a cluster it cannot wire: %s", out)
	}
}

// TestKindForeignCluster: a cluster made without idpbuilder is wired when its
// containerd reads /etc/containerd/certs.d anyway (containerd >= 2.2 does by
// default), and refused with what to do, not half-wired, when it does not
// (containerd 1.6 without config_path; a config_path elsewhere). On every node image.
func TestKindForeignCluster(t *testing.T) {
	onNodeImages(t, nodeImages(), func(t *testing.T, nodeImage string) {
		h := newKindHarness(t, "idpb-e2e-foreign", nodeImage)
		plainKindCluster(t, h)
		if !containerdReadsCertsDirByDefault(t, h.node()) {
			requireRefused(t, h, "has no registry config_path, so it reads no hosts.toml")
			return
		}
		t.Run("plain kind cluster on containerd >= 2.2 is wired and pulls", func(t *testing.T) {
			h.mustRun("create")
			reg := fmt.Sprintf("localhost:%d", h.port)
			importHello(t, "idpbuilder-e2e/foreignapp:v1")
			pushed := dockerPush(t, "idpbuilder-e2e/foreignapp:v1", reg+"/e2e/foreignapp:v1")
			if id := h.deploy("foreignapp", reg+"/e2e/foreignapp:v1"); !strings.HasSuffix(id, "@"+pushed) {
				t.Fatalf("pod imageID %s, pushed %s", id, pushed)
			}
		})
		t.Run("config_path without certs.d is refused", func(t *testing.T) {
			h.deletePurge()
			other := "  config_path = \"/etc/containerd/other.d\"\n"
			plainKindCluster(t, h, "[plugins.\"io.containerd.grpc.v1.cri\".registry]\n"+other,
				"[plugins.\"io.containerd.cri.v1.images\".registry]\n"+other)
			requireRefused(t, h, "containerd reads hosts.toml from /etc/containerd/other.d, not from /etc/containerd/certs.d")
		})
	})
}
