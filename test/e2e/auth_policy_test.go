//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

const (
	policyUser     = "alice"
	policyPassword = "alice-password-1"
)

// policyRun is one registry under one --auth policy, and what that policy
// promises: who may pull and push without logging in.
type policyRun struct {
	policy    string
	srv       *server
	host      string // localhost:port, as Docker users name it
	anonPull  bool
	anonPush  bool
	logins    bool // whether a wrong password is refused (under none nothing is checked)
	helloRepo string
	hello     string // digest of the image seeded into helloRepo:v1
}

// TestClientsUnderEveryAuthPolicy drives the real clients (Docker, containerd's
// ctr, go-containerregistry, oras, regctl, skopeo) against `registry serve`
// under --auth none, push and all. Under push, anonymous clients pull (Docker
// too, through an anonymous token) while pushes need a login; under all,
// anonymous pulls are refused; wrong passwords fail wherever users exist.
func TestClientsUnderEveryAuthPolicy(t *testing.T) {
	for _, tool := range []string{"docker", "ctr", "oras", "regctl", "skopeo"} {
		requireTool(t, tool)
	}
	if _, err := tryCmd(30*time.Second, "docker", "info"); err != nil {
		t.Fatalf("Docker engine not reachable (hack/test-all.sh starts dockerd): %v", err)
	}
	for _, policy := range []string{"none", "push", "all"} {
		t.Run(policy, func(t *testing.T) {
			home := t.TempDir()
			addUser(t, home, policyUser, policyPassword)
			srv := startServerHome(t, home, "", "--auth", policy)
			p := &policyRun{policy: policy, srv: srv, host: srv.Localhost(),
				anonPull: policy != "all", anonPush: policy == "none", logins: policy != "none",
				helloRepo: "seed/hello"}
			p.hello = p.seedHello(t)
			t.Run("docker", p.docker)
			t.Run("containerd", p.containerd)
			t.Run("ggcr", p.ggcr)
			t.Run("oras", p.oras)
			t.Run("regctl", p.regctl)
			t.Run("skopeo", p.skopeo)
			// Tokens were issued both ways: GET with Basic (Docker, ggcr, oras,
			// regctl, skopeo) and the password grant (containerd).
			for _, method := range []string{"GET", "POST"} {
				if want := "user=" + policyUser + " method=" + method + " path=/auth/token route=token status=200"; p.logins && !strings.Contains(srv.stderr.String(), want) {
					t.Errorf("the access log shows no %q", want)
				}
			}
		})
	}
}

// expect fails the test unless err matches whether the policy allows the step.
func (p *policyRun) expect(t *testing.T, allowed bool, what string, out string, err error) {
	t.Helper()
	switch {
	case allowed && err != nil:
		t.Fatalf("--auth %s: %s failed: %v\n%s", p.policy, what, err, out)
	case !allowed && err == nil:
		t.Fatalf("--auth %s: %s succeeded; it must be refused\n%s", p.policy, what, out)
	}
}

