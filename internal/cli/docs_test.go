package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDocPagesCurrent fails when docs/cli/*.md or docs/configuration.md differ
// from what the command tree and the settings table generate.
func TestDocPagesCurrent(t *testing.T) {
	home, _ := os.UserHomeDir()
	pages := DocPages(home)
	docs := filepath.Join("..", "..", "docs")
	for rel, want := range pages {
		got, err := os.ReadFile(filepath.Join(docs, filepath.FromSlash(rel)))
		if !assert.NoError(t, err, "docs/%s is missing: run `make docs`", rel) {
			continue
		}
		assert.Equal(t, want, string(got), "docs/%s is out of date: run `make docs`", rel)
	}
	files, err := filepath.Glob(filepath.Join(docs, "cli", "*.md"))
	require.NoError(t, err)
	for _, f := range files {
		_, ok := pages["cli/"+filepath.Base(f)]
		assert.True(t, ok, "docs/cli/%s belongs to no command: run `make docs`", filepath.Base(f))
	}
}

// TestDocPagesDoNotNameTheGenerator keeps the generating machine's home out of the pages.
func TestDocPagesDoNotNameTheGenerator(t *testing.T) {
	home := "/home/doc-writer"
	for rel, text := range DocPages(home) {
		assert.NotContains(t, text, home, rel)
	}
}

// TestFlagHelpReadsCorrectly checks every flag of every command: a usage text,
// no backquotes (pflag takes a backquoted word as the value's name, which turned
// `--htpasswd string` into `--htpasswd registry user`), a value name that is a type
// or a word, and no trailing period or space.
func TestFlagHelpReadsCorrectly(t *testing.T) {
	root := NewRootCommand(IO{Env: func(string) (string, bool) { return "", false }})
	var walk func(c *cobra.Command)
	n := 0
	walk = func(c *cobra.Command) {
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			n++
			where := c.CommandPath() + " --" + f.Name
			assert.NotEmpty(t, strings.TrimSpace(f.Usage), "%s has no help text", where)
			assert.NotContains(t, f.Usage, "`", "%s: backquotes in a usage become the value name", where)
			name, usage := pflag.UnquoteUsage(f)
			assert.Equal(t, f.Usage, usage, where)
			assert.NotContains(t, name, " ", "%s: value name %q", where, name)
			assert.Equal(t, strings.TrimSpace(f.Usage), f.Usage, "%s: surrounding space", where)
			assert.False(t, strings.HasSuffix(f.Usage, "."), "%s: ends with a period, unlike the others", where)
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	assert.Greater(t, n, 40, "the walk reached the flags")
}
