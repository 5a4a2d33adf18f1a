package exec

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestOutput(t *testing.T) {
	tests := []struct {
		name     string
		cmd      *Cmd
		want     string
		wantCode int
		wantErr  []string
	}{
		{name: "stdout", cmd: Command("sh", "-c", "echo hi"), want: "hi\n"},
		{name: "stdin", cmd: &Cmd{Name: "cat", Stdin: strings.NewReader("in")}, want: "in"},
		{name: "exit code and stderr", cmd: Command("sh", "-c", "echo partial; echo boom >&2; exit 3"), want: "partial\n", wantCode: 3, wantErr: []string{"sh -c", "exit status 3", "boom"}},
		{name: "missing program", cmd: Command("idpbuilder-no-such-program"), wantCode: -1, wantErr: []string{"idpbuilder-no-such-program"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := tt.cmd.Output(context.Background())
			assert.Equal(t, tt.want, string(out))
			if tt.wantErr == nil {
				require.NoError(t, err)
				return
			}
			var e *Error
			require.ErrorAs(t, err, &e)
			assert.Equal(t, tt.wantCode, e.ExitCode)
			for _, w := range tt.wantErr {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
	_, err := Command("idpbuilder-no-such-program").Output(context.Background())
	assert.True(t, NotFound(err))
}

func TestContextCancels(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := Command("sleep", "30").Run(ctx)
	require.Error(t, err)
	assert.True(t, errors.Is(err, context.DeadlineExceeded), err.Error())
}
