package platform

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"path/filepath"
	"time"

	"github.com/idpbuilder/idpbuilder/pkg/kind"
	"github.com/idpbuilder/idpbuilder/pkg/platform/internal/steps"
	"github.com/idpbuilder/idpbuilder/pkg/registryapi"
	"github.com/idpbuilder/idpbuilder/pkg/registryclient"
	"github.com/idpbuilder/idpbuilder/pkg/registryruntime"
)

// Report is the state of a cluster's registry and of its wiring.
type Report struct {
	Cluster      string               `json:"cluster"`
	Mode         registryruntime.Mode `json:"mode"`
	Instance     string               `json:"instance"` // container name or pid file
	State        string               `json:"state"`    // running, exited, ..., or missing
	RestartCount int                  `json:"restartCount"`
	Address      string               `json:"address"`
	Health       string               `json:"health"` // ok, or what is wrong
	// Checks is the registry's detailed health (GET /health), when it has one.
	Checks       *registryapi.Health `json:"checks,omitempty"`
	DataDir      string              `json:"dataDir"`
	StorageBytes int64               `json:"storageBytes"`
	Repositories int                 `json:"repositories"`
	Tags         int                 `json:"tags"`
	Wiring       *kind.WiringStatus  `json:"wiring,omitempty"`
	WiringError  string              `json:"wiringError,omitempty"`
}

// Healthy reports whether the registry runs, answers, is not unhealthy and is
// fully wired into the cluster.
func (r Report) Healthy() bool {
	return r.State == registryruntime.StatusRunning && r.Health == "ok" && r.Wiring != nil && r.Wiring.OK() &&
		(r.Checks == nil || r.Checks.Status != registryapi.Unhealthy)
}

// Status reports on cluster name's registry: its instance, whether it answers,
// its health checks, what it stores, and the cluster's wiring to it.
func (p *Platform) Status(ctx context.Context, name string, given Given) (Report, error) {
	c, err := p.open(name, given, nil)
	if err != nil {
		return Report{}, err
	}
	if _, err := c.Server(ctx); err != nil {
		return Report{}, err
	}
	rt, err := c.NewRuntime(ctx, c.Settings.Mode)
	if err != nil {
		return Report{}, err
	}
	in := info(c)
	r := Report{
		Cluster: name, Mode: rt.Mode(), Instance: rt.Describe(), Address: in.HostAddr,
		DataDir: in.DataDir, StorageBytes: dirSize(in.DataDir),
	}
	st, err := rt.State(ctx)
	if err != nil {
		return r, err
	}
	r.State, r.RestartCount = st.Status, st.RestartCount
	if r.State == registryruntime.StatusMissing {
		r.Health = "no registry (run `idpbuilder create`)"
		return r, nil
	}
	p.probe(ctx, c, &r)
	wiring(ctx, c, rt, &r)
	return r, nil
}

// probe fills in what the registry itself says: readiness, health checks, contents.
func (p *Platform) probe(ctx context.Context, c *steps.Context, r *Report) {
	client, scheme := p.client(c, "", false)
	if r.State != registryruntime.StatusRunning {
		r.Health = "not running (start it: `idpbuilder registry start`)"
		return
	}
	r.Health = "ok"
	if err := registryclient.Ready(ctx, client.Transport, fmt.Sprintf("%s://%s", scheme, client.Registry)); err != nil {
		r.Health = err.Error()
	}
	hctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	h, err := client.Health(hctx)
	cancel()
	var ae *registryclient.APIError
	switch {
	case err == nil:
		r.Checks = &h
	case errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound:
		// A registry from before detailed health: /readyz is all there is.
	case r.Health == "ok":
		r.Health = "health: " + err.Error()
	}
	if r.Health != "ok" {
		return
	}
	entries, err := client.List(ctx, "")
	if err != nil {
		r.Health = "catalog: " + err.Error()
	}
	repos := map[string]bool{}
	for _, e := range entries {
		repos[e.Repository] = true
	}
	r.Repositories, r.Tags = len(repos), len(entries)
}

// wiring fills in what the cluster has of the registry wiring, or why it cannot be read.
func wiring(ctx context.Context, c *steps.Context, rt registryruntime.Runtime, r *Report) {
	ok, err := c.Cluster.Exists(ctx)
	if err != nil || !ok {
		r.WiringError = fmt.Sprintf("cluster %q does not exist", c.Name())
		return
	}
	ep, err := rt.Endpoint(ctx)
	if err != nil {
		r.WiringError = err.Error()
		return
	}
	reg, err := c.ClusterRegistry(ep)
	if err != nil {
		r.WiringError = err.Error()
		return
	}
	ws, err := c.Cluster.Wiring(ctx, reg)
	if err != nil {
		r.WiringError = err.Error()
		return
	}
	r.Wiring = &ws
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}
