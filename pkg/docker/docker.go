// Package docker drives the Docker engine through the docker CLI, the way kind does,
// rather than importing the Docker SDK: fewer dependencies, and whatever docker (or
// shim) the user has on PATH is the one used.
package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/idpbuilder/idpbuilder/pkg/exec"
)

// Client runs the docker CLI. The zero value runs "docker" on this machine.
type Client struct {
	// Bin is the docker executable; "docker" when empty.
	Bin string
	// Exec runs it; this machine when nil (tests pass a recorder: pkg/exec/exectest).
	Exec exec.Cmder
}

// ErrNotRunning means the docker CLI is missing or cannot reach an engine.
var ErrNotRunning = errors.New("docker is not available")

func (c *Client) bin() string {
	if c.Bin == "" {
		return "docker"
	}
	return c.Bin
}

func (c *Client) cmd(ctx context.Context, args ...string) exec.Cmd {
	x := c.Exec
	if x == nil {
		x = exec.Local()
	}
	return x.Command(ctx, c.bin(), args...)
}

func (c *Client) output(ctx context.Context, args ...string) (string, error) {
	return exec.OutputString(c.cmd(ctx, args...))
}

// Server describes the engine.
type Server struct {
	Version string
	OS      string
	Arch    string
}

// Server checks that the engine answers and says what it is.
func (c *Client) Server(ctx context.Context) (Server, error) {
	out, err := c.output(ctx, "version", "--format", "{{.Server.Version}} {{.Server.Os}} {{.Server.Arch}}")
	if err != nil {
		if exec.NotFound(err) {
			return Server{}, fmt.Errorf("%w: the docker CLI is not installed (install Docker, e.g. `apt-get install docker.io`): %v", ErrNotRunning, err)
		}
		return Server{}, fmt.Errorf("%w: the Docker engine is not running or not reachable (start it, e.g. `sudo systemctl start docker` or Docker Desktop): %v", ErrNotRunning, err)
	}
	f := strings.Fields(out)
	if len(f) != 3 {
		return Server{}, fmt.Errorf("unexpected `docker version` output %q", out)
	}
	return Server{Version: f[0], OS: f[1], Arch: f[2]}, nil
}

// ImageExists reports whether the engine has the image.
func (c *Client) ImageExists(ctx context.Context, ref string) (bool, error) {
	_, err := c.output(ctx, "image", "inspect", "--format", "{{.Id}}", ref)
	if err == nil {
		return true, nil
	}
	if isNoSuch(err) {
		return false, nil
	}
	return false, err
}

// Load runs `docker load` on an image tarball.
func (c *Client) Load(ctx context.Context, tarball io.Reader) error {
	return c.cmd(ctx, "load", "--quiet").SetStdin(tarball).Run()
}

// ImageTags lists repo:tag of the images of a repository that pass every
// filter (docker's --filter syntax, e.g. "label=key=value").
func (c *Client) ImageTags(ctx context.Context, repo string, filters ...string) ([]string, error) {
	args := []string{"image", "ls", "--format", "{{.Repository}}:{{.Tag}}"}
	for _, f := range filters {
		args = append(args, "--filter", f)
	}
	out, err := c.output(ctx, append(args, repo)...)
	if err != nil {
		return nil, err
	}
	return strings.Fields(out), nil
}

// RemoveImage untags and removes an image; one still used by a container is kept (an error).
func (c *Client) RemoveImage(ctx context.Context, ref string) error {
	_, err := c.output(ctx, "image", "rm", ref)
	return err
}

// Save streams `docker save ref` to w.
func (c *Client) Save(ctx context.Context, w io.Writer, refs ...string) error {
	return c.cmd(ctx, append([]string{"save"}, refs...)...).SetStdout(w).Run()
}

// Container is what idpbuilder needs to know of a container.
type Container struct {
	ID           string
	Name         string
	Image        string
	Running      bool
	Status       string
	RestartCount int
	// Networks maps network name to the container's IPv4 address on it.
	Networks map[string]string
	Labels   map[string]string
}

// InspectContainer returns the container, or nil when there is none by that name.
func (c *Client) InspectContainer(ctx context.Context, name string) (*Container, error) {
	out, err := c.output(ctx, "container", "inspect", name)
	if err != nil {
		if isNoSuch(err) {
			return nil, nil
		}
		return nil, err
	}
	var raw []struct {
		ID           string `json:"Id"`
		Name         string
		RestartCount int
		Config       struct {
			Image  string
			Labels map[string]string
		}
		State struct {
			Running bool
			Status  string
		}
		NetworkSettings struct {
			Networks map[string]struct{ IPAddress string }
		}
	}
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		return nil, fmt.Errorf("parse docker inspect of %s: %w", name, err)
	}
	if len(raw) != 1 {
		return nil, fmt.Errorf("docker inspect of %s returned %d containers", name, len(raw))
	}
	r := raw[0]
	ct := &Container{
		ID: r.ID, Name: strings.TrimPrefix(r.Name, "/"), Image: r.Config.Image, Running: r.State.Running,
		Status: r.State.Status, RestartCount: r.RestartCount, Labels: r.Config.Labels, Networks: map[string]string{},
	}
	for n, s := range r.NetworkSettings.Networks {
		ct.Networks[n] = s.IPAddress
	}
	return ct, nil
}

