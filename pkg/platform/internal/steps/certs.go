package steps

import (
	"context"
	"fmt"

	"github.com/idpbuilder/idpbuilder/pkg/auth"
	"github.com/idpbuilder/idpbuilder/pkg/certs"
	"github.com/idpbuilder/idpbuilder/pkg/platform/internal/state"
)

// NoUserError means the registry's auth policy needs a user to push with and
// the user file has none (the nodes' own user does not count).
type NoUserError struct {
	Policy   auth.Policy
	Htpasswd string
}

func (e *NoUserError) Error() string {
	return fmt.Sprintf("the registry's auth policy %q needs a user to push with, and %s has none", e.Policy, e.Htpasswd)
}

// Certificates makes what TLS and auth need before the registry starts: the
// local CA and the server certificate, and the nodes' user, who pulls when
// every request needs a login and pushes the pull check's image. A registry
// with neither has nothing to do here, and shows no line.
type Certificates struct{}

// Execute implements Step.
func (Certificates) Execute(ctx context.Context, c *Context) (err error) {
	s := c.Settings
	if !s.TLS && !s.AuthOn() {
		return nil
	}
	c.Status.Start(certificatesTitle(s))
	defer func() { c.Status.End(err) }()
	if s.TLS {
		names := []string{c.Name() + "-registry", s.InClusterName}
		if _, err := (&certs.Manager{Dir: c.Layout.CertDir(), Names: names}).Ensure(); err != nil {
			return fmt.Errorf("registry certificate: %w", err)
		}
	}
	if !s.AuthOn() {
		return nil
	}
	return ensureNodeUser(c)
}

func certificatesTitle(s state.Settings) string {
	switch {
	case s.TLS && s.AuthOn():
		return "Local CA, registry certificate and the nodes' user"
	case s.TLS:
		return "Local CA and registry certificate"
	}
	return "The nodes' user"
}

func ensureNodeUser(c *Context) error {
	h := auth.Htpasswd{Path: c.Settings.Htpasswd}
	users, err := h.Users()
	if err != nil {
		return err
	}
	humans := 0
	for _, u := range users {
		if !state.IsNodeUser(u) {
			humans++
		}
	}
	if humans == 0 {
		return &NoUserError{Policy: c.Settings.Auth, Htpasswd: h.Path}
	}
	secret, err := state.EnsureNodeSecret(c.Layout)
	if err != nil {
		return err
	}
	user := state.NodeUser(c.Name())
	if ok, err := auth.NewVerifier(h).Verify(user, secret); err != nil || !ok {
		if err := h.Set(user, secret); err != nil {
			return fmt.Errorf("add the nodes' user: %w", err)
		}
	}
	return nil
}
