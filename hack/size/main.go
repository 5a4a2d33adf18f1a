// Command size measures what the registry engine adds to the idpbuilder
// binary (`make size`). It builds cmd/idpbuilder twice as `make build` does
// (static, stripped): as shipped, and with the build tag noengine, which leaves
// out the one file that links distribution's server and storage
// (pkg/registry/engine_distribution.go) and so everything only it needs. The
// difference of the two stripped files is the engine's share. It then builds
// both again with symbols and charges each symbol's bytes to its module, to
// show where the share goes.
package main

import (
	"bytes"
	"cmp"
	"debug/elf"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

const mib = 1 << 20

func main() {
	limit := flag.Float64("limit-mb", 10, "fail when the engine's share is this many MB (10^6 bytes) or more; 0: never")
	top := flag.Int("top", 15, "how many modules to list")
	flag.Parse()
	if err := run(os.Stdout, *limit, *top); err != nil {
		fmt.Fprintln(os.Stderr, "size:", err)
		os.Exit(1)
	}
}

type build struct {
	name, tags string
	stripped   int64
	perModule  map[string]int64 // bytes of symbols in file-backed sections
	sections   map[string]int64
	unassigned int64 // symbols no package claims (pclntab, func data)
}

func run(out io.Writer, limitMB float64, top int) error {
	dir, err := os.MkdirTemp("", "idpbuilder-size-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	builds := []*build{{name: "as shipped"}, {name: "without engine", tags: "noengine"}}
	for _, b := range builds {
		if err := b.measure(dir); err != nil {
			return err
		}
	}
	full, without := builds[0], builds[1]
	share := full.stripped - without.stripped
	fmt.Fprintf(out, "stripped static binary (CGO_ENABLED=0, -trimpath, -ldflags '-s -w'):\n")
	fmt.Fprintf(out, "  %-28s %10d bytes  %6.2f MiB\n", full.name, full.stripped, float64(full.stripped)/mib)
	fmt.Fprintf(out, "  %-28s %10d bytes  %6.2f MiB\n", without.name+" (-tags noengine)", without.stripped, float64(without.stripped)/mib)
	fmt.Fprintf(out, "  %-28s %10d bytes  %6.2f MiB  (%.2f MB)\n", "registry engine's share", share, float64(share)/mib, float64(share)/1e6)

	fmt.Fprintf(out, "\nper section (the stripped files hold the same):\n")
	fmt.Fprintf(out, "  %-52s %9s %9s %9s\n", "section", "shipped", "without", "added")
	for _, sec := range []string{".text", ".rodata", ".gopclntab", ".data", ".noptrdata", ".typelink", ".itablink"} {
		fmt.Fprintf(out, "  %-52s %9s %9s %9s\n", sec, kib(full.sections[sec]), kib(without.sections[sec]), kib(full.sections[sec]-without.sections[sec]))
	}

	fmt.Fprintf(out, "\nwhere the share goes (bytes of named code and data per module; the pc tables\n(.gopclntab) grow roughly with code but name no package; top %d):\n", top)
	fmt.Fprintf(out, "  %-52s %9s %9s %9s\n", "module", "shipped", "without", "added")
	type row struct {
		mod   string
		added int64
	}
	var rows []row
	for mod, n := range full.perModule {
		rows = append(rows, row{mod, n - without.perModule[mod]})
	}
	slices.SortFunc(rows, func(a, b row) int { return cmp.Or(cmp.Compare(b.added, a.added), strings.Compare(a.mod, b.mod)) })
	var attributed int64
	for i, r := range rows {
		attributed += r.added
		if i < top {
			fmt.Fprintf(out, "  %-52s %9s %9s %9s\n", r.mod, kib(full.perModule[r.mod]), kib(without.perModule[r.mod]), kib(r.added))
		}
	}
	fmt.Fprintf(out, "  %-52s %9s %9s %9s\n", "(all modules)", "", "", kib(attributed))
	fmt.Fprintf(out, "  %-52s %9s %9s %9s\n", "(symbols naming no package)", kib(full.unassigned), kib(without.unassigned), kib(full.unassigned-without.unassigned))

	if limitMB > 0 && float64(share) >= limitMB*1e6 {
		return fmt.Errorf("the registry engine adds %.2f MB, the limit is %.0f MB", float64(share)/1e6, limitMB)
	}
	return nil
}

func kib(n int64) string { return fmt.Sprintf("%.0fK", float64(n)/1024) }

func (b *build) measure(dir string) error {
	stripped := filepath.Join(dir, "stripped-"+b.tags)
	if err := goBuild(b.tags, stripped, "-s -w"); err != nil {
		return err
	}
	fi, err := os.Stat(stripped)
	if err != nil {
		return err
	}
	b.stripped = fi.Size()

	syms := filepath.Join(dir, "symbols-"+b.tags)
	if err := goBuild(b.tags, syms, ""); err != nil {
		return err
	}
	modOf, err := packageModules(b.tags)
	if err != nil {
		return err
	}
	b.perModule, b.unassigned, err = symbolBytes(syms, modOf)
	if err != nil {
		return err
	}
	b.sections, err = sectionSizes(syms)
	return err
}

func sectionSizes(path string) (map[string]int64, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := map[string]int64{}
	for _, s := range f.Sections {
		if s.Type != elf.SHT_NOBITS {
			m[s.Name] = int64(s.Size)
		}
	}
	return m, nil
}

func goBuild(tags, out, ldflags string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-tags", tags, "-ldflags", ldflags, "-o", out, "./cmd/idpbuilder")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build -tags %q: %w", tags, err)
	}
	return nil
}

