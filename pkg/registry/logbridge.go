package registry

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"
)

// distribution logs through logrus's process-wide standard logger and offers no way
// to hand it a logger of ours (its context logger key is internal). So the bridge is
// process-wide too: logrus writes nothing itself, and every entry is forwarded to
// slog.Default(), which the CLI points at its stderr handler. distribution's Info
// entries are per-request chatter ("response completed", ...) and go to Debug.
var bridgeOnce sync.Once

func bridgeLogrus(debug bool) {
	bridgeOnce.Do(func() {
		std := logrus.StandardLogger()
		std.SetOutput(io.Discard)
		std.ReplaceHooks(logrus.LevelHooks{})
		std.AddHook(slogHook{})
	})
	lvl := logrus.WarnLevel
	if debug {
		lvl = logrus.DebugLevel
	}
	logrus.StandardLogger().SetLevel(lvl)
}

type slogHook struct{}

func (slogHook) Levels() []logrus.Level { return logrus.AllLevels }

func (slogHook) Fire(e *logrus.Entry) error {
	var lvl slog.Level
	switch e.Level {
	case logrus.PanicLevel, logrus.FatalLevel, logrus.ErrorLevel:
		lvl = slog.LevelError
		// distribution logs every non-2xx response at error level, including the
		// 404s clients provoke on purpose (HEAD before push). Only 5xx are ours.
		if st, ok := e.Data["http.response.status"].(int); ok && st < 500 {
			lvl = slog.LevelDebug
		}
		// An upload body cut by a quota or the disk guard fails distribution's
		// read: the guard logs the refusal, distribution's error is noise.
		if detail, _ := e.Data["err.detail"].(string); isGuardRefusal(e.Message) || isGuardRefusal(detail) {
			lvl = slog.LevelDebug
		}
	case logrus.WarnLevel:
		lvl = slog.LevelWarn
		// Every request by a sha512 digest resolves its alias link, and
		// distribution warns about each one.
		if strings.HasPrefix(e.Message, "looking up blob with canonical target") {
			lvl = slog.LevelDebug
		}
	default:
		lvl = slog.LevelDebug
	}
	ctx := e.Context
	if ctx == nil {
		ctx = context.Background()
	}
	logger := slog.Default()
	if !logger.Enabled(ctx, lvl) {
		return nil
	}
	attrs := make([]slog.Attr, 0, len(e.Data)+1)
	attrs = append(attrs, slog.String("component", "distribution"))
	for k, v := range e.Data {
		if k == "go.version" {
			continue
		}
		if str, ok := v.(string); ok {
			v = redactQuery(str)
		}
		attrs = append(attrs, slog.Any(k, v))
	}
	logger.LogAttrs(ctx, lvl, e.Message, attrs...)
	return nil
}

// redactQuery drops the query string of a logged URI or URL: an upload's
// _state token is a signed credential for the upload and must not reach logs.
func redactQuery(s string) string {
	if !strings.HasPrefix(s, "/") && !strings.HasPrefix(s, "http://") && !strings.HasPrefix(s, "https://") {
		return s
	}
	if i := strings.IndexByte(s, '?'); i >= 0 {
		return s[:i] + "?…"
	}
	return s
}
