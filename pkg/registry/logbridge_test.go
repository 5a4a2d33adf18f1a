package registry

import (
	"bytes"
	"log/slog"
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBridgeRedactsQueryStrings(t *testing.T) {
	var buf bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() { slog.SetDefault(prev) })
	e := logrus.NewEntry(logrus.StandardLogger()).WithFields(logrus.Fields{
		"http.request.uri": "/v2/a/blobs/uploads/0123?_state=SECRETSTATE&digest=sha256:00",
		"url":              "http://127.0.0.1:5001/v2/a/blobs/uploads/0123?_state=SECRETSTATE",
		"vars.name":        "a",
	})
	e.Level, e.Message = logrus.ErrorLevel, "canonical digest does match provided digest"
	require.NoError(t, slogHook{}.Fire(e))
	assert.NotContains(t, buf.String(), "SECRETSTATE")
	assert.Contains(t, buf.String(), "/v2/a/blobs/uploads/0123?…")
	assert.Contains(t, buf.String(), "vars.name=a")
}
