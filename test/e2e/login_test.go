//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runEnv runs a command with env and stdin; it returns combined output.
func runEnv(env []string, stdin, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestDockerLoginThroughCredentialHelper: with TLS and --auth=push, an anonymous
// docker push is refused and writes nothing; `registry login` wires the
// credential helper into Docker's config; `docker login` then stores through the
// helper, and push and pull work with the same digest.
func TestDockerLoginThroughCredentialHelper(t *testing.T) {
	requireTool(t, "docker")
	home := t.TempDir()
	addUser(t, home, "alice", "alice-password-1")
	srv := startServerHome(t, home, "", "--tls", "--auth", "push")

	bin := t.TempDir()
	if err := os.Symlink(binary, filepath.Join(bin, "docker-credential-idpbuilder")); err != nil {
		t.Fatal(err)
	}
	dockerCfg := t.TempDir()
	if err := os.WriteFile(filepath.Join(dockerCfg, "config.json"), []byte(`{"psFormat":"table {{.ID}}","auths":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "HOME="+home, "DOCKER_CONFIG="+dockerCfg, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	server := srv.Localhost()
	ref := server + "/e2e/login:v1"
	importHello(t, "idpbuilder-e2e/login:v1")
	runCmd(t, time.Minute, "docker", "tag", "idpbuilder-e2e/login:v1", ref)
	t.Cleanup(func() { _, _ = tryCmd(time.Minute, "docker", "rmi", "-f", ref) })

	// Anonymous push: refused, nothing stored.
	out, err := runEnv(env, "", "docker", "push", ref)
	if err == nil || !strings.Contains(out, "anonymous clients may only pull: log in to push") {
		t.Fatalf("anonymous push: err %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(srv.DataDir, "docker", "registry", "v2", "repositories", "e2e")); !os.IsNotExist(err) {
		t.Fatalf("a refused push wrote to storage (%v)", err)
	}

	// registry login: checks the password, stores it, points Docker at the helper.
	if out, err := runEnv(env, "wrong-password\n", binary, "registry", "login", server, "-u", "alice", "--password-stdin"); err == nil || !strings.Contains(out, "invalid username or password") {
		t.Fatalf("login with a wrong password: %v\n%s", err, out)
	}
	if out, err := runEnv(env, "alice-password-1\n", binary, "registry", "login", server, "-u", "alice", "--password-stdin"); err != nil {
		t.Fatalf("registry login: %v\n%s", err, out)
	}
	var cfg map[string]any
	data, _ := os.ReadFile(filepath.Join(dockerCfg, "config.json"))
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg["psFormat"] != "table {{.ID}}" || cfg["credHelpers"].(map[string]any)[server] != "idpbuilder" {
		t.Fatalf("docker config after login: %s", data)
	}

	// docker logout/login go through the helper (erase, then store).
	if out, err := runEnv(env, "", "docker", "logout", server); err != nil {
		t.Fatalf("docker logout: %v\n%s", err, out)
	}
	store := filepath.Join(home, ".local", "state", "idpbuilder", "auth", "credentials.json")
	if data, _ := os.ReadFile(store); strings.Contains(string(data), "alice") {
		t.Fatalf("docker logout did not erase through the helper: %s", data)
	}
	if out, err := runEnv(env, "alice-password-1\n", "docker", "login", server, "-u", "alice", "--password-stdin"); err != nil || !strings.Contains(out, "Login Succeeded") {
		t.Fatalf("docker login: %v\n%s", err, out)
	}
	if data, _ := os.ReadFile(store); !strings.Contains(string(data), `"Username": "alice"`) {
		t.Fatalf("docker login did not store through the helper: %s", data)
	}
	if info, err := os.Stat(store); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("credential store mode: %v %v", info.Mode(), err)
	}

	out, err = runEnv(env, "", "docker", "push", ref)
	if err != nil {
		t.Fatalf("authenticated push: %v\n%s", err, out)
	}
	m := pushDigestRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no digest in push output:\n%s", out)
	}
	runCmd(t, time.Minute, "docker", "rmi", "-f", ref)
	out, err = runEnv(env, "", "docker", "pull", ref)
	if err != nil || !strings.Contains(out, m[1]) {
		t.Fatalf("pull: %v\n%s", err, out)
	}
	if !strings.Contains(srv.stderr.String(), "user=alice") {
		t.Fatal("the access log shows no request by alice")
	}
}