// seedHello pushes the e2eapp image (linux, this machine's architecture) with
// alice's credentials, for the clients that only pull.
func (p *policyRun) seedHello(t *testing.T) string {
	t.Helper()
	tarPath, err := helloTarball()
	if err != nil {
		t.Fatal(err)
	}
	layer, err := tarball.LayerFromFile(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", runtime.GOARCH
	cfg.Config.Entrypoint = []string{"/e2eapp"}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(p.srv.Addr+"/"+p.helloRepo+":v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: policyUser, Password: policyPassword})); err != nil {
		t.Fatalf("seed push: %v", err)
	}
	d, _ := img.Digest()
	return d.String()
}

// docker: a wrong password fails `docker login`, the right one pushes; after
// `docker logout` and `docker rmi`, an anonymous pull brings back the same
// digest where the policy allows it, and is refused under all until a login.
func (p *policyRun) docker(t *testing.T) {
	env := append(os.Environ(), "DOCKER_CONFIG="+t.TempDir())
	docker := func(stdin string, args ...string) (string, error) { return runEnv(env, stdin, "docker", args...) }
	local := "idpbuilder-e2e/authpolicy-" + p.policy + ":v1"
	ref := p.host + "/docker/hello:v1"
	importHello(t, local)
	runCmd(t, time.Minute, "docker", "tag", local, ref)
	t.Cleanup(func() { _, _ = tryCmd(time.Minute, "docker", "rmi", "-f", ref) })

	out, err := docker("", "push", ref)
	p.expect(t, p.anonPush, "anonymous docker push", out, err)
	// Docker shows why: an anonymous token only pulls, or no token at all.
	if want := map[string]string{"push": "anonymous clients may only pull: log in to push",
		"all": "this registry needs a login for every request"}[p.policy]; !strings.Contains(out, want) {
		t.Fatalf("anonymous docker push under %s does not say %q:\n%s", p.policy, want, out)
	}
	if p.logins {
		out, err = docker("wrong-password\n", "login", p.host, "-u", policyUser, "--password-stdin")
		p.expect(t, false, "docker login with a wrong password", out, err)
	}
	if out, err = docker(policyPassword+"\n", "login", p.host, "-u", policyUser, "--password-stdin"); err != nil || !strings.Contains(out, "Login Succeeded") {
		t.Fatalf("docker login: %v\n%s", err, out)
	}
	out, err = docker("", "push", ref)
	if err != nil {
		t.Fatalf("docker push after login: %v\n%s", err, out)
	}
	m := pushDigestRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no digest in docker push output:\n%s", out)
	}
	pushed := m[1]

	if out, err = docker("", "logout", p.host); err != nil {
		t.Fatalf("docker logout: %v\n%s", err, out)
	}
	runCmd(t, time.Minute, "docker", "rmi", "-f", ref, local)
	out, err = docker("", "pull", ref)
	p.expect(t, p.anonPull, "anonymous docker pull", out, err)
	if !p.anonPull {
		if out, err = docker(policyPassword+"\n", "login", p.host, "-u", policyUser, "--password-stdin"); err != nil {
			t.Fatalf("docker login: %v\n%s", err, out)
		}
		if out, err = docker("", "pull", ref); err != nil {
			t.Fatalf("docker pull after login: %v\n%s", err, out)
		}
	}
	if m := pullDigestRE.FindStringSubmatch(out); m == nil || m[1] != pushed {
		t.Fatalf("docker pull digest %v, pushed %s\n%s", m, pushed, out)
	}
}

