package depcheck

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const module = "github.com/idpbuilder/idpbuilder"

// ours reports whether pkg belongs to this module.
func ours(pkg string) bool { return Under(module)(pkg) }

// isDistribution matches the registry engine we embed.
var isDistribution = Under("github.com/distribution/distribution/v3")

// rules are the lines of ../shared/design.md that imports can break.
func rules(g Graph) []Rule {
	anyOf := func(ms ...func(string) bool) func(string, string) bool {
		return func(_, dep string) bool {
			for _, m := range ms {
				if m(dep) {
					return true
				}
			}
			return false
		}
	}
	// A tiny internal helper (an atomic file write) imports nothing of ours.
	leafHelper := func(dep string) bool {
		if !Under(module + "/internal")(dep) {
			return false
		}
		for _, imp := range g[dep] {
			if ours(imp) {
				return false
			}
		}
		return true
	}
	return []Rule{
		{
			Name:    "pkg/... never imports internal/cli",
			Applies: Under(module + "/pkg"),
			Banned:  anyOf(Under(module + "/internal/cli")),
		},
		{
			Name:    "pkg/registry knows nothing about clusters",
			Applies: Under(module + "/pkg/registry"),
			Banned: anyOf(Under(module+"/pkg/kind"), Under(module+"/pkg/registryruntime"), Under(module+"/pkg/docker"),
				Under("sigs.k8s.io/kind")),
		},
		{
			Name:    "pkg/kind knows nothing about distribution or the registry's code",
			Applies: Under(module + "/pkg/kind"),
			Banned:  anyOf(isDistribution, Under(module+"/pkg/registry")),
		},
		{
			Name:     "pkg/ui knows the registry only through its Source interface",
			Applies:  Under(module + "/pkg/ui"),
			Banned:   anyOf(isDistribution, Under(module+"/pkg/registry")),
			Optional: true,
		},
		{
			Name:    "pkg/auth and pkg/certs depend on no other package of ours but tiny internal helpers",
			Applies: func(p string) bool { return Under(module+"/pkg/auth")(p) || Under(module+"/pkg/certs")(p) },
			Banned:  selfContained(leafHelper),
		},
		{
			Name:     "pkg/registryapi depends on no other package of ours but tiny internal helpers",
			Applies:  Under(module + "/pkg/registryapi"),
			Banned:   selfContained(leafHelper),
			Optional: true,
		},
	}
}

// selfContained bans, for a package, every package of ours outside its own
// tree except the allowed helpers.
func selfContained(allowed func(string) bool) func(pkg, dep string) bool {
	return func(pkg, dep string) bool {
		top := strings.Join(strings.Split(pkg, "/")[:len(strings.Split(module, "/"))+2], "/") // module/pkg/<name>
		return ours(dep) && !Under(top)(dep) && !allowed(dep)
	}
}

// TestImportRules checks the whole module against the design's rules.
func TestImportRules(t *testing.T) {
	g, err := Load(context.Background(), "../..", "./...")
	require.NoError(t, err)
	require.Contains(t, g, module+"/pkg/registry", "the graph holds the module")
	violations, err := g.Check(rules(g))
	require.NoError(t, err)
	for _, v := range violations {
		t.Error(v)
	}
}

// TestCheckFindsViolations: the checker reports a banned import however deep,
// with the chain that reaches it, and only for the packages a rule is about.
func TestCheckFindsViolations(t *testing.T) {
	m := module
	g := Graph{
		m + "/pkg/registry":            {"net/http", m + "/pkg/registry/internal/x"},
		m + "/pkg/registry/internal/x": {m + "/pkg/docker"},
		m + "/pkg/docker":              {m + "/pkg/exec"},
		m + "/pkg/exec":                {"os/exec"},
		m + "/pkg/kind":                {m + "/pkg/exec", m + "/pkg/registryclient"},
		m + "/pkg/registryclient":      {},
		m + "/pkg/auth":                {m + "/internal/atomicfile"},
		m + "/pkg/certs":               {m + "/internal/atomicfile", m + "/internal/wide"},
		m + "/internal/atomicfile":     {"os"},
		m + "/internal/wide":           {m + "/pkg/config"},
		m + "/pkg/config":              {},
		m + "/internal/cli":            {m + "/pkg/kind"},
	}
	violations, err := g.Check(rules(g))
	require.NoError(t, err)
	var got []string
	for _, v := range violations {
		got = append(got, v.String())
	}
	assert.ElementsMatch(t, []string{
		"pkg/registry knows nothing about clusters: " + m + "/pkg/registry -> " + m + "/pkg/registry/internal/x -> " + m + "/pkg/docker",
		"pkg/registry knows nothing about clusters: " + m + "/pkg/registry/internal/x -> " + m + "/pkg/docker",
		"pkg/auth and pkg/certs depend on no other package of ours but tiny internal helpers: " + m + "/pkg/certs -> " + m + "/internal/wide",
	}, got, "pkg/kind -> pkg/registryclient is not pkg/registry; internal/atomicfile is a leaf helper")

	_, err = Graph{m + "/pkg/kind": nil}.Check(rules(g))
	assert.ErrorContains(t, err, "applies to no package")
}

