package platform

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/idpbuilder/idpbuilder/pkg/auth"
	"github.com/idpbuilder/idpbuilder/pkg/certs"
	"github.com/idpbuilder/idpbuilder/pkg/platform/internal/state"
	"github.com/idpbuilder/idpbuilder/pkg/platform/internal/steps"
	"github.com/idpbuilder/idpbuilder/pkg/registryclient"
)

// ClientOptions say which registry a client is for and what it will do.
type ClientOptions struct {
	// Cluster is the cluster whose registry the client is for, unless Addr is set.
	Cluster string
	// Given are the cluster settings the command was given (a chosen port wins).
	Given Given
	// Addr is another registry's host:port.
	Addr string
	// Write is set for a client that pushes or deletes: it never logs in as
	// the cluster's nodes.
	Write bool
}

// Client is a client for the registry of a cluster, or of Addr. It trusts the
// system's roots and the local CAs (of `registry serve` and of the cluster),
// and logs in with what `registry login` stored for the server; a reader of a
// cluster registry whose every request needs a login reads as the cluster's
// nodes. scheme is https when the cluster's registry speaks TLS, else http (a
// client of Addr finds out by itself).
//
// A client of Addr does not depend on the cluster's settings file: one that
// cannot be read only means the cluster's registry is taken as given.
func (p *Platform) Client(opts ClientOptions) (client *registryclient.Client, scheme string, err error) {
	c, err := p.open(opts.Cluster, opts.Given, nil)
	var corrupt *CorruptSettingsError
	if opts.Addr != "" && errors.As(err, &corrupt) {
		c, err = p.context(opts.Cluster, state.NewLayout(p.StateDir, opts.Cluster), opts.Given.Settings, false, nil)
	}
	if err != nil {
		return nil, "", err
	}
	client, scheme = p.client(c, opts.Addr, opts.Write)
	return client, scheme, nil
}

func (p *Platform) client(c *steps.Context, addr string, write bool) (*registryclient.Client, string) {
	s := c.Settings
	own := fmt.Sprintf("localhost:%d", s.Port)
	scheme := "http"
	if addr == "" {
		addr = own
		if s.TLS {
			scheme = "https"
		}
	}
	client := registryclient.New(addr)
	// Insecure still lets go-containerregistry try HTTPS first, now with our CAs.
	client.Transport = registryclient.TrustingCAs(c.Layout.CAFile(), filepath.Join(p.ServeCertDir, certs.CAFile))
	if cr, err := p.Credentials.Get(addr); err == nil {
		client.Auth = &authn.Basic{Username: cr.Username, Password: cr.Secret}
	} else if !write && s.Auth == auth.PolicyAll && addr == own {
		if secret, err := state.NodeSecret(c.Layout); err == nil {
			client.Auth = &authn.Basic{Username: state.NodeUser(c.Name()), Password: secret}
		}
	}
	return client, scheme
}
