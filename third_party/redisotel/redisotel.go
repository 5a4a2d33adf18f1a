// Package redisotel stands in for go-redis's OpenTelemetry instrumentation in
// idpbuilder, which has no Redis client (see third_party/README.md).
package redisotel

import (
	"errors"

	"github.com/redis/go-redis/v9"
)

// MetricsOption configures InstrumentMetrics; none exist in this build.
type MetricsOption interface{ metricsOption() }

// InstrumentMetrics fails: there is no client to instrument.
func InstrumentMetrics(redis.UniversalClient, ...MetricsOption) error {
	return errors.New("idpbuilder is built without Redis metrics")
}