// containerd: ctr pulls with --user under every policy and anonymously where
// the policy allows, and pushes with --user (containerd fetches its token with
// an OAuth2 password grant).
func (p *policyRun) containerd(t *testing.T) {
	sock := containerdSocket(t)
	ns := fmt.Sprintf("idpbuilder-e2e-auth-%s-%d", p.policy, time.Now().UnixNano())
	ctr := func(args ...string) (string, error) {
		return tryCmd(5*time.Minute, "ctr", append([]string{"--address", sock, "--namespace", ns}, args...)...)
	}
	src := p.host + "/" + p.helloRepo + ":v1"
	dst := p.host + "/ctr/hello:copy"
	t.Cleanup(func() {
		for _, ref := range []string{src, dst} {
			_, _ = ctr("images", "rm", "--sync", ref)
		}
		_, _ = tryCmd(time.Minute, "ctr", "--address", sock, "namespaces", "rm", ns)
	})
	user := policyUser + ":" + policyPassword

	out, err := ctr("images", "pull", "--plain-http", src)
	p.expect(t, p.anonPull, "anonymous ctr pull", out, err)
	if !p.anonPull {
		if out, err = ctr("images", "pull", "--plain-http", "--user", user, src); err != nil {
			t.Fatalf("ctr pull --user: %v\n%s", err, out)
		}
	}
	if list, _ := ctr("images", "ls", "name=="+src); !strings.Contains(list, p.hello) {
		t.Fatalf("ctr images ls does not show %s:\n%s", p.hello, list)
	}
	_, _ = ctr("images", "rm", "--sync", src)
	if out, err = ctr("images", "pull", "--plain-http", "--user", user, src); err != nil {
		t.Fatalf("ctr pull --user: %v\n%s", err, out)
	}
	if out, err = ctr("images", "pull", "--plain-http", "--user", policyUser+":wrong-password", src); p.logins && !p.anonPull && err == nil {
		t.Fatalf("ctr pull with a wrong password succeeded:\n%s", out)
	}

	if out, err = ctr("images", "tag", src, dst); err != nil {
		t.Fatalf("ctr tag: %v\n%s", err, out)
	}
	out, err = ctr("images", "push", "--plain-http", dst)
	p.expect(t, p.anonPush, "anonymous ctr push", out, err)
	if out, err = ctr("images", "push", "--plain-http", "--user", user, dst); err != nil {
		t.Fatalf("ctr push --user: %v\n%s", err, out)
	}
	if got := p.srv.manifestDigestAs(t, "ctr/hello", "copy"); got != p.hello {
		t.Fatalf("ctr pushed %s, want %s", got, p.hello)
	}
}

