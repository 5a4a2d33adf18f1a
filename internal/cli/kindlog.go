package cli

import (
	"fmt"
	"io"
	"strings"
	"sync"

	kindlog "sigs.k8s.io/kind/pkg/log"
)

// kindLogger shows kind's progress lines (V(0)) on w and hides its debug chatter.
type kindLogger struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *kindLogger) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	// kind's status lines carry their own newline; blank lines add nothing.
	msg := strings.TrimRight(fmt.Sprintf(format, args...), "\n")
	if strings.TrimSpace(msg) == "" {
		return
	}
	fmt.Fprintln(l.w, msg)
}

func (l *kindLogger) Warn(message string)                      { l.printf("WARNING: %s", message) }
func (l *kindLogger) Warnf(format string, args ...any)         { l.Warn(fmt.Sprintf(format, args...)) }
func (l *kindLogger) Error(message string)                     { l.printf("ERROR: %s", message) }
func (l *kindLogger) Errorf(format string, args ...any)        { l.Error(fmt.Sprintf(format, args...)) }
func (l *kindLogger) V(level kindlog.Level) kindlog.InfoLogger { return kindInfo{l: l, on: level <= 0} }

type kindInfo struct {
	l  *kindLogger
	on bool
}

func (i kindInfo) Info(message string) {
	if i.on {
		i.l.printf("%s", message)
	}
}
func (i kindInfo) Infof(format string, args ...any) { i.Info(fmt.Sprintf(format, args...)) }
func (i kindInfo) Enabled() bool                    { return i.on }
