package cli

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/idpbuilder/idpbuilder/pkg/config"
	"github.com/idpbuilder/idpbuilder/pkg/kind"
	"github.com/idpbuilder/idpbuilder/pkg/registry"
	"github.com/idpbuilder/idpbuilder/pkg/registryruntime"
)

// TestHintsAndExitCodes: library errors name no flags; the CLI adds the flag
// that changes the outcome, and picks the exit code from the error's type,
// also when the error arrives wrapped.
func TestHintsAndExitCodes(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("create: %w", err) }
	tests := []struct {
		name     string
		err      error
		wantHint string
		wantCode int
	}{
		{name: "foreign cluster", err: wrap(&kind.ForeignClusterError{Cluster: "dev", Node: "dev-control-plane", Reason: "r"}),
			wantHint: "idpbuilder create --name dev --recreate", wantCode: ExitFailure},
		{name: "registry port taken", err: wrap(&registryruntime.PortInUseError{Port: 5001, Err: errors.New("x")}),
			wantHint: "--registry-port", wantCode: ExitFailure},
		{name: "serve address taken", err: Usage(&registry.ListenError{Addr: "127.0.0.1:5000", InUse: true}), wantHint: "--addr", wantCode: ExitUsage},
		{name: "serve address unusable", err: Usage(&registry.ListenError{Addr: "nope:1", Err: errors.New("no such host")}), wantCode: ExitUsage},
		{name: "data dir", err: Usage(wrap(&registry.DataDirError{Dir: "/d", Err: errors.New("denied")})), wantHint: "--data-dir", wantCode: ExitUsage},
		{name: "config", err: wrap(&config.Error{}), wantCode: ExitUsage},
		{name: "anything else", err: errors.New("boom"), wantCode: ExitFailure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := hint(tt.err)
			if tt.wantHint == "" {
				assert.Empty(t, h)
			} else {
				assert.Contains(t, h, tt.wantHint)
			}
			assert.Equal(t, tt.wantCode, exitCode(tt.err))
		})
	}
}

func TestUnknownCommandIsUsage(t *testing.T) {
	code, _, errOut := run(t, context.Background(), nil, "crate")
	assert.Equal(t, ExitUsage, code)
	assert.Contains(t, errOut.String(), `unknown command "crate" for "idpbuilder"`)
}