// ggcr: go-containerregistry as a library, with authn: push with a user,
// anonymous pull where allowed, a cross-repository mount and a delete.
func (p *policyRun) ggcr(t *testing.T) {
	rec := &recorder{}
	alice := remote.WithAuth(&authn.Basic{Username: policyUser, Password: policyPassword})
	tr := remote.WithTransport(rec)
	ref := func(s string) name.Reference {
		r, err := name.ParseReference(p.srv.Addr+"/"+s, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	img, err := random.Image(2048, 2)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()

	err = remote.Write(ref("ggcr/app:v1"), img, tr)
	p.expect(t, p.anonPush, "anonymous ggcr push", "", err)
	if err := remote.Write(ref("ggcr/app:v1"), img, tr, alice); err != nil {
		t.Fatalf("ggcr push as %s: %v", policyUser, err)
	}
	got, err := remote.Image(ref("ggcr/app:v1"), tr)
	if p.expect(t, p.anonPull, "anonymous ggcr pull", "", err); err == nil {
		if d, _ := got.Digest(); d != want {
			t.Fatalf("anonymous pull got %s, want %s", d, want)
		}
	} else {
		var terr *transport.Error
		if !errors.As(err, &terr) || terr.StatusCode != http.StatusUnauthorized {
			t.Fatalf("anonymous pull under all: want 401, got %v", err)
		}
	}
	_, err = remote.Image(ref("ggcr/app:v1"), tr, remote.WithAuth(&authn.Basic{Username: policyUser, Password: "wrong-password"}))
	p.expect(t, !p.logins, "ggcr pull with a wrong password", "", err)

	// Copy to another repository: the layers are mounted from ggcr/app.
	src, err := remote.Image(ref("ggcr/app:v1"), tr, alice)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref("ggcr/copy:v1"), src, tr, alice); err != nil {
		t.Fatalf("ggcr copy: %v", err)
	}
	if mounts := rec.matching("POST /v2/ggcr/copy/blobs/uploads/?", "from=ggcr%2Fapp", "201"); len(mounts) == 0 {
		t.Fatalf("no cross-repository mount; requests:\n%s", strings.Join(rec.matching("/v2/ggcr/copy/"), "\n"))
	}
	err = remote.Delete(ref("ggcr/copy@"+want.String()), tr)
	p.expect(t, p.anonPush, "anonymous ggcr delete", "", err)
	if err == nil {
		return
	}
	if err := remote.Delete(ref("ggcr/copy@"+want.String()), tr, alice); err != nil {
		t.Fatalf("ggcr delete as %s: %v", policyUser, err)
	}
	var terr *transport.Error
	if _, err := remote.Head(ref("ggcr/copy:v1"), tr, alice); !errors.As(err, &terr) || terr.StatusCode != http.StatusNotFound {
		t.Fatalf("after delete: want 404, got %v", err)
	}
}

// oras: `oras login` refuses a wrong password and pushes after the right
// one; after `oras logout` an anonymous pull works where allowed.
func (p *policyRun) oras(t *testing.T) {
	env := toolEnv(t)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "notes.txt"), []byte("notes under "+p.policy+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ref := p.host + "/oras/notes:v1"
	oras := func(dir, stdin string, args ...string) (string, error) {
		return runIn(env, dir, stdin, "oras", args...)
	}
	out, err := oras(src, "", "push", "--plain-http", ref, "notes.txt:text/plain")
	p.expect(t, p.anonPush, "anonymous oras push", out, err)
	if p.logins {
		out, err = oras("", "wrong-password\n", "login", "--plain-http", "-u", policyUser, "--password-stdin", p.host)
		p.expect(t, false, "oras login with a wrong password", out, err)
	}
	if out, err = oras("", policyPassword+"\n", "login", "--plain-http", "-u", policyUser, "--password-stdin", p.host); err != nil {
		t.Fatalf("oras login: %v\n%s", err, out)
	}
	if out, err = oras(src, "", "push", "--plain-http", ref, "notes.txt:text/plain"); err != nil {
		t.Fatalf("oras push after login: %v\n%s", err, out)
	}
	if out, err = oras("", "", "logout", p.host); err != nil {
		t.Fatalf("oras logout: %v\n%s", err, out)
	}
	dst := t.TempDir()
	out, err = oras(dst, "", "pull", "--plain-http", ref)
	p.expect(t, p.anonPull, "anonymous oras pull", out, err)
	if !p.anonPull {
		if out, err = oras(dst, "", "pull", "--plain-http", "-u", policyUser, "-p", policyPassword, ref); err != nil {
			t.Fatalf("oras pull with credentials: %v\n%s", err, out)
		}
	}
	if got, err := os.ReadFile(filepath.Join(dst, "notes.txt")); err != nil || string(got) != "notes under "+p.policy+"\n" {
		t.Fatalf("pulled %q, %v", got, err)
	}
}

// regctl: anonymous reads where allowed; after `regctl registry login`, a
// copy, a tag listing and a tag delete (delete scope).
func (p *policyRun) regctl(t *testing.T) {
	env := toolEnv(t)
	regctl := func(stdin string, args ...string) (string, error) { return runIn(env, "", stdin, "regctl", args...) }
	// registry set pings the registry anonymously: under all that is refused,
	// and the setting is kept all the same.
	if out, err := regctl("", "registry", "set", "--tls", "disabled", p.host); err != nil &&
		(p.anonPull || !strings.Contains(out, "unauthorized") || !strings.Contains(out, "configuration still updated")) {
		t.Fatalf("regctl registry set: %v\n%s", err, out)
	}
	src := p.host + "/" + p.helloRepo + ":v1"
	dst := p.host + "/regctl/hello:copied"
	out, err := regctl("", "image", "digest", src)
	p.expect(t, p.anonPull, "anonymous regctl image digest", out, err)
	if err == nil && strings.TrimSpace(out) != p.hello {
		t.Fatalf("regctl digest %q, want %s", out, p.hello)
	}
	out, err = regctl("", "image", "copy", src, dst)
	p.expect(t, p.anonPush, "anonymous regctl copy", out, err)
	if p.logins {
		out, err = regctl("wrong-password", "registry", "login", p.host, "-u", policyUser, "--pass-stdin")
		p.expect(t, false, "regctl registry login with a wrong password", out, err)
	}
	if out, err = regctl(policyPassword, "registry", "login", p.host, "-u", policyUser, "--pass-stdin"); err != nil {
		t.Fatalf("regctl registry login: %v\n%s", err, out)
	}
	if out, err = regctl("", "image", "copy", src, dst); err != nil {
		t.Fatalf("regctl copy after login: %v\n%s", err, out)
	}
	if out, err = regctl("", "image", "digest", dst); err != nil || strings.TrimSpace(out) != p.hello {
		t.Fatalf("copied digest %q (%v), want %s", out, err, p.hello)
	}
	if out, err = regctl("", "tag", "ls", p.host+"/regctl/hello"); err != nil || strings.TrimSpace(out) != "copied" {
		t.Fatalf("regctl tag ls: %q %v", out, err)
	}
	if out, err = regctl("", "tag", "delete", dst); err != nil {
		t.Fatalf("regctl tag delete: %v\n%s", err, out)
	}
	if out, err = regctl("", "tag", "ls", p.host+"/regctl/hello"); err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("tag still listed after delete: %q %v", out, err)
	}
}

