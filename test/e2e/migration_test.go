//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// distributionVersion is the registry whose data TestMigrationFromDistribution
// serves: the version go.mod embeds.
const distributionVersion = "v3.1.2"

// TestMigrationFromDistribution proves docs/migration.md's claim: a data directory
// written by distribution's own `registry` binary (what registry:2/registry:3 images
// run) is served by `idpbuilder registry serve --data-dir` as it is: every image
// pulls and validates, referrers pushed there are listed, quota usage counts the
// data, and garbage collection works on it.
func TestMigrationFromDistribution(t *testing.T) {
	gobin := t.TempDir()
	install := exec.Command("go", "install", "github.com/distribution/distribution/v3/cmd/registry@"+distributionVersion)
	install.Dir = t.TempDir() // outside our module: the command's own go.mod decides its dependencies
	install.Env = append(os.Environ(), "GOBIN="+gobin, "GOFLAGS=", "CGO_ENABLED=0")
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("building distribution's registry %s: %v\n%s", distributionVersion, err, out)
	}

	data := t.TempDir()
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cfg := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, data, addr)), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dist := exec.CommandContext(ctx, filepath.Join(gobin, "registry"), "serve", cfg)
	dist.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none")
	distLog := &lockedBuffer{}
	dist.Stdout, dist.Stderr = distLog, distLog
	if err := dist.Start(); err != nil {
		t.Fatal(err)
	}
	distDone := make(chan struct{})
	go func() { _ = dist.Wait(); close(distDone) }()
	t.Cleanup(func() { cancel(); <-distDone })
	waitForV2(t, addr, distDone, distLog)

	// What a registry:2 volume typically holds: single images, a multi-arch index,
	// an image overwritten under its tag (the old one untagged), and an SBOM-like
	// artifact whose subject is an image.
	type pushed struct {
		ref   string
		index bool
	}
	var all []pushed
	img, err := random.Image(4096, 3)
	if err != nil {
		t.Fatal(err)
	}
	write(t, addr+"/team/app:v1", img)
	all = append(all, pushed{ref: "team/app:v1"})
	old, err := random.Image(8192, 2)
	if err != nil {
		t.Fatal(err)
	}
	write(t, addr+"/team/app:latest", old)
	oldDigest, _ := old.Digest()
	newer, err := random.Image(2048, 1)
	if err != nil {
		t.Fatal(err)
	}
	write(t, addr+"/team/app:latest", newer)
	all = append(all, pushed{ref: "team/app:latest"})
	idx := multiArchIndex(t)
	ref, _ := name.ParseReference(addr+"/multi/arch:v1", name.Insecure)
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatalf("push index to distribution: %v", err)
	}
	all = append(all, pushed{ref: "multi/arch:v1", index: true})
	subjectDigest, _ := img.Digest()
	subjectSize, _ := img.Size()
	subjectMT, _ := img.MediaType()
	sbomBase, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	sbom := mutate.Subject(mutate.ConfigMediaType(mutate.MediaType(sbomBase, types.OCIManifestSchema1), "application/spdx+json"),
		v1.Descriptor{MediaType: subjectMT, Digest: subjectDigest, Size: subjectSize}).(v1.Image)
	sbomDigest, _ := sbom.Digest()
	write(t, addr+"/team/app@"+sbomDigest.String(), sbom)

	// Stop distribution; serve its directory as it is.
	cancel()
	<-distDone
	srv := startServer(t, data, "--quota", "1GiB")

	for _, p := range all {
		r, err := name.ParseReference(srv.Addr+"/"+p.ref, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if p.index {
			got, err := remote.Index(r)
			if err != nil {
				t.Fatalf("pull %s: %v", p.ref, err)
			}
			if err := validate.Index(got); err != nil {
				t.Errorf("%s does not validate: %v", p.ref, err)
			}
			want, _ := idx.Digest()
			if d, _ := got.Digest(); d != want {
				t.Errorf("%s is %s, pushed %s", p.ref, d, want)
			}
			continue
		}
		got, err := remote.Image(r)
		if err != nil {
			t.Fatalf("pull %s: %v", p.ref, err)
		}
		if err := validate.Image(got); err != nil {
			t.Errorf("%s does not validate: %v", p.ref, err)
		}
	}

	// The referrers index is built from the stored manifests on the first start.
	_, refs := listReferrers(t, srv, "team/app", subjectDigest.String(), "")
	found := false
	for _, d := range refs.Manifests {
		found = found || d.Digest == sbomDigest
	}
	if !found {
		t.Errorf("the artifact pushed to distribution (%s) is not among the referrers of its subject: %+v", sbomDigest, refs.Manifests)
	}

	// Quota usage counts what distribution stored.
	out, errOut, code := runBinary(t, append(os.Environ(), "HOME="+t.TempDir()), "registry", "stats", "--registry-addr", srv.Addr, "-o", "json")
	if code != 0 {
		t.Fatalf("registry stats exited %d: %s", code, errOut)
	}
	var stats struct {
		UniqueBytes int64 `json:"uniqueBytes"`
		Quota       struct {
			UsedBytes int64 `json:"usedBytes"`
		} `json:"quota"`
	}
	if err := json.Unmarshal([]byte(out), &stats); err != nil {
		t.Fatalf("stats: %v\n%s", err, out)
	}
	if stats.Quota.UsedBytes < 4096*3+8192*2+2048 || stats.Quota.UsedBytes != stats.UniqueBytes {
		t.Errorf("quota usage %d (unique bytes %d) does not count the migrated data", stats.Quota.UsedBytes, stats.UniqueBytes)
	}

	// GC on the migrated data: the image overwritten under :latest goes, nothing
	// tagged or referring does.
	res := gcRun(t, srv, "--untagged", "--grace", "0s")
	deleted := map[string]bool{}
	for _, m := range res.Manifests {
		deleted[m.Repository+"@"+m.Digest] = true
	}
	if !deleted["team/app@"+oldDigest.String()] || len(res.Manifests) != 1 {
		t.Errorf("gc deleted manifests %+v, want only the untagged team/app@%s", res.Manifests, oldDigest)
	}
	for _, p := range all {
		r, _ := name.ParseReference(srv.Addr+"/"+p.ref, name.Insecure)
		if _, err := remote.Head(r); err != nil {
			t.Errorf("%s is gone after gc: %v", p.ref, err)
		}
	}
	r, _ := name.ParseReference(srv.Addr+"/team/app@"+sbomDigest.String(), name.Insecure)
	if _, err := remote.Head(r); err != nil {
		t.Errorf("the referrer of a tagged image is gone after gc: %v", err)
	}
}

func write(t *testing.T, ref string, img v1.Image) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}

// waitForV2 waits until a registry answers /v2/ on addr, or its process ends.
func waitForV2(t *testing.T, addr string, done <-chan struct{}, log *lockedBuffer) {
	t.Helper()
	for range 600 {
		select {
		case <-done:
			t.Fatalf("registry exited:\n%s", log)
		default:
		}
		if resp, err := http.Get("http://" + addr + "/v2/"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("registry on %s not answering after 60s:\n%s", addr, log)
}
