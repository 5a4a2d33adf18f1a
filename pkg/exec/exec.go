// Package exec is the one way idpbuilder runs external programs (docker, kubectl in a
// node): always with a context, and with the program's stderr in the error so a
// failure explains itself.
package exec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	osexec "os/exec"
	"strings"
)

// Cmd is a command to run.
type Cmd struct {
	Name  string
	Args  []string
	Stdin io.Reader
	// Stdout, if set, receives the output as it is produced instead of Output collecting it.
	Stdout io.Writer
	// Env, if set, replaces the environment (see os/exec.Cmd.Env).
	Env []string
}

// Command returns a Cmd for name with args.
func Command(name string, args ...string) *Cmd {
	return &Cmd{Name: name, Args: args}
}

// Error is a command that could not start or exited non-zero.
type Error struct {
	Command  string
	ExitCode int // -1 when the program did not run
	Stderr   string
	Err      error
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("%s: %v", e.Command, e.Err)
	if s := strings.TrimSpace(e.Stderr); s != "" {
		msg += ": " + lastLines(s, 8)
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// NotFound reports whether err means the program is not installed.
func NotFound(err error) bool {
	return errors.Is(err, osexec.ErrNotFound)
}

// Output runs the command and returns its stdout.
func (c *Cmd) Output(ctx context.Context) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := osexec.CommandContext(ctx, c.Name, c.Args...)
	cmd.Stdin = c.Stdin
	cmd.Stdout = &stdout
	if c.Stdout != nil {
		cmd.Stdout = c.Stdout
	}
	cmd.Stderr = &stderr
	if c.Env != nil {
		cmd.Env = c.Env
	}
	if err := cmd.Run(); err != nil {
		code := -1
		var ee *osexec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return stdout.Bytes(), &Error{Command: c.String(), ExitCode: code, Stderr: stderr.String(), Err: err}
	}
	return stdout.Bytes(), nil
}

// Run runs the command, discarding stdout unless Stdout is set.
func (c *Cmd) Run(ctx context.Context) error {
	_, err := c.Output(ctx)
	return err
}

// String renders the command line (arguments are not secret: callers never put
// credentials in argv).
func (c *Cmd) String() string {
	return strings.TrimSpace(c.Name + " " + strings.Join(c.Args, " "))
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
