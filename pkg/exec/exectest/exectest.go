// Package exectest records the commands code sends through pkg/exec and answers
// them from a script.
//
// It is the one fake in idpbuilder's tests, on purpose: unit tests of pkg/docker,
// pkg/kind and pkg/registryruntime check *what we send* to docker, sh and kubectl
// (arguments, stdin, order) and how we read their answers, including failures.
// Whether the real programs accept what we send is proven by the e2e suite
// against real Docker and Kind, never here.
package exectest

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/idpbuilder/idpbuilder/pkg/exec"
)

// Call is one command the code under test ran.
type Call struct {
	// Where is the place the Cmder was made for ("" for this machine).
	Where string
	// Argv is the program and its arguments.
	Argv  []string
	Stdin []byte
	Env   []string
}

// String renders the call as a command line, with its place.
func (c Call) String() string {
	if c.Where == "" {
		return strings.Join(c.Argv, " ")
	}
	return c.Where + ": " + strings.Join(c.Argv, " ")
}

// Response is how a scripted program answers.
type Response struct {
	Stdout string
	Stderr string
	// ExitCode other than 0 fails the command.
	ExitCode int
	// Err, when set, means the program could not run at all (e.g. exec.ErrNotFound).
	Err error
}

// OK answers with stdout and exit code 0.
func OK(stdout string) Response { return Response{Stdout: stdout} }

// Fail answers with stderr and a non-zero exit code.
func Fail(code int, stderr string) Response { return Response{ExitCode: code, Stderr: stderr} }

// Recorder is a Cmder that records every command and answers it from its rules;
// a command no rule matches succeeds with no output. It is safe for concurrent use.
type Recorder struct {
	mu    sync.Mutex
	calls []Call
	rules []*Rule
}

// New returns an empty Recorder.
func New() *Recorder { return &Recorder{} }

// Rule answers the commands it matches: each match takes the next response, and
// the last one answers every later match.
type Rule struct {
	where     string // "*": any place
	prefix    []string
	responses []Response
	used      int
}

// On adds a rule for commands, run in any place, whose argv starts with prefix.
// Later rules win over earlier ones, so a test can override a common answer.
func (r *Recorder) On(prefix ...string) *Rule { return r.OnAt("*", prefix...) }

// OnAt adds a rule for commands run in one place (see At) whose argv starts with prefix.
func (r *Recorder) OnAt(where string, prefix ...string) *Rule {
	r.mu.Lock()
	defer r.mu.Unlock()
	rule := &Rule{where: where, prefix: prefix}
	r.rules = append(r.rules, rule)
	return rule
}

// Reply adds responses to the rule, in the order matches will get them.
func (rl *Rule) Reply(responses ...Response) *Rule {
	rl.responses = append(rl.responses, responses...)
	return rl
}

// Command implements exec.Cmder for this machine.
func (r *Recorder) Command(ctx context.Context, name string, args ...string) exec.Cmd {
	return r.At("").Command(ctx, name, args...)
}

// At returns a Cmder for a named place (a node), recorded and matched as such.
func (r *Recorder) At(where string) exec.Cmder {
	return exec.NewCmder(where, func(ctx context.Context, s exec.Spec) (int, error) {
		return r.run(where, s)
	})
}

func (r *Recorder) run(where string, s exec.Spec) (int, error) {
	call := Call{Where: where, Argv: append([]string{s.Name}, s.Args...), Env: s.Env}
	if s.Stdin != nil {
		b, err := io.ReadAll(s.Stdin)
		if err != nil {
			return -1, fmt.Errorf("read stdin: %w", err)
		}
		call.Stdin = b
	}
	resp := r.answer(call)
	if resp.Err != nil {
		return -1, resp.Err
	}
	_, _ = io.WriteString(s.Stdout, resp.Stdout)
	_, _ = io.WriteString(s.Stderr, resp.Stderr)
	if resp.ExitCode != 0 {
		return resp.ExitCode, fmt.Errorf("exit status %d", resp.ExitCode)
	}
	return 0, nil
}

func (r *Recorder) answer(call Call) Response {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, call)
	for i := len(r.rules) - 1; i >= 0; i-- {
		rl := r.rules[i]
		if rl.where != "*" && rl.where != call.Where {
			continue
		}
		if len(call.Argv) < len(rl.prefix) || !slices.Equal(call.Argv[:len(rl.prefix)], rl.prefix) {
			continue
		}
		if len(rl.responses) == 0 {
			return Response{}
		}
		resp := rl.responses[min(rl.used, len(rl.responses)-1)]
		rl.used++
		return resp
	}
	return Response{}
}

// Calls returns every command run so far, in order.
func (r *Recorder) Calls() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// Lines returns Calls rendered with Call.String: easy to compare in a test.
func (r *Recorder) Lines() []string {
	var out []string
	for _, c := range r.Calls() {
		out = append(out, c.String())
	}
	return out
}

// Find returns the calls whose argv starts with prefix.
func (r *Recorder) Find(prefix ...string) []Call {
	var out []Call
	for _, c := range r.Calls() {
		if len(c.Argv) >= len(prefix) && slices.Equal(c.Argv[:len(prefix)], prefix) {
			out = append(out, c)
		}
	}
	return out
}

var _ exec.Cmder = (*Recorder)(nil)
