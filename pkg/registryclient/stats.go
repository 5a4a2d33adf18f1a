package registryclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/idpbuilder/idpbuilder/pkg/registryapi"
)

// APIError is a registry's error answer to one of its operations endpoints
// (statistics, health).
type APIError struct {
	Registry   string
	Path       string
	StatusCode int
	// Code and Message come from the OCI error body, when there is one.
	Code, Message string
}

func (e *APIError) Error() string {
	switch {
	case e.StatusCode == http.StatusUnauthorized:
		return fmt.Sprintf("%s%s: authentication required (%s)", e.Registry, e.Path, e.detail())
	case e.StatusCode == http.StatusNotFound && e.Code == "":
		return fmt.Sprintf("%s has no %s endpoint: it is not an idpbuilder registry, or an older one", e.Registry, e.Path)
	}
	return fmt.Sprintf("%s%s: %d %s (%s)", e.Registry, e.Path, e.StatusCode, http.StatusText(e.StatusCode), e.detail())
}

func (e *APIError) detail() string {
	if e.Message == "" {
		return "no details"
	}
	return e.Message
}

// Unauthorized reports whether the registry wants a (different) login.
func (e *APIError) Unauthorized() bool { return e.StatusCode == http.StatusUnauthorized }

// Stats fetches the registry's usage statistics. They include every write
// the registry answered before the call (the registry waits for its
// background refresh if one is due).
func (c *Client) Stats(ctx context.Context) (registryapi.Stats, error) {
	var st registryapi.Stats
	_, err := c.getJSON(ctx, registryapi.StatsPath+"?fresh=true", &st, http.StatusOK)
	return st, err
}

// Health fetches the registry's detailed health. An unhealthy registry
// answers 503 with its report; that is a report, not an error.
func (c *Client) Health(ctx context.Context) (registryapi.Health, error) {
	var h registryapi.Health
	_, err := c.getJSON(ctx, registryapi.HealthPath, &h, http.StatusOK, http.StatusServiceUnavailable)
	return h, err
}

// getJSON GETs path from the registry and decodes a JSON answer with one of
// the accepted statuses. It speaks HTTPS or HTTP as the registry does and
// logs in the way image operations do (go-containerregistry's handshake).
func (c *Client) getJSON(ctx context.Context, path string, v any, accept ...int) (int, error) {
	reg, err := name.NewRegistry(c.Registry, c.nameOpts()...)
	if err != nil {
		return 0, err
	}
	base := c.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	a := c.Auth
	if a == nil {
		a = authn.Anonymous
	}
	endpoint, _, _ := strings.Cut(path, "?")
	// Any valid login will do for these endpoints: the scope is what a
	// token for the catalog would ask.
	tr, err := transport.NewWithContext(ctx, reg, a, base, []string{"registry:catalog:*"})
	if err != nil {
		var te *transport.Error
		if errors.As(err, &te) && te.StatusCode == http.StatusUnauthorized {
			e := &APIError{Registry: c.Registry, Path: endpoint, StatusCode: te.StatusCode}
			if len(te.Errors) > 0 {
				e.Code, e.Message = string(te.Errors[0].Code), te.Errors[0].Message
			}
			return te.StatusCode, e
		}
		return 0, fmt.Errorf("reach registry %s: %w", c.Registry, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, reg.Scheme()+"://"+reg.RegistryStr()+path, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return 0, fmt.Errorf("reach registry %s: %w", c.Registry, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("read %s%s: %w", c.Registry, path, err)
	}
	ok := false
	for _, code := range accept {
		ok = ok || resp.StatusCode == code
	}
	if !ok {
		e := &APIError{Registry: c.Registry, Path: endpoint, StatusCode: resp.StatusCode}
		var oci struct {
			Errors []struct{ Code, Message string } `json:"errors"`
		}
		if json.Unmarshal(body, &oci) == nil && len(oci.Errors) > 0 {
			e.Code, e.Message = oci.Errors[0].Code, oci.Errors[0].Message
		}
		return resp.StatusCode, e
	}
	if err := json.Unmarshal(body, v); err != nil {
		return resp.StatusCode, fmt.Errorf("%s%s answered what is not its JSON: %w", c.Registry, endpoint, err)
	}
	return resp.StatusCode, nil
}
