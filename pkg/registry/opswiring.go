package registry

import (
	"context"

	"github.com/idpbuilder/idpbuilder/pkg/registryapi"
)

// wireOps connects garbage collection, quotas and the disk guard to the
// operations views (metrics, statistics, /health). It runs once, in New: the
// sources read the registry's current state whenever they are asked, so they
// survive Close and Open.
func (r *Registry) wireOps() {
	r.setGCSource(func() *registryapi.GCSummary {
		last := r.LastGC()
		if last == nil {
			return nil
		}
		s := gcSummary(*last)
		return &s
	})
	r.OnGC(func(res registryapi.GCResult) { r.gcRan(gcSummary(res)) })
	if r.opts.Quota > 0 || r.opts.RepoQuota > 0 {
		r.setQuotaSource(func() *registryapi.QuotaSummary {
			st, err := r.QuotaStatus(context.Background())
			if err != nil || !st.Enabled {
				return nil
			}
			return quotaSummary(st)
		})
	}
	r.addHealthCheck("writes", func(context.Context) (registryapi.HealthStatus, string) {
		r.mu.Lock()
		g := r.disk
		r.mu.Unlock()
		if g == nil {
			return registryapi.Unhealthy, "the registry is not open"
		}
		if st := g.status(); st.Full {
			return registryapi.Unhealthy, st.Reason
		}
		return registryapi.Healthy, "uploads are accepted"
	})
}

func gcSummary(res registryapi.GCResult) registryapi.GCSummary {
	return registryapi.GCSummary{
		StartedAt: res.StartedAt, DurationMS: float64(res.DurationMS), DryRun: res.DryRun,
		DeletedBlobs: len(res.Blobs), DeletedManifests: len(res.Manifests), FreedBytes: res.BytesFreed,
		Error: res.Error,
	}
}

func quotaSummary(st registryapi.QuotaStatus) *registryapi.QuotaSummary {
	s := &registryapi.QuotaSummary{UsedBytes: st.Used, LimitBytes: st.Limit}
	if st.RepoLimit > 0 {
		for _, u := range st.Repositories {
			s.Repositories = append(s.Repositories, registryapi.RepositoryQuota{Name: u.Name, UsedBytes: u.Used, LimitBytes: st.RepoLimit})
		}
	}
	return s
}
