// Command gendocs writes the generated CLI and configuration references into
// docs/ (run by `make docs` from the repository root).
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/idpbuilder/idpbuilder/internal/cli"
)

func main() {
	if err := run("docs"); err != nil {
		fmt.Fprintln(os.Stderr, "gendocs:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	home, _ := os.UserHomeDir()
	pages := cli.DocPages(home)
	// Pages of commands that no longer exist go away.
	old, err := filepath.Glob(filepath.Join(dir, "cli", "*.md"))
	if err != nil {
		return err
	}
	for _, f := range old {
		rel := filepath.ToSlash(strings.TrimPrefix(f, dir+string(filepath.Separator)))
		if _, ok := pages[rel]; !ok {
			if err := os.Remove(f); err != nil {
				return err
			}
		}
	}
	for rel, text := range pages {
		path := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			return err
		}
	}
	return nil
}
