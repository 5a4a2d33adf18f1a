package registryclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/idpbuilder/idpbuilder/pkg/registryapi"
)

// GCFailedError is a garbage collection run that stopped; Result says what
// it deleted before it did.
type GCFailedError struct {
	Result registryapi.GCResult
}

func (e *GCFailedError) Error() string { return e.Result.Error }

// GC runs garbage collection on the registry (POST /api/v1/gc) and returns
// what it deleted, or would delete for a dry run.
func (c *Client) GC(ctx context.Context, req registryapi.GCRequest) (*registryapi.GCResult, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	hc, base, err := c.adminClient(ctx)
	if err != nil {
		return nil, err
	}
	httpReq, err := http.NewRequestWithContext(ctx, http.MethodPost, base+registryapi.GCPath, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	httpReq.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(httpReq)
	if err != nil {
		return nil, fmt.Errorf("garbage collection on %s: %w", c.Registry, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("garbage collection on %s: read the answer: %w", c.Registry, err)
	}
	if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusInternalServerError {
		var res registryapi.GCResult
		if err := json.Unmarshal(b, &res); err == nil && (resp.StatusCode == http.StatusOK || res.Error != "") {
			if resp.StatusCode != http.StatusOK {
				return &res, &GCFailedError{Result: res}
			}
			return &res, nil
		}
	}
	return nil, c.apiError(registryapi.GCPath, resp.StatusCode, b)
}

// apiError reads an OCI error body ({"errors":[{"code","message"}]}).
func (c *Client) apiError(path string, status int, body []byte) *APIError {
	e := &APIError{Registry: c.Registry, Path: path, StatusCode: status}
	var doc struct {
		Errors []struct{ Code, Message string }
	}
	if json.Unmarshal(body, &doc) == nil && len(doc.Errors) > 0 {
		e.Code, e.Message = doc.Errors[0].Code, doc.Errors[0].Message
	}
	return e
}

// adminClient is an HTTP client for the registry's admin API, logging in as
// the registry asks (go-containerregistry's transport: Basic, or a token),
// and the base URL, https unless the registry turns out to speak plain HTTP
// and the client allows it.
func (c *Client) adminClient(ctx context.Context) (*http.Client, string, error) {
	reg, err := name.NewRegistry(c.Registry, c.nameOpts()...)
	if err != nil {
		return nil, "", fmt.Errorf("registry %q: %w", c.Registry, err)
	}
	inner := c.Transport
	if inner == nil {
		inner = http.DefaultTransport
	}
	scheme, err := c.probeScheme(ctx, inner)
	if err != nil {
		return nil, "", err
	}
	auth := c.Auth
	if auth == nil {
		auth = authn.Anonymous
	}
	tr, err := transport.NewWithContext(ctx, reg, auth, inner, nil)
	if err != nil {
		// A refused login surfaces here, at the token endpoint, before
		// the call itself: report it like the call's own 401.
		var te *transport.Error
		if errors.As(err, &te) && te.StatusCode == http.StatusUnauthorized {
			msg := "unauthorized"
			if len(te.Errors) > 0 {
				msg = te.Errors[0].Message
			}
			return nil, "", &APIError{Registry: c.Registry, Path: registryapi.GCPath, StatusCode: http.StatusUnauthorized, Code: "UNAUTHORIZED", Message: msg}
		}
		return nil, "", fmt.Errorf("reach %s: %w", c.Registry, err)
	}
	return &http.Client{Transport: tr}, scheme + "://" + c.Registry, nil
}

// probeScheme finds out whether the registry speaks HTTPS (any answer to
// GET /v2/ counts) or, when Insecure allows it, plain HTTP.
func (c *Client) probeScheme(ctx context.Context, tr http.RoundTripper) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+c.Registry+"/v2/", nil)
	if err != nil {
		return "", err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err == nil {
		resp.Body.Close()
		return "https", nil
	}
	if c.Insecure && errors.Is(err, http.ErrSchemeMismatch) {
		return "http", nil
	}
	return "", fmt.Errorf("reach %s: %w", c.Registry, err)
}
