package cli

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// progress shows a platform operation's steps, one line per step ending with
// ✓ or ✗ and the time it took. On a terminal the line shows while its step
// runs; elsewhere (a log, a pipe) it is written once, when the step ends.
// Other output (kind's own lines) goes through Write, below the open step.
type progress struct {
	mu      sync.Mutex
	w       io.Writer
	tty     bool
	now     func() time.Time
	title   string
	started time.Time
	open    bool
	// pending: on a terminal, the open step's line is shown, without its newline.
	pending bool
}

func newProgress(w io.Writer) *progress {
	return &progress{w: w, tty: isTerminal(w), now: time.Now}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Start implements platform.Status.
func (p *progress) Start(title string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.open {
		p.open, p.started = true, p.now()
	}
	p.title = title
	if p.tty {
		p.clearPending()
		fmt.Fprintf(p.w, " • %s ...", title)
		p.pending = true
	}
}

// End implements platform.Status.
func (p *progress) End(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.open {
		return
	}
	mark := "✓"
	if err != nil {
		mark = "✗"
	}
	if p.tty {
		p.clearPending()
		mark = map[string]string{"✓": "\x1b[32m✓\x1b[0m", "✗": "\x1b[31m✗\x1b[0m"}[mark]
	}
	fmt.Fprintf(p.w, " %s %s (%s)\n", mark, p.title, elapsed(p.now().Sub(p.started)))
	p.open = false
}

// clearPending erases the open step's line, to write it (or its end) again.
func (p *progress) clearPending() {
	if p.pending {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.pending = false
	}
}

// Write lets other lines through; on a terminal the open step's line stays
// above them.
func (p *progress) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pending {
		fmt.Fprintln(p.w)
		p.pending = false
	}
	return p.w.Write(b)
}

// elapsed renders a step's duration: tenths of seconds under a minute.
func elapsed(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return d.Round(time.Second).String()
}
