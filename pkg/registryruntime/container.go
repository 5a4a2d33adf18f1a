package registryruntime

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/idpbuilder/idpbuilder/pkg/docker"
)

// Labels on the registry container.
const (
	LabelCluster = "io.idpbuilder.cluster"
	LabelRole    = "io.idpbuilder.role"
)

// Endpoint says how the registry is reached from each place that needs it.
type Endpoint struct {
	Mode string // "container" or "process"
	// HostAddr is the address on this machine: localhost:<port>.
	HostAddr string
	// NodeURL is the base URL cluster nodes' containerd uses, e.g. http://localdev-registry:5000.
	NodeURL string
	// NodeHost is the host:port of NodeURL, a name images may also be referenced by.
	NodeHost string
	// ClusterIP and ClusterPort are where in-cluster traffic (the in-cluster name's
	// Service endpoints) goes.
	ClusterIP   string
	ClusterPort int
}

// ContainerOptions configure the registry container.
type ContainerOptions struct {
	// Name of the container, e.g. localdev-registry; also its DNS name on Network.
	Name string
	// Cluster the registry serves (a label, for status and cleanup).
	Cluster string
	// Network to join (kind's "kind" network).
	Network string
	// HostPort is published on 127.0.0.1 only: the registry has no auth by default.
	HostPort int
	// DataDir on the host, bind-mounted as the registry's storage.
	DataDir string
	// Binary is the idpbuilder executable the image is built from (os.Executable()).
	Binary string
	// CertDir, when set, turns on TLS: the local CA and server certificate live
	// there (on the host), mounted into the container.
	CertDir string
	// TLSNames are the names the certificate must cover besides the defaults.
	TLSNames []string
	// Htpasswd and Auth, when set, turn on authentication with that user file
	// (mounted read-only) and policy (push or all).
	Htpasswd string
	Auth     string
	// UIClusterHost is how pods name the registry (registry.local:5000), for
	// the web UI's kubectl commands.
	UIClusterHost string
}

// Paths inside the container for the optional mounts.
const (
	containerCertDir  = "/var/lib/idpbuilder/certs"
	containerHtpasswd = "/etc/idpbuilder/htpasswd"
	// LabelConfig carries a digest of the serve arguments, so a changed setting
	// (TLS on, another policy) replaces the container.
	LabelConfig = "io.idpbuilder.config"
)

// serveArgs are the container's arguments to `idpbuilder registry serve`.
// The request-rate limit is off: every client is on this machine (the port is
// published on 127.0.0.1 only, the nodes are on the local kind network), yet
// none comes from the container's loopback, so bulk pushes from the host and
// parallel pulls by the nodes would be limited. Failed logins still are.
func (c *Container) serveArgs() []string {
	args := []string{"--addr", fmt.Sprintf("0.0.0.0:%d", ContainerPort), "--data-dir", containerDataDir, "--rate-limit", "0"}
	if c.Opts.CertDir != "" {
		args = append(args, "--tls", "--cert-dir", containerCertDir, "--cert-check-interval", "5s")
		if len(c.Opts.TLSNames) > 0 {
			args = append(args, "--tls-names", strings.Join(c.Opts.TLSNames, ","))
		}
	}
	if c.Opts.Htpasswd != "" {
		args = append(args, "--htpasswd", containerHtpasswd, "--auth", c.Opts.Auth)
	}
	if c.Opts.UIClusterHost != "" {
		args = append(args, "--ui-cluster-host", c.Opts.UIClusterHost)
	}
	return args
}

func (c *Container) configDigest() string {
	sum := sha256.Sum256([]byte(strings.Join(c.serveArgs(), "\x00")))
	return hex.EncodeToString(sum[:8])
}

// Container runs the registry as a Docker container built from our own binary.
type Container struct {
	Docker *docker.Client
	Opts   ContainerOptions
	// Ready bounds how long Ensure waits for the registry to answer.
	Ready time.Duration
}

