package depcheck

import (
	"context"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/idpbuilder/idpbuilder/pkg/exec"
)

// TestTracingNeverInitialised backs third_party/autoexport, which has no
// exporters: no package linked into idpbuilder calls distribution's
// tracing.InitOpenTelemetry (only distribution's own registry command does),
// and nothing but distribution's tracing package names autoexport at all. A
// dependency that started tracing would fail this test rather than fail at
// start on a user's machine.
func TestTracingNeverInitialised(t *testing.T) {
	const tracingPkg = "github.com/distribution/distribution/v3/tracing"
	banned := map[string]map[string]bool{
		tracingPkg: {"InitOpenTelemetry": true},
		"go.opentelemetry.io/contrib/exporters/autoexport": {"NewSpanExporter": true, "NewMetricReader": true, "NewLogExporter": true},
	}
	out, err := exec.OutputString(exec.Local().Command(context.Background(), "go", "list", "-C", "../..", "-deps",
		"-f", "{{if not .Standard}}{{.ImportPath}}\t{{.Dir}}\t{{join .GoFiles \"\\t\"}}\n{{end}}", "./cmd/idpbuilder"))
	require.NoError(t, err)
	var found []string
	linksTracing := false
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, "\t")
		if len(f) < 2 {
			continue
		}
		pkg, dir := f[0], f[1]
		linksTracing = linksTracing || pkg == tracingPkg
		for _, name := range f[2:] {
			if name == "" {
				continue
			}
			fset := token.NewFileSet()
			file, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.SkipObjectResolution)
			require.NoError(t, err)
			for _, use := range printsIn(fset, file, banned) {
				if strings.HasSuffix(use, ": print") || strings.HasSuffix(use, ": println") {
					continue // printsIn also reports the print builtins
				}
				if pkg == tracingPkg && strings.HasSuffix(use, "autoexport.NewSpanExporter") {
					continue // inside InitOpenTelemetry itself
				}
				found = append(found, pkg+": "+use)
			}
		}
	}
	// The test looks at the right thing: distribution's tracing is linked.
	require.True(t, linksTracing, "%s is not linked any more: third_party/autoexport may be unneeded", tracingPkg)
	assert.Empty(t, found)
}

// TestNoEngineBuild keeps `make size` honest: the build tag noengine still
// compiles, and it leaves out distribution's server, storage and storage
// driver factory, which the shipped build links.
func TestNoEngineBuild(t *testing.T) {
	ctx := context.Background()
	_, err := exec.OutputString(exec.Local().Command(ctx, "go", "vet", "-C", "../..", "-tags", "noengine", "./pkg/registry"))
	require.NoError(t, err, "pkg/registry does not build with -tags noengine")
	engine := []string{
		"github.com/distribution/distribution/v3/registry/handlers",
		"github.com/distribution/distribution/v3/registry/storage",
		"github.com/distribution/distribution/v3/registry/storage/driver/factory",
		"github.com/distribution/distribution/v3/registry/storage/driver/filesystem",
	}
	shipped, err := Load(ctx, "../..", "./cmd/idpbuilder")
	require.NoError(t, err)
	out, err := exec.OutputString(exec.Local().Command(ctx, "go", "list", "-C", "../..", "-tags", "noengine", "-deps", "./cmd/idpbuilder"))
	require.NoError(t, err)
	without := strings.Fields(out)
	for _, pkg := range engine {
		_, linked := shipped[pkg]
		assert.True(t, linked, "the shipped build does not link %s", pkg)
		assert.False(t, slices.Contains(without, pkg), "-tags noengine still links %s", pkg)
	}
}
