// Package exec is the one way idpbuilder runs a program to completion: docker on
// this machine, or sh and kubectl inside a cluster node. Code that runs programs
// takes a Cmder, so this machine, a node and a test's recorder (see exectest) are
// interchangeable; every failure is an *Error carrying the command, where it ran,
// its exit code and the tail of its stderr, so it explains itself.
//
// The model is kind's pkg/exec (Cmd and Cmder); the difference is one shared
// implementation of the error and stderr handling, fed by a Runner per place.
package exec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	osexec "os/exec"
	"strings"
	"sync"
)

// Cmd is one command, ready to run.
type Cmd interface {
	SetStdin(io.Reader) Cmd
	// SetStdout sends the program's stdout to w (else it is discarded).
	SetStdout(io.Writer) Cmd
	// SetStderr sends the program's stderr to w too; its tail is kept for the error either way.
	SetStderr(io.Writer) Cmd
	// SetEnv replaces the environment ("KEY=value" entries).
	SetEnv(env ...string) Cmd
	// Run runs the command to completion; a failure is an *Error.
	Run() error
}

// Cmder makes commands that run in one place, bound to ctx: cancelling it stops them.
type Cmder interface {
	Command(ctx context.Context, name string, args ...string) Cmd
}

// Spec is a command as a Runner carries it out. Stdout and Stderr are never nil.
type Spec struct {
	Name   string
	Args   []string
	Env    []string // nil: the place's own environment
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// Runner carries out a Spec in one place. It returns the program's exit code (0
// on success, -1 when the program did not run or was killed) and, on failure, an
// error saying why; Cmd.Run wraps that error into an *Error.
type Runner func(ctx context.Context, s Spec) (exitCode int, err error)

// NewCmder returns a Cmder whose commands run through run. where names the place
// in errors, e.g. "node dev-control-plane"; "" means this machine.
func NewCmder(where string, run Runner) Cmder {
	return cmder{where: where, run: run}
}

// Local returns the Cmder for programs on this machine.
func Local() Cmder { return NewCmder("", runLocal) }

// ErrNotFound is what a Runner returns when the program is not installed.
var ErrNotFound = osexec.ErrNotFound

// NotFound reports whether err means the program is not installed.
func NotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// Error is a command that could not run or exited non-zero.
type Error struct {
	// Where the command ran: "" for this machine, else e.g. "node dev-control-plane".
	Where string
	// Argv is the program and its arguments (never secret: callers pass
	// credentials on stdin, not in argv).
	Argv []string
	// ExitCode is the program's exit code, -1 when it did not run or was killed.
	ExitCode int
	// Stderr is the last lines the program wrote to stderr.
	Stderr string
	Err    error
}

func (e *Error) Error() string {
	msg := e.Command() + ": " + e.Err.Error()
	if e.Where != "" {
		msg = "on " + e.Where + ": " + msg
	}
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Command renders the command line.
func (e *Error) Command() string { return strings.Join(e.Argv, " ") }

// Output runs cmd and returns its stdout (also what it wrote before failing).
func Output(cmd Cmd) ([]byte, error) {
	var out bytes.Buffer
	err := cmd.SetStdout(&out).Run()
	return out.Bytes(), err
}

// OutputString runs cmd and returns its stdout without surrounding white space.
func OutputString(cmd Cmd) (string, error) {
	out, err := Output(cmd)
	return strings.TrimSpace(string(out)), err
}

type cmder struct {
	where string
	run   Runner
}

func (c cmder) Command(ctx context.Context, name string, args ...string) Cmd {
	return &cmd{ctx: ctx, where: c.where, run: c.run, spec: Spec{Name: name, Args: args}}
}

type cmd struct {
	ctx   context.Context
	where string
	run   Runner
	spec  Spec
}

func (c *cmd) SetStdin(r io.Reader) Cmd  { c.spec.Stdin = r; return c }
func (c *cmd) SetStdout(w io.Writer) Cmd { c.spec.Stdout = w; return c }
func (c *cmd) SetStderr(w io.Writer) Cmd { c.spec.Stderr = w; return c }
func (c *cmd) SetEnv(env ...string) Cmd  { c.spec.Env = env; return c }

// stderrTail bounds what is kept of a program's stderr for its error.
const stderrTail = 8 << 10

// stderrLines is how many of the last stderr lines an error shows.
const stderrLines = 8

func (c *cmd) Run() error {
	s := c.spec
	tail := &tailBuffer{max: stderrTail}
	if s.Stdout != nil && sameWriter(s.Stdout, s.Stderr) {
		// One writer for both streams (combined output) is written from two
		// goroutines: serialise them.
		lw := &lockedWriter{w: s.Stdout}
		s.Stdout, s.Stderr = lw, lw
	}
	if s.Stderr != nil {
		s.Stderr = io.MultiWriter(s.Stderr, tail)
	} else {
		s.Stderr = tail
	}
	if s.Stdout == nil {
		s.Stdout = io.Discard
	}
	code, err := c.run(c.ctx, s)
	if err == nil {
		return nil
	}
	if cerr := c.ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		err = fmt.Errorf("%w (%w)", cerr, err)
	}
	return &Error{
		Where:    c.where,
		Argv:     append([]string{s.Name}, s.Args...),
		ExitCode: code,
		Stderr:   lastLines(strings.TrimSpace(tail.String()), stderrLines),
		Err:      err,
	}
}

func runLocal(ctx context.Context, s Spec) (int, error) {
	c := osexec.CommandContext(ctx, s.Name, s.Args...)
	c.Stdin, c.Stdout, c.Stderr, c.Env = s.Stdin, s.Stdout, s.Stderr, s.Env
	err := c.Run()
	if err == nil {
		return 0, nil
	}
	var ee *osexec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), err
	}
	return -1, err
}

func sameWriter(a, b io.Writer) (same bool) {
	defer func() {
		if recover() != nil { // writers of a non-comparable type
			same = false
		}
	}()
	return a == b
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.b) }

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
