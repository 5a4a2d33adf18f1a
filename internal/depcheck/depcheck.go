// Package depcheck turns the import rules of idpbuilder's design into tests: it
// loads the import graph with `go list -deps` and reports every package that
// reaches, directly or through others, a package a rule bans, with the chain of
// imports that gets it there. go-containerregistry's internal/depcheck is the
// model; this one needs no golang.org/x/tools, only the go command.
package depcheck

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/idpbuilder/idpbuilder/pkg/exec"
)

// Graph maps each package to the packages it imports directly.
type Graph map[string][]string

// Load runs `go list -deps` on patterns in dir (a directory of the module) and
// returns the graph of those packages and everything they import, without
// their tests.
func Load(ctx context.Context, dir string, patterns ...string) (Graph, error) {
	args := append([]string{"list", "-C", dir, "-deps", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}"}, patterns...)
	out, err := exec.OutputString(exec.Local().Command(ctx, "go", args...))
	if err != nil {
		return nil, err
	}
	g := Graph{}
	for line := range strings.SplitSeq(out, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 {
			g[f[0]] = f[1:]
		}
	}
	return g, nil
}

// Packages returns the graph's packages that match, sorted.
func (g Graph) Packages(match func(string) bool) []string {
	var out []string
	for p := range g {
		if match(p) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// Chain returns the shortest import chain from `from` to a package that
// banned matches, ending with that package; nil when there is none.
func (g Graph) Chain(from string, banned func(string) bool) []string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p != from && banned(p) {
			chain := []string{p}
			for q := prev[p]; q != ""; q = prev[q] {
				chain = append(chain, q)
			}
			slices.Reverse(chain)
			return chain
		}
		imports := slices.Clone(g[p])
		slices.Sort(imports) // the same chain every run
		for _, imp := range imports {
			if _, seen := prev[imp]; !seen {
				prev[imp] = p
				queue = append(queue, imp)
			}
		}
	}
	return nil
}

// Rule is one line of the design: the packages it applies to may not reach
// any package it bans.
type Rule struct {
	// Name says the rule in the design's words.
	Name string
	// Applies selects the packages the rule is about.
	Applies func(pkg string) bool
	// Banned tells, for one of those packages, whether it may not reach dep.
	Banned func(pkg, dep string) bool
	// Optional rules are about packages that may not exist yet; others must
	// apply to at least one package, so a renamed package cannot void a rule.
	Optional bool
}

// Violation is a package that breaks a rule, and how.
type Violation struct {
	Rule  string
	Chain []string // the package first, the banned one last
}

func (v Violation) String() string {
	return fmt.Sprintf("%s: %s", v.Rule, strings.Join(v.Chain, " -> "))
}

// Check returns every violation of the rules in g, and an error for a
// non-optional rule that applies to no package.
func (g Graph) Check(rules []Rule) ([]Violation, error) {
	var out []Violation
	for _, r := range rules {
		pkgs := g.Packages(r.Applies)
		if len(pkgs) == 0 && !r.Optional {
			return nil, fmt.Errorf("rule %q applies to no package: was a package renamed?", r.Name)
		}
		for _, p := range pkgs {
			if chain := g.Chain(p, func(dep string) bool { return r.Banned(p, dep) }); chain != nil {
				out = append(out, Violation{Rule: r.Name, Chain: chain})
			}
		}
	}
	return out, nil
}

// Under returns a matcher for pkg and the packages below it.
func Under(pkg string) func(string) bool {
	return func(p string) bool { return p == pkg || strings.HasPrefix(p, pkg+"/") }
}
