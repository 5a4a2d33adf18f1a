// Package registryclient reads and writes the idpbuilder registry as a client,
// with go-containerregistry: listing repositories, tags and platforms, and pushing
// images from Docker, tarballs and OCI layouts.
package registryclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Entry is one tag in the registry.
type Entry struct {
	Repository string   `json:"repository"`
	Tag        string   `json:"tag"`
	Digest     string   `json:"digest"`
	MediaType  string   `json:"mediaType"`
	Size       int64    `json:"size"` // config + layers (compressed), summed over platforms for an index
	Platforms  []string `json:"platforms"`
}

// Client talks to one registry.
type Client struct {
	// Registry is host:port.
	Registry string
	// Insecure allows plain HTTP (the default registry has no TLS).
	Insecure bool
	// Transport, if set, carries the requests (e.g. trusting the local CA).
	Transport http.RoundTripper
	// Auth, if set, logs in; anonymous otherwise.
	Auth authn.Authenticator
}

// New returns a client for registry (host:port) over plain HTTP.
func New(registry string) *Client {
	return &Client{Registry: registry, Insecure: true}
}

func (c *Client) nameOpts() []name.Option {
	if c.Insecure {
		return []name.Option{name.Insecure}
	}
	return nil
}

func (c *Client) remoteOpts(ctx context.Context) []remote.Option {
	opts := []remote.Option{remote.WithContext(ctx)}
	if c.Transport != nil {
		opts = append(opts, remote.WithTransport(c.Transport))
	}
	if c.Auth != nil {
		opts = append(opts, remote.WithAuth(c.Auth))
	}
	return opts
}

// Repositories lists every repository.
func (c *Client) Repositories(ctx context.Context) ([]string, error) {
	reg, err := name.NewRegistry(c.Registry, c.nameOpts()...)
	if err != nil {
		return nil, err
	}
	repos, err := remote.Catalog(ctx, reg, c.remoteOpts(ctx)...)
	if err != nil {
		return nil, fmt.Errorf("list repositories of %s: %w", c.Registry, err)
	}
	slices.Sort(repos)
	return repos, nil
}

// List describes every tag of repo, or of every repository when repo is empty.
func (c *Client) List(ctx context.Context, repo string) ([]Entry, error) {
	repos := []string{repo}
	if repo == "" {
		var err error
		if repos, err = c.Repositories(ctx); err != nil {
			return nil, err
		}
	}
	var out []Entry
	for _, r := range repos {
		rr, err := name.NewRepository(c.Registry+"/"+r, c.nameOpts()...)
		if err != nil {
			return nil, fmt.Errorf("repository %q: %w", r, err)
		}
		tags, err := remote.List(rr, c.remoteOpts(ctx)...)
		if err != nil {
			var te *transport.Error
			if errors.As(err, &te) && te.StatusCode == http.StatusNotFound {
				return nil, fmt.Errorf("repository %q not found in %s", r, c.Registry)
			}
			return nil, fmt.Errorf("list tags of %s: %w", r, err)
		}
		slices.Sort(tags)
		for _, tag := range tags {
			e, err := c.describe(ctx, rr.Tag(tag))
			if err != nil {
				return nil, err
			}
			out = append(out, e)
		}
	}
	return out, nil
}

func (c *Client) describe(ctx context.Context, ref name.Tag) (Entry, error) {
	desc, err := remote.Get(ref, c.remoteOpts(ctx)...)
	if err != nil {
		return Entry{}, fmt.Errorf("get %s: %w", ref, err)
	}
	e := Entry{Repository: ref.RepositoryStr(), Tag: ref.TagStr(), Digest: desc.Digest.String(), MediaType: string(desc.MediaType)}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return Entry{}, err
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return Entry{}, err
		}
		for _, m := range im.Manifests {
			if m.Platform != nil {
				e.Platforms = append(e.Platforms, platformString(m.Platform))
			}
			if m.MediaType.IsImage() {
				img, err := idx.Image(m.Digest)
				if err != nil {
					return Entry{}, err
				}
				size, err := imageSize(img)
				if err != nil {
					return Entry{}, err
				}
				e.Size += size
			}
		}
		return e, nil
	}
	img, err := desc.Image()
	if err != nil {
		return Entry{}, err
	}
	if e.Size, err = imageSize(img); err != nil {
		return Entry{}, err
	}
	if cf, err := img.ConfigFile(); err == nil && cf.OS != "" {
		e.Platforms = []string{platformString(cf.Platform())}
	}
	return e, nil
}

func imageSize(img v1.Image) (int64, error) {
	m, err := img.Manifest()
	if err != nil {
		return 0, err
	}
	size := m.Config.Size
	for _, l := range m.Layers {
		size += l.Size
	}
	return size, nil
}

func platformString(p *v1.Platform) string {
	if p == nil {
		return ""
	}
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return strings.TrimPrefix(s, "/")
}
