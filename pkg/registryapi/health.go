package registryapi

// HealthPath is the detailed health endpoint; /healthz and /readyz stay the
// short probes.
const HealthPath = "/health"

// HealthStatus is the outcome of a check, and of all of them.
type HealthStatus string

// The health statuses, from best to worst.
const (
	Healthy   HealthStatus = "healthy"
	Degraded  HealthStatus = "degraded"  // serving, but needs attention soon
	Unhealthy HealthStatus = "unhealthy" // cannot serve as it should
)

// Rank orders statuses: higher is worse; unknown values rank as unhealthy.
func (s HealthStatus) Rank() int {
	switch s {
	case Healthy:
		return 0
	case Degraded:
		return 1
	}
	return 2
}

// Health is the body of GET /health: the worst status of its checks.
type Health struct {
	Status HealthStatus  `json:"status"`
	Checks []HealthCheck `json:"checks"`
}

// HealthCheck is one check's outcome. Messages never contain machine paths:
// anonymous clients may read them.
type HealthCheck struct {
	Name       string       `json:"name"`
	Status     HealthStatus `json:"status"`
	Message    string       `json:"message"`
	DurationMS float64      `json:"duration_ms"`
}