// Run runs `docker run` with args and returns the new container's ID.
func (c *Client) Run(ctx context.Context, args ...string) (string, error) {
	return c.output(ctx, append([]string{"run"}, args...)...)
}

// Remove force-removes a container; a missing container is not an error.
func (c *Client) Remove(ctx context.Context, name string) error {
	_, err := c.output(ctx, "rm", "-f", "--volumes", name)
	if err != nil && isNoSuch(err) {
		return nil
	}
	return err
}

// Start starts a stopped container.
func (c *Client) Start(ctx context.Context, name string) error {
	_, err := c.output(ctx, "start", name)
	return err
}

// Stop stops a container, giving it timeoutSeconds to exit on SIGTERM.
func (c *Client) Stop(ctx context.Context, name string, timeoutSeconds int) error {
	_, err := c.output(ctx, "stop", "--time", fmt.Sprint(timeoutSeconds), name)
	return err
}

// Logs returns the last lines of a container's logs, both streams interleaved as
// docker replays them (the registry logs to stderr), or why they cannot be read.
func (c *Client) Logs(ctx context.Context, name string, tail int) string {
	var both bytes.Buffer
	err := c.cmd(ctx, "logs", "--tail", fmt.Sprint(tail), name).SetStdout(&both).SetStderr(&both).Run()
	if out := strings.TrimSpace(both.String()); out != "" || err == nil {
		return out // on failure, docker's own message is in it
	}
	return err.Error()
}

// NetworkGateway returns the IPv4 gateway of a network ("" when it has none).
func (c *Client) NetworkGateway(ctx context.Context, network string) (string, error) {
	out, err := c.output(ctx, "network", "inspect", "--format", "{{range .IPAM.Config}}{{.Gateway}} {{end}}", network)
	if err != nil {
		return "", err
	}
	for _, g := range strings.Fields(out) {
		if !strings.Contains(g, ":") {
			return g, nil
		}
	}
	return "", nil
}

// NetworkExists reports whether the network exists.
func (c *Client) NetworkExists(ctx context.Context, network string) (bool, error) {
	_, err := c.output(ctx, "network", "inspect", "--format", "{{.Name}}", network)
	if err == nil {
		return true, nil
	}
	if isNoSuch(err) {
		return false, nil
	}
	return false, err
}

// ConnectNetwork attaches a container to a network (idempotent).
func (c *Client) ConnectNetwork(ctx context.Context, network, container string, aliases ...string) error {
	args := []string{"network", "connect"}
	for _, a := range aliases {
		args = append(args, "--alias", a)
	}
	_, err := c.output(ctx, append(args, network, container)...)
	if stderrSays(err, "already exists in network") {
		return nil
	}
	return err
}

func isNoSuch(err error) bool { return stderrSays(err, "no such", "not found") }

// stderrSays reports whether docker failed saying one of msgs (case-insensitive).
func stderrSays(err error, msgs ...string) bool {
	var e *exec.Error
	if !errors.As(err, &e) {
		return false
	}
	s := strings.ToLower(e.Stderr)
	for _, m := range msgs {
		if strings.Contains(s, m) {
			return true
		}
	}
	return false
}

// ListedContainer is a line of `docker ps`: a container's name and the value of
// the label asked for.
type ListedContainer struct {
	Name  string
	Label string
}

// ContainersWithLabel lists every container (running or not) that has the
// label filter (docker's syntax: "key" or "key=value"), with the value of the
// label show, sorted by name.
func (c *Client) ContainersWithLabel(ctx context.Context, filter, show string) ([]ListedContainer, error) {
	out, err := c.output(ctx, "ps", "--all", "--filter", "label="+filter, "--format", `{{.Names}}\t{{.Label "`+show+`"}}`)
	if err != nil {
		return nil, err
	}
	var cs []ListedContainer
	for _, line := range strings.Split(out, "\n") {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		name, label, _ := strings.Cut(line, "\t")
		cs = append(cs, ListedContainer{Name: strings.TrimSpace(name), Label: strings.TrimSpace(label)})
	}
	slices.SortFunc(cs, func(a, b ListedContainer) int { return strings.Compare(a.Name, b.Name) })
	return cs, nil
}

// In returns a Cmder whose commands run inside a container (docker exec, with
// the privileges kind's own node commands have). where names the place in
// errors, e.g. "node dev-control-plane"; an error names the command in the
// container, not the docker command line around it.
func (c *Client) In(container, where string) exec.Cmder {
	return exec.NewCmder(where, func(ctx context.Context, s exec.Spec) (int, error) {
		args := []string{"exec", "--privileged"}
		if s.Stdin != nil {
			args = append(args, "--interactive")
		}
		for _, e := range s.Env {
			args = append(args, "--env", e)
		}
		args = append(append(args, container, s.Name), s.Args...)
		cmd := c.cmd(ctx, args...).SetStdout(s.Stdout).SetStderr(s.Stderr)
		if s.Stdin != nil {
			cmd.SetStdin(s.Stdin)
		}
		err := cmd.Run()
		var e *exec.Error
		if errors.As(err, &e) {
			return e.ExitCode, e.Err
		}
		return 0, err
	})
}