// Ensure makes the registry container exist, run the current binary, sit on the
// network and answer; it reuses what is already right and replaces what is not.
func (c *Container) Ensure(ctx context.Context) (*Endpoint, error) {
	srv, err := c.Docker.Server(ctx)
	if err != nil {
		return nil, err
	}
	if srv.OS != "linux" {
		return nil, fmt.Errorf("%w: the Docker engine runs %s containers", ErrNoLinuxBinary, srv.OS)
	}
	img, err := BuildImage(c.Opts.Binary, srv.Arch)
	if err != nil {
		return nil, err
	}
	if err := c.loadImage(ctx, img); err != nil {
		return nil, err
	}

	ct, err := c.Docker.InspectContainer(ctx, c.Opts.Name)
	if err != nil {
		return nil, err
	}
	if ct != nil && (ct.Labels[LabelBinaryDigest] != img.Digest || ct.Labels[LabelConfig] != c.configDigest()) {
		// Another binary (an upgrade), other settings, or a foreign container by that name: replace it.
		if ct.Labels[LabelRole] != "registry" {
			return nil, fmt.Errorf("a container named %s exists and was not made by idpbuilder: remove it (docker rm -f %s) or choose another cluster name", c.Opts.Name, c.Opts.Name)
		}
		if err := c.Docker.Remove(ctx, c.Opts.Name); err != nil {
			return nil, fmt.Errorf("replace registry container: %w", err)
		}
		ct = nil
	}
	if ct == nil {
		if err := c.run(ctx, img); err != nil {
			return nil, err
		}
		c.removeOldImages(ctx, img)
	} else if !ct.Running {
		if err := c.Docker.Start(ctx, c.Opts.Name); err != nil {
			return nil, fmt.Errorf("start registry container: %w", err)
		}
	}
	if err := c.Docker.ConnectNetwork(ctx, c.Opts.Network, c.Opts.Name); err != nil {
		return nil, fmt.Errorf("connect registry to network %s: %w", c.Opts.Network, err)
	}
	ep, err := c.Endpoint(ctx)
	if err != nil {
		return nil, err
	}
	if err := waitReadyWith(ctx, probeClient(c.Opts.CertDir), c.probeURL(), c.readyTimeout()); err != nil {
		return nil, fmt.Errorf("registry container %s is not answering: %w\nits last logs:\n%s", c.Opts.Name, err, c.Docker.Logs(ctx, c.Opts.Name, 20))
	}
	return ep, nil
}

func (c *Container) readyTimeout() time.Duration {
	if c.Ready > 0 {
		return c.Ready
	}
	return 30 * time.Second
}

// Endpoint describes the running container's addresses.
func (c *Container) Endpoint(ctx context.Context) (*Endpoint, error) {
	ct, err := c.Docker.InspectContainer(ctx, c.Opts.Name)
	if err != nil {
		return nil, err
	}
	if ct == nil {
		return nil, fmt.Errorf("registry container %s does not exist", c.Opts.Name)
	}
	ip := ct.Networks[c.Opts.Network]
	if ip == "" {
		return nil, fmt.Errorf("registry container %s has no address on network %s", c.Opts.Name, c.Opts.Network)
	}
	nodeHost := fmt.Sprintf("%s:%d", c.Opts.Name, ContainerPort)
	return &Endpoint{
		Mode:        "container",
		HostAddr:    fmt.Sprintf("localhost:%d", c.Opts.HostPort),
		NodeURL:     scheme(c.Opts.CertDir) + "://" + nodeHost,
		NodeHost:    nodeHost,
		ClusterIP:   ip,
		ClusterPort: ContainerPort,
	}, nil
}

func (c *Container) loadImage(ctx context.Context, img *Image) error {
	ok, err := c.Docker.ImageExists(ctx, img.Tag)
	if err != nil || ok {
		return err
	}
	tag, err := name.NewTag(img.Tag)
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(tarball.Write(tag, img.Image, pw)) }()
	if err := c.Docker.Load(ctx, pr); err != nil {
		pr.CloseWithError(err)
		return fmt.Errorf("load registry image %s: %w", img.Tag, err)
	}
	return nil
}

