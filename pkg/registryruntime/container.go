package registryruntime

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/idpbuilder/idpbuilder/pkg/certs"
	"github.com/idpbuilder/idpbuilder/pkg/docker"
	"github.com/idpbuilder/idpbuilder/pkg/registryclient"
)

// Labels on the registry container.
const (
	LabelCluster = "io.idpbuilder.cluster"
	LabelRole    = "io.idpbuilder.role"
)

// Endpoint says how the registry is reached from each place that needs it.
type Endpoint struct {
	Mode Mode
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

// Paths inside the container for the optional mounts.
const (
	containerCertDir  = "/var/lib/idpbuilder/certs"
	containerHtpasswd = "/etc/idpbuilder/htpasswd"
	// LabelConfig carries a digest of the serve arguments, so a changed setting
	// (TLS on, another policy) replaces the container.
	LabelConfig = "io.idpbuilder.config"
)

// serveArgs are the container's arguments to `idpbuilder registry serve`.
func (c *Container) serveArgs() ([]string, error) {
	sv := serve{addr: fmt.Sprintf("0.0.0.0:%d", ContainerPort), dataDir: containerDataDir, opts: c.Opts}
	if c.Opts.CertDir != "" {
		sv.certDir, sv.tlsNames = containerCertDir, c.Opts.TLSNames
	}
	if c.Opts.authOn() {
		sv.htpasswd = containerHtpasswd
	}
	return sv.args()
}

// configDigest names the serve arguments in a label, so a changed setting (TLS
// on, another policy) replaces the container.
func configDigest(args []string) string {
	sum := sha256.Sum256([]byte(strings.Join(args, "\x00")))
	return hex.EncodeToString(sum[:8])
}

// Container runs the registry as a Docker container built from our own binary.
type Container struct {
	Docker *docker.Client
	Opts   Options
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
	args, err := c.serveArgs()
	if err != nil {
		return nil, err
	}
	name := c.Opts.ContainerName()
	ct, err := c.Docker.InspectContainer(ctx, name)
	if err != nil {
		return nil, err
	}
	if ct != nil && (ct.Labels[LabelBinaryDigest] != img.Digest || ct.Labels[LabelConfig] != configDigest(args)) {
		// Another binary (an upgrade), other settings, or a foreign container by that name: replace it.
		if ct.Labels[LabelRole] != "registry" {
			return nil, fmt.Errorf("a container named %s exists and was not made by idpbuilder: remove it (docker rm -f %s) or choose another cluster name", name, name)
		}
		if err := c.Docker.Remove(ctx, name); err != nil {
			return nil, fmt.Errorf("replace registry container: %w", err)
		}
		ct = nil
	}
	if ct == nil {
		if err := c.run(ctx, img, args); err != nil {
			return nil, err
		}
		c.removeOldImages(ctx, img)
	} else if !ct.Running {
		if err := c.Docker.Start(ctx, name); err != nil {
			return nil, fmt.Errorf("start registry container: %w", err)
		}
	}
	if err := c.Docker.ConnectNetwork(ctx, c.Opts.Network, name); err != nil {
		return nil, fmt.Errorf("connect registry to network %s: %w", c.Opts.Network, err)
	}
	ep, err := c.Endpoint(ctx)
	if err != nil {
		return nil, err
	}
	if err := waitReady(ctx, c.Opts, c.readyTimeout()); err != nil {
		return nil, fmt.Errorf("registry container %s is not answering: %w\nits last logs:\n%s", name, err, c.Docker.Logs(ctx, name, 20))
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
	name := c.Opts.ContainerName()
	ct, err := c.Docker.InspectContainer(ctx, name)
	if err != nil {
		return nil, err
	}
	if ct == nil {
		return nil, fmt.Errorf("registry container %s does not exist", name)
	}
	ip := ct.Networks[c.Opts.Network]
	if ip == "" {
		return nil, fmt.Errorf("registry container %s has no address on network %s", name, c.Opts.Network)
	}
	nodeHost := fmt.Sprintf("%s:%d", name, ContainerPort)
	return &Endpoint{
		Mode:        ModeContainer,
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

func (c *Container) run(ctx context.Context, img *Image, serveArgs []string) error {
	if err := os.MkdirAll(c.Opts.DataDir, 0o755); err != nil {
		return fmt.Errorf("create registry data dir: %w", err)
	}
	args := []string{
		"--detach",
		"--name", c.Opts.ContainerName(),
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
		"--label", LabelConfig + "=" + configDigest(serveArgs),
	}
	if c.Opts.CertDir != "" {
		args = append(args, "--volume", c.Opts.CertDir+":"+containerCertDir)
	}
	if c.Opts.authOn() {
		args = append(args, "--volume", c.Opts.Htpasswd+":"+containerHtpasswd+":ro")
	}
	args = append(append(args, img.Tag), serveArgs...)
	if _, err := c.Docker.Run(ctx, args...); err != nil {
		_ = c.Docker.Remove(ctx, c.Opts.ContainerName()) // docker run leaves a created container behind on a port clash
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
	return c.Docker.Remove(ctx, c.Opts.ContainerName())
}

// scheme is https when the registry has a certificate directory (TLS on).
func scheme(certDir string) string {
	if certDir != "" {
		return "https"
	}
	return "http"
}

// waitReady waits until the registry published on 127.0.0.1 answers its
// readiness probe, trusting the local CA when it speaks TLS.
func waitReady(ctx context.Context, o Options, timeout time.Duration) error {
	base := fmt.Sprintf("%s://127.0.0.1:%d", scheme(o.CertDir), o.HostPort)
	return registryclient.WaitReady(ctx, registryclient.TrustingCAs(filepath.Join(o.CertDir, certs.CAFile)), base, timeout)
}

// Mode implements Runtime.
func (c *Container) Mode() Mode { return ModeContainer }

// Describe implements Runtime.
func (c *Container) Describe() string { return c.Opts.ContainerName() }

// State implements Runtime.
func (c *Container) State(ctx context.Context) (State, error) {
	ct, err := c.Docker.InspectContainer(ctx, c.Opts.ContainerName())
	if err != nil {
		return State{}, err
	}
	if ct == nil {
		return State{Status: StatusMissing}, nil
	}
	return State{Status: ct.Status, RestartCount: ct.RestartCount}, nil
}

// Stop implements Runtime: docker stop, with time for the registry's graceful shutdown.
func (c *Container) Stop(ctx context.Context) error {
	name := c.Opts.ContainerName()
	ct, err := c.Docker.InspectContainer(ctx, name)
	if err != nil {
		return err
	}
	if ct == nil {
		return fmt.Errorf("no registry container %s", name)
	}
	return c.Docker.Stop(ctx, name, 35)
}