// packageModules maps every package linked into the binary to its module
// ("std" for the standard library).
func packageModules(tags string) (map[string]string, error) {
	cmd := exec.Command("go", "list", "-tags", tags, "-deps", "-f", "{{.ImportPath}} {{with .Module}}{{.Path}}{{end}}", "./cmd/idpbuilder")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	outb, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list: %w: %s", err, stderr.String())
	}
	m := map[string]string{}
	for line := range strings.Lines(string(outb)) {
		pkg, mod, _ := strings.Cut(strings.TrimSpace(line), " ")
		if mod == "" {
			mod = "std"
		}
		m[pkg] = mod
	}
	return m, nil
}

// symbolBytes sums the sizes of the symbols that occupy the file (not .bss)
// per module of the package that owns each symbol.
func symbolBytes(path string, modOf map[string]string) (map[string]int64, int64, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		return nil, 0, err
	}
	per := map[string]int64{}
	var none int64
	for _, s := range syms {
		if int(s.Section) <= 0 || int(s.Section) >= len(f.Sections) || f.Sections[s.Section].Type == elf.SHT_NOBITS {
			continue
		}
		if pkg := symbolPackage(s.Name, modOf); pkg != "" {
			per[modOf[pkg]] += int64(s.Size)
		} else {
			none += int64(s.Size)
		}
	}
	if len(per) == 0 {
		return nil, 0, errors.New("no symbols found")
	}
	return per, none, nil
}

// symbolPackage finds the package a symbol name belongs to: the import path
// of a linked package that prefixes it, followed by a dot.
func symbolPackage(name string, modOf map[string]string) string {
	for _, p := range []string{"type:", "go:itab.", "go:link.", "*"} {
		name = strings.TrimPrefix(name, p)
	}
	// An import path ends at a dot after its last slash (usually the first:
	// gopkg.in/yaml.v3 has more); a method's receiver, a generic argument or
	// an itab's second type may hold more paths, so cut there first.
	head := name
	if i := strings.IndexAny(head, "([{,"); i >= 0 {
		head = head[:i]
	}
	slash := strings.LastIndex(head, "/")
	for i := slash + 1; i < len(head); i++ {
		if head[i] != '.' {
			continue
		}
		if _, ok := modOf[head[:i]]; ok {
			return head[:i]
		}
	}
	return ""
}