func TestChain(t *testing.T) {
	g := Graph{"a": {"c", "b"}, "b": {"d"}, "c": {"b", "d"}, "d": {}}
	assert.Equal(t, []string{"a", "b", "d"}, g.Chain("a", func(p string) bool { return p == "d" }), "a shortest chain, always the same")
	assert.Nil(t, g.Chain("a", func(p string) bool { return p == "z" }))
	assert.Nil(t, g.Chain("a", func(p string) bool { return p == "a" }), "a package does not reach itself")
}

// TestPkgNeverPrints: nothing under pkg/ writes to the terminal; output goes
// through writers and loggers the caller passes (the CLI owns the terminal).
func TestPkgNeverPrints(t *testing.T) {
	banned := map[string]map[string]bool{
		"os":  {"Stdout": true, "Stderr": true},
		"fmt": {"Print": true, "Printf": true, "Println": true},
		"log": {"Print": true, "Printf": true, "Println": true, "Fatal": true, "Fatalf": true, "Fatalln": true, "Panic": true, "Panicf": true, "Panicln": true},
	}
	var found []string
	err := filepath.WalkDir("../../pkg", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		found = append(found, printsIn(fset, f, banned)...)
		return nil
	})
	require.NoError(t, err)
	assert.Empty(t, found)
}

// printsIn lists the uses of banned package members (by the file's import
// names) and of the print builtins in f.
func printsIn(fset *token.FileSet, f *ast.File, banned map[string]map[string]bool) []string {
	names := map[string]string{} // local name -> import path
	for _, imp := range f.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		name := path[strings.LastIndex(path, "/")+1:]
		if imp.Name != nil {
			name = imp.Name.Name
		}
		names[name] = path
	}
	var found []string
	ast.Inspect(f, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.SelectorExpr:
			if id, ok := x.X.(*ast.Ident); ok && banned[names[id.Name]][x.Sel.Name] {
				found = append(found, fset.Position(x.Pos()).String()+": "+names[id.Name]+"."+x.Sel.Name)
			}
		case *ast.CallExpr:
			if id, ok := x.Fun.(*ast.Ident); ok && (id.Name == "print" || id.Name == "println") && id.Obj == nil {
				found = append(found, fset.Position(x.Pos()).String()+": "+id.Name)
			}
		}
		return true
	})
	return found
}

func TestPrintsIn(t *testing.T) {
	src := `package p
import (
	"fmt"
	stdlog "log"
	"os"
	"io"
)
func f(w io.Writer) {
	fmt.Fprintln(w, "fine")
	fmt.Println("not fine")
	stdlog.Printf("not fine")
	_ = os.Stderr
	println("not fine")
}`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "p.go", src, 0)
	require.NoError(t, err)
	found := printsIn(fset, f, map[string]map[string]bool{
		"os": {"Stderr": true}, "fmt": {"Println": true}, "log": {"Printf": true},
	})
	assert.Equal(t, []string{"p.go:10:2: fmt.Println", "p.go:11:2: log.Printf", "p.go:12:6: os.Stderr", "p.go:13:2: println"}, found)
}

// maxCLIFunction is the longest a function in internal/cli may be: the command
// line parses flags, calls a library and renders; anything longer is doing
// the library's job (or wants splitting into a command per verb).
const maxCLIFunction = 50

// TestCLIFunctionsAreShort: no function in internal/cli is longer than
// maxCLIFunction lines, its closures included.
func TestCLIFunctionsAreShort(t *testing.T) {
	files, err := filepath.Glob("../cli/*.go")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	fset := token.NewFileSet()
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		require.NoError(t, err)
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			start, end := fset.Position(fd.Pos()), fset.Position(fd.End())
			if n := end.Line - start.Line + 1; n > maxCLIFunction {
				t.Errorf("%s:%d: %s is %d lines (at most %d)", filepath.Base(path), start.Line, fd.Name.Name, n, maxCLIFunction)
			}
		}
	}
}