func (c *Container) run(ctx context.Context, img *Image) error {
	if err := os.MkdirAll(c.Opts.DataDir, 0o755); err != nil {
		return fmt.Errorf("create registry data dir: %w", err)
	}
	args := []string{
		"--detach",
		"--name", c.Opts.Name,
		"--restart", "unless-stopped",
		"--network", c.Opts.Network,
		// Only loopback: the registry accepts pushes without auth.
		"--publish", fmt.Sprintf("127.0.0.1:%d:%d", c.Opts.HostPort, ContainerPort),
		"--volume", c.Opts.DataDir + ":" + containerDataDir,
		// Files in the data dir belong to the user who ran idpbuilder, not root.
		"--user", fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid()),
		"--label", LabelRole + "=registry",
		"--label", LabelCluster + "=" + c.Opts.Cluster,
		"--label", LabelBinaryDigest + "=" + img.Digest,
		"--label", LabelConfig + "=" + c.configDigest(),
	}
	if c.Opts.CertDir != "" {
		args = append(args, "--volume", c.Opts.CertDir+":"+containerCertDir)
	}
	if c.Opts.Htpasswd != "" {
		args = append(args, "--volume", c.Opts.Htpasswd+":"+containerHtpasswd+":ro")
	}
	args = append(append(args, img.Tag), c.serveArgs()...)
	if _, err := c.Docker.Run(ctx, args...); err != nil {
		_ = c.Docker.Remove(ctx, c.Opts.Name) // docker run leaves a created container behind on a port clash
		if strings.Contains(err.Error(), "port is already allocated") || strings.Contains(err.Error(), "address already in use") {
			return &PortInUseError{Port: c.Opts.HostPort, Err: err}
		}
		return fmt.Errorf("run registry container: %w", err)
	}
	return nil
}

// removeOldImages drops registry images that earlier builds of this binary (the
// same path) made; other idpbuilder binaries' images are theirs to manage.
// Docker refuses to remove one that a container (another cluster's registry)
// still uses; that one stays, which is what we want, so errors are ignored.
func (c *Container) removeOldImages(ctx context.Context, current *Image) {
	tags, err := c.Docker.ImageTags(ctx, ImageRepo, "label="+LabelBinaryPath+"="+current.Path)
	if err != nil {
		return
	}
	for _, t := range tags {
		if t != current.Tag {
			_ = c.Docker.RemoveImage(ctx, t)
		}
	}
}

// Remove deletes the container (the data dir stays).
func (c *Container) Remove(ctx context.Context) error {
	return c.Docker.Remove(ctx, c.Opts.Name)
}

// probeURL is the registry's base URL from this machine.
func (c *Container) probeURL() string { return probeURL(c.Opts.CertDir, c.Opts.HostPort) }

// scheme is https when the registry has a certificate directory (TLS on).
func scheme(certDir string) string {
	if certDir != "" {
		return "https"
	}
	return "http"
}

// probeURL is the base URL of a registry published on 127.0.0.1:port.
func probeURL(certDir string, port int) string {
	return fmt.Sprintf("%s://127.0.0.1:%d", scheme(certDir), port)
}

// probeClient trusts the local CA (when there is TLS) for readiness probes.
func probeClient(certDir string) *http.Client {
	if certDir == "" {
		return http.DefaultClient
	}
	pool := x509.NewCertPool()
	if pem, err := os.ReadFile(filepath.Join(certDir, "ca.crt")); err == nil {
		pool.AppendCertsFromPEM(pem)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// waitReadyWith polls base+/readyz with client until it answers 200 or timeout passes.
func waitReadyWith(ctx context.Context, client *http.Client, base string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("readyz answered %s", resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Mode implements Runtime.
func (c *Container) Mode() string { return "container" }

// Describe implements Runtime.
func (c *Container) Describe() string { return c.Opts.Name }

// State implements Runtime.
func (c *Container) State(ctx context.Context) (string, int, error) {
	ct, err := c.Docker.InspectContainer(ctx, c.Opts.Name)
	if err != nil {
		return "", 0, err
	}
	if ct == nil {
		return "missing", 0, nil
	}
	return ct.Status, ct.RestartCount, nil
}

// Stop implements Runtime: docker stop, with time for the registry's graceful shutdown.
func (c *Container) Stop(ctx context.Context) error {
	ct, err := c.Docker.InspectContainer(ctx, c.Opts.Name)
	if err != nil {
		return err
	}
	if ct == nil {
		return fmt.Errorf("no registry container %s", c.Opts.Name)
	}
	return c.Docker.Stop(ctx, c.Opts.Name, 35)
}
