// Package autoexport stands in for OpenTelemetry's autoexport in idpbuilder,
// which has no tracing exporters (see third_party/README.md).
package autoexport

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/sdk/trace"
)

// ErrNotBuiltIn is what every constructor returns.
var ErrNotBuiltIn = errors.New("idpbuilder is built without OpenTelemetry exporters")

// SpanOption configures NewSpanExporter; none exist in this build.
type SpanOption interface{ spanOption() }

// NewSpanExporter fails: there is no exporter to build.
func NewSpanExporter(context.Context, ...SpanOption) (trace.SpanExporter, error) {
	return nil, ErrNotBuiltIn
}