// skopeo: inspect anonymously where allowed, with --creds everywhere, a wrong
// password refused; copy with --dest-creds.
func (p *policyRun) skopeo(t *testing.T) {
	env := append(toolEnv(t), "REGISTRY_AUTH_FILE="+filepath.Join(t.TempDir(), "auth.json"))
	skopeo := func(args ...string) (string, error) {
		return runIn(env, "", "", "skopeo", append([]string{"--insecure-policy"}, args...)...)
	}
	src := "docker://" + p.host + "/" + p.helloRepo + ":v1"
	dst := "docker://" + p.host + "/skopeo/hello:v1"
	creds := policyUser + ":" + policyPassword
	out, err := skopeo("inspect", "--raw", "--tls-verify=false", src)
	p.expect(t, p.anonPull, "anonymous skopeo inspect", out, err)
	if out, err = skopeo("inspect", "--tls-verify=false", "--creds", creds, src); err != nil || !strings.Contains(out, p.hello) {
		t.Fatalf("skopeo inspect --creds: %v\n%s", err, out)
	}
	out, err = skopeo("inspect", "--raw", "--tls-verify=false", "--creds", policyUser+":wrong-password", src)
	p.expect(t, !p.logins, "skopeo inspect with a wrong password", out, err)

	out, err = skopeo("copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--src-creds", creds, src, dst)
	p.expect(t, p.anonPush, "anonymous skopeo copy", out, err)
	if out, err = skopeo("copy", "--preserve-digests", "--src-tls-verify=false", "--dest-tls-verify=false",
		"--src-creds", creds, "--dest-creds", creds, src, dst); err != nil {
		t.Fatalf("skopeo copy with credentials: %v\n%s", err, out)
	}
	if got := p.srv.manifestDigestAs(t, "skopeo/hello", "v1"); got != p.hello {
		t.Fatalf("skopeo copied %s, want %s", got, p.hello)
	}
}

// runIn runs a command with env, working directory and stdin, for at most
// five minutes; it returns combined output.
func runIn(env []string, dir, stdin, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env, cmd.Dir, cmd.Stdin = env, dir, strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return string(out), nil
}

// manifestDigestAs is manifestDigest with alice's credentials, which every
// policy accepts.
func (s *server) manifestDigestAs(t testing.TB, repo, ref string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodHead, "http://"+s.Addr+"/v2/"+repo+"/manifests/"+ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(policyUser, policyPassword)
	req.Header.Set("Accept", strings.Join([]string{
		"application/vnd.oci.image.index.v1+json",
		"application/vnd.oci.image.manifest.v1+json",
		"application/vnd.docker.distribution.manifest.list.v2+json",
		"application/vnd.docker.distribution.manifest.v2+json",
	}, ", "))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HEAD %s:%s: %s", repo, ref, resp.Status)
	}
	return resp.Header.Get("Docker-Content-Digest")
}
