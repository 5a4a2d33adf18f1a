package registry

import (
	"context"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/tracing"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/contrib/exporters/autoexport"
)

// go.mod replaces go-redis, redisotel and OpenTelemetry's autoexport with the
// stand-ins in third_party/ (see its README). These tests hold the promises
// that makes: our engine never asks for what was removed, and asking for it
// fails at start, saying why.

func TestEngineConfigNeedsNoRemovedModule(t *testing.T) {
	for _, age := range []time.Duration{0, time.Minute, 168 * time.Hour} {
		cfg := distributionConfig(Options{DataDir: t.TempDir(), Addr: "127.0.0.1:0", UploadPurgeAge: age}, "secret")
		assert.Zero(t, cfg.Redis, "a Redis setting needs the real go-redis")
		if cache, ok := cfg.Storage["cache"]; ok {
			assert.NotEqual(t, "redis", cache["blobdescriptor"], "the Redis blob descriptor cache needs the real go-redis")
		}
	}
}

func TestRedisSettingFailsAtStart(t *testing.T) {
	cfg := distributionConfig(Options{DataDir: t.TempDir(), Addr: "127.0.0.1:0", UploadPurgeAge: time.Hour}, "secret")
	cfg.Redis.Options.Addrs = []string{"127.0.0.1:6379"}
	app, err := newApp(context.Background(), cfg)
	require.Error(t, err)
	assert.Nil(t, app)
	assert.Contains(t, err.Error(), "built without Redis support")
	assert.Contains(t, err.Error(), "remove the redis settings")
}

func TestTracingInitFailsClearly(t *testing.T) {
	err := tracing.InitOpenTelemetry(context.Background())
	require.ErrorIs(t, err, autoexport.ErrNotBuiltIn)
	assert.Contains(t, err.Error(), "built without OpenTelemetry exporters")
}
