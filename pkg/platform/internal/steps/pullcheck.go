package steps

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/idpbuilder/idpbuilder/pkg/exec"
	"github.com/idpbuilder/idpbuilder/pkg/kind"
	"github.com/idpbuilder/idpbuilder/pkg/platform/internal/state"
	"github.com/idpbuilder/idpbuilder/pkg/registryclient"
	"github.com/idpbuilder/idpbuilder/pkg/version"
)

// PullCheckRepo is the repository the pull check's image is pushed to.
const PullCheckRepo = "idpbuilder/pull-check"

// pullTimeout bounds one pull on one node.
const pullTimeout = 2 * time.Minute

// PullCheckError means a node could not pull the check's image through its
// wiring under one of the registry's names.
type PullCheckError struct {
	Cluster string
	Node    string
	Ref     string
	Err     error
}

func (e *PullCheckError) Error() string {
	return fmt.Sprintf("node %s cannot pull %s through its registry wiring: %v", e.Node, e.Ref, e.Err)
}

func (e *PullCheckError) Unwrap() error { return e.Err }

// PullCheck proves the wiring works the way pods use it: a tiny image made by
// this binary is pushed to the registry, every node's containerd pulls it by
// each of the registry's names (crictl, the CRI path kubelet takes, so the
// nodes' hosts.toml, CA and login apply), and it is removed again, from the
// nodes and from the registry.
type PullCheck struct{}

// Execute implements Step.
func (PullCheck) Execute(ctx context.Context, c *Context) (err error) {
	reg, err := wiredRegistry(ctx, c)
	if err != nil {
		return err
	}
	ns, err := c.Cluster.Nodes(ctx)
	if err != nil {
		return err
	}
	c.Status.Start(fmt.Sprintf("Checking that %d node(s) pull from the registry", len(ns)))
	defer func() { c.Status.End(err) }()
	srv, err := c.Server(ctx)
	if err != nil {
		return err
	}
	img, err := PullCheckImage(srv.Arch)
	if err != nil {
		return err
	}
	tag, err := pullCheckTag(img)
	if err != nil {
		return err
	}
	client := c.checkClient(reg)
	ref, err := name.NewTag(reg.HostAddr+"/"+PullCheckRepo+":"+tag, name.Insecure)
	if err != nil {
		return err
	}
	if err := client.Push(ctx, registryclient.Source{Image: img}, ref, nil); err != nil {
		return fmt.Errorf("push the pull check's image: %w", err)
	}
	defer func() { err = errors.Join(err, removeFromRegistry(ctx, client, ref, img)) }()
	for _, n := range ns {
		if err := pullOn(ctx, c.Name(), n, reg, tag); err != nil {
			return err
		}
	}
	return nil
}

// pullOn pulls the image on node n by each of the registry's names, then removes it there.
func pullOn(ctx context.Context, cluster string, n kind.Node, reg kind.Registry, tag string) error {
	names := reg.Names()
	for _, host := range names {
		ref := host + "/" + PullCheckRepo + ":" + tag
		pctx, cancel := context.WithTimeout(ctx, pullTimeout)
		err := n.Exec.Command(pctx, "crictl", "pull", ref).Run()
		cancel()
		if err != nil {
			return &PullCheckError{Cluster: cluster, Node: n.Name, Ref: ref, Err: commandFailure(err)}
		}
	}
	// One image under several names: removing it by one removes every name.
	if err := n.Exec.Command(ctx, "crictl", "rmi", names[0]+"/"+PullCheckRepo+":"+tag).Run(); err != nil {
		return fmt.Errorf("remove the pull check's image from node %s: %w", n.Name, err)
	}
	return nil
}

// commandFailure is what a failed command said, without where it ran (the
// error names the node already).
func commandFailure(err error) error {
	var e *exec.Error
	if errors.As(err, &e) && e.Stderr != "" {
		return errors.New(e.Stderr)
	}
	return err
}

func removeFromRegistry(ctx context.Context, client *registryclient.Client, ref name.Tag, img v1.Image) error {
	d, err := img.Digest()
	if err != nil {
		return err
	}
	if err := client.Delete(ctx, ref.Context().Digest(d.String())); err != nil {
		return fmt.Errorf("remove the pull check's image from the registry: %w", err)
	}
	return nil
}

// checkClient pushes and deletes the check's image: trusting the cluster's CA,
// as the nodes' user when the registry needs a login.
func (c *Context) checkClient(reg kind.Registry) *registryclient.Client {
	client := registryclient.New(reg.HostAddr)
	client.Transport = registryclient.TrustingCAs(c.Layout.CAFile())
	if c.Settings.AuthOn() {
		if secret, err := state.NodeSecret(c.Layout); err == nil {
			client.Auth = &authn.Basic{Username: state.NodeUser(c.Name()), Password: secret}
		}
	}
	return client
}

// PullCheckImage is the check's image for nodes of architecture arch: one
// layer with one small file naming the binary that made it, so the same
// binary always makes the same image.
func PullCheckImage(arch string) (v1.Image, error) {
	info := version.Get()
	content := fmt.Sprintf("pull check image made by idpbuilder %s (%s)\n", info.Version, info.Commit)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "idpbuilder-pull-check", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(content)), ModTime: time.Unix(0, 0)}); err != nil {
		return nil, err
	}
	if _, err := io.WriteString(tw, content); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(buf.Bytes())), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		return nil, err
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	return mutate.ConfigFile(img, cf)
}

// pullCheckTag names the image by its content.
func pullCheckTag(img v1.Image) (string, error) {
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	return d.Hex[:12], nil
}
