package exec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLocal(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		cmd      Cmd
		want     string
		wantCode int
		wantErr  []string
	}{
		{name: "stdout", cmd: Local().Command(ctx, "sh", "-c", "echo hi"), want: "hi\n"},
		{name: "stdin", cmd: Local().Command(ctx, "cat").SetStdin(strings.NewReader("in")), want: "in"},
		{name: "env replaced", cmd: Local().Command(ctx, "sh", "-c", `printf %s "$ONLY"`).SetEnv("ONLY=this"), want: "this"},
		{name: "exit code and stderr", cmd: Local().Command(ctx, "sh", "-c", "echo partial; echo boom >&2; exit 3"),
			want: "partial\n", wantCode: 3, wantErr: []string{"sh -c", "exit status 3", ": boom"}},
		{name: "missing program", cmd: Local().Command(ctx, "idpbuilder-no-such-program"), wantCode: -1,
			wantErr: []string{"idpbuilder-no-such-program", "executable file not found"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := Output(tt.cmd)
			assert.Equal(t, tt.want, string(out))
			if tt.wantErr == nil {
				require.NoError(t, err)
				return
			}
			var e *Error
			require.ErrorAs(t, err, &e)
			assert.Equal(t, tt.wantCode, e.ExitCode)
			assert.Empty(t, e.Where)
			for _, w := range tt.wantErr {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
	_, err := Output(Local().Command(ctx, "idpbuilder-no-such-program"))
	assert.True(t, NotFound(err))
	_, err = Output(Local().Command(ctx, "false"))
	assert.False(t, NotFound(err))
}

func TestOutputString(t *testing.T) {
	out, err := OutputString(Local().Command(context.Background(), "echo", "  spaced  "))
	require.NoError(t, err)
	assert.Equal(t, "spaced", out)
}

// TestStderrTail: only the last lines of a long stderr reach the error, while a
// writer the caller set still gets all of it.
func TestStderrTail(t *testing.T) {
	var all bytes.Buffer
	script := `i=1; while [ $i -le 50 ]; do echo "line $i" >&2; i=$((i+1)); done; exit 1`
	err := Local().Command(context.Background(), "sh", "-c", script).SetStderr(&all).Run()
	var e *Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, "line 43\nline 44\nline 45\nline 46\nline 47\nline 48\nline 49\nline 50", e.Stderr)
	assert.Equal(t, 50, strings.Count(all.String(), "\n"))
}

func TestTailBufferKeepsTheEnd(t *testing.T) {
	tb := &tailBuffer{max: 10}
	for i := range 100 {
		fmt.Fprintf(tb, "%02d,", i)
	}
	assert.Equal(t, "7,98,99,", tb.String()[2:])
	assert.Len(t, tb.String(), 10)
}

// TestCombinedOutput: one writer for stdout and stderr gets both, in a race-free way.
func TestCombinedOutput(t *testing.T) {
	var both bytes.Buffer
	err := Local().Command(context.Background(), "sh", "-c", "echo out; echo err >&2").SetStdout(&both).SetStderr(&both).Run()
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"out", "err"}, strings.Fields(both.String()))
}

func TestContextCancels(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := Local().Command(ctx, "sleep", "30").Run()
	require.Error(t, err)
	assert.True(t, errors.Is(err, context.DeadlineExceeded), err.Error())
	var e *Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, -1, e.ExitCode, "killed")
}

// TestNewCmder: a Runner for another place gets the spec, and its failures
// become the same *Error, naming the place.
func TestNewCmder(t *testing.T) {
	var got Spec
	node := NewCmder("node n1", func(_ context.Context, s Spec) (int, error) {
		got = s
		fmt.Fprint(s.Stdout, "listed")
		fmt.Fprint(s.Stderr, "warning: x\nno such file")
		if s.Name == "fail" {
			return 2, errors.New("exit status 2")
		}
		return 0, nil
	})
	out, err := OutputString(node.Command(context.Background(), "ls", "/etc").SetEnv("A=1"))
	require.NoError(t, err)
	assert.Equal(t, "listed", out)
	assert.Equal(t, "ls", got.Name)
	assert.Equal(t, []string{"/etc"}, got.Args)
	assert.Equal(t, []string{"A=1"}, got.Env)
	assert.Nil(t, got.Stdin)

	err = node.Command(context.Background(), "fail", "now").Run()
	var e *Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, &Error{Where: "node n1", Argv: []string{"fail", "now"}, ExitCode: 2, Stderr: "warning: x\nno such file", Err: e.Err}, e)
	assert.Equal(t, "on node n1: fail now: exit status 2: warning: x\nno such file", err.Error())
	assert.Equal(t, "fail now", e.Command())
}

// TestSameWriter: writers of a type that cannot be compared are never the same.
func TestSameWriter(t *testing.T) {
	var b bytes.Buffer
	assert.True(t, sameWriter(&b, &b))
	assert.False(t, sameWriter(&b, &bytes.Buffer{}))
	assert.False(t, sameWriter(sliceWriter{}, sliceWriter{}))
}

// sliceWriter is a writer type that == cannot compare.
type sliceWriter []byte

func (sliceWriter) Write(p []byte) (int, error) { return len(p), nil }
