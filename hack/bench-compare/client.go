package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// reg speaks the distribution API to one server, as a client would.
type reg struct {
	c    *http.Client
	base string
}

func (r reg) do(ctx context.Context, method, target string, body io.Reader, size int64, header map[string]string) (*http.Response, error) {
	u, err := url.Parse(r.base)
	if err != nil {
		return nil, err
	}
	ref, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, u.ResolveReference(ref).String(), body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.ContentLength = size
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return r.c.Do(req)
}

// call sends a request, drains the answer and checks its status.
func (r reg) call(ctx context.Context, method, target string, body io.Reader, size int64, header map[string]string, codes ...int) (http.Header, error) {
	resp, err := r.do(ctx, method, target, body, size, header)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if err := expect(resp, codes...); err != nil {
		return nil, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.Header, err
}

func withQuery(loc, key, value string) (string, error) {
	u, err := url.Parse(loc)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// pushBlob uploads as docker does: start, one streamed PATCH, then PUT with the digest.
func (r reg) pushBlob(ctx context.Context, repo string, body io.Reader, size int64, dgst string) error {
	h, err := r.call(ctx, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil, 0, nil, http.StatusAccepted)
	if err != nil {
		return err
	}
	h, err = r.call(ctx, http.MethodPatch, h.Get("Location"), body, size, map[string]string{"Content-Type": "application/octet-stream"}, http.StatusAccepted, http.StatusNoContent)
	if err != nil {
		return err
	}
	loc, err := withQuery(h.Get("Location"), "digest", dgst)
	if err != nil {
		return err
	}
	_, err = r.call(ctx, http.MethodPut, loc, nil, 0, nil, http.StatusCreated)
	return err
}

// putSmallBlob uploads in two requests: start, then PUT with the body and digest.
func (r reg) putSmallBlob(ctx context.Context, repo string, data []byte) error {
	h, err := r.call(ctx, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil, 0, nil, http.StatusAccepted)
	if err != nil {
		return err
	}
	loc, err := withQuery(h.Get("Location"), "digest", digestOf(data))
	if err != nil {
		return err
	}
	_, err = r.call(ctx, http.MethodPut, loc, bytes.NewReader(data), int64(len(data)), map[string]string{"Content-Type": "application/octet-stream"}, http.StatusCreated)
	return err
}

func (r reg) mount(ctx context.Context, repo, from, dgst string) error {
	_, err := r.call(ctx, http.MethodPost, "/v2/"+repo+"/blobs/uploads/?mount="+url.QueryEscape(dgst)+"&from="+url.QueryEscape(from), nil, 0, nil, http.StatusCreated)
	return err
}

func (r reg) putManifest(ctx context.Context, repo, ref string, m []byte) error {
	_, err := r.call(ctx, http.MethodPut, "/v2/"+repo+"/manifests/"+ref, bytes.NewReader(m), int64(len(m)), map[string]string{"Content-Type": mediaManifest}, http.StatusCreated)
	return err
}

// getJSON fetches a JSON document.
func (r reg) getJSON(ctx context.Context, path string, into any) error {
	resp, err := r.do(ctx, http.MethodGet, path, nil, 0, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := expect(resp, http.StatusOK); err != nil {
		return err
	}
	return json.NewDecoder(resp.Body).Decode(into)
}

const (
	mediaManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaConfig   = "application/vnd.oci.image.config.v1+json"
	mediaLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
)

// image is a small image: a random layer, its config and the manifest.
type image struct {
	layer, config, manifest []byte
}

func newImage(layerSize int) image {
	layer := make([]byte, layerSize)
	_, _ = rand.Read(layer)
	config := fmt.Appendf(nil, `{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[%q]}}`, digestOf(layer))
	manifest := fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":%q,"digest":%q,"size":%d},"layers":[{"mediaType":%q,"digest":%q,"size":%d}]}`,
		mediaManifest, mediaConfig, digestOf(config), len(config), mediaLayer, digestOf(layer), len(layer))
	return image{layer: layer, config: config, manifest: manifest}
}

func (r reg) pushImage(ctx context.Context, repo, tag string, img image) error {
	if err := r.putSmallBlob(ctx, repo, img.layer); err != nil {
		return err
	}
	if err := r.putSmallBlob(ctx, repo, img.config); err != nil {
		return err
	}
	return r.putManifest(ctx, repo, tag, img.manifest)
}

// mountImage links an image pushed to from into repo and tags it there.
func (r reg) mountImage(ctx context.Context, repo, from, tag string, img image) error {
	for _, b := range [][]byte{img.layer, img.config} {
		if err := r.mount(ctx, repo, from, digestOf(b)); err != nil {
			return err
		}
	}
	return r.putManifest(ctx, repo, tag, img.manifest)
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}
