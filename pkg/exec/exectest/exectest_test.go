package exectest

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/idpbuilder/idpbuilder/pkg/exec"
)

func TestRecorder(t *testing.T) {
	ctx := context.Background()
	r := New()
	r.On("docker", "inspect").Reply(OK("first"), Fail(1, "Error: No such object"))
	r.On("docker", "inspect", "special").Reply(OK("override"))
	r.OnAt("node a", "cat").Reply(OK("on a"))
	r.On("missing").Reply(Response{Err: exec.ErrNotFound})

	out, err := exec.OutputString(r.Command(ctx, "docker", "inspect", "x"))
	require.NoError(t, err)
	assert.Equal(t, "first", out)

	for range 2 { // the last response repeats
		_, err = exec.Output(r.Command(ctx, "docker", "inspect", "x"))
		var e *exec.Error
		require.ErrorAs(t, err, &e)
		assert.Equal(t, 1, e.ExitCode)
		assert.Equal(t, "Error: No such object", e.Stderr)
	}

	out, _ = exec.OutputString(r.Command(ctx, "docker", "inspect", "special"))
	assert.Equal(t, "override", out, "later rules win")

	out, _ = exec.OutputString(r.At("node a").Command(ctx, "cat", "/f"))
	assert.Equal(t, "on a", out)
	out, err = exec.OutputString(r.At("node b").Command(ctx, "cat", "/f"))
	require.NoError(t, err, "unmatched commands succeed")
	assert.Empty(t, out)

	_, err = exec.Output(r.Command(ctx, "missing"))
	assert.True(t, exec.NotFound(err))

	require.NoError(t, r.Command(ctx, "sh", "-c", "cat > f").SetStdin(strings.NewReader("data")).SetEnv("K=v").Run())

	assert.Equal(t, []string{
		"docker inspect x", "docker inspect x", "docker inspect x", "docker inspect special",
		"node a: cat /f", "node b: cat /f", "missing", "sh -c cat > f",
	}, r.Lines())
	sh := r.Find("sh", "-c")
	require.Len(t, sh, 1)
	assert.Equal(t, []byte("data"), sh[0].Stdin)
	assert.Equal(t, []string{"K=v"}, sh[0].Env)
	assert.Len(t, r.Find("docker"), 4)
}

func TestEmptyRuleSucceeds(t *testing.T) {
	r := New()
	r.On("docker", "start")
	require.NoError(t, r.Command(context.Background(), "docker", "start", "x").Run())
}
