// Command bench-compare (`make bench-compare`) runs the same registry workloads
// against idpbuilder's registry and distribution's own `registry` v3.1.2, both
// real processes on loopback with filesystem storage in a temp dir, and against
// what this machine itself can do (sha256, a plain loopback GET of a file, a
// plain loopback PUT that hashes and writes a file). Rounds are interleaved
// (the order of the two registries alternates each round) and every cell is the
// median of the rounds with their range, so a machine that is busy with other
// work shows up as spread rather than as a winner. It asserts nothing; it
// prints a markdown table.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

const distributionModule = "github.com/distribution/distribution/v3/cmd/registry@v3.1.2"

type config struct {
	rounds          int
	blobMiB         int
	images          int
	clients         int
	requests        int // manifest GETs per client per round
	tags, repos     int
	listRequests    int // tag list / catalog GETs per round
	binDir, workDir string
	only            string
	verbose         bool
	ours            string
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "refserver" {
		if err := refServer(os.Args[2:]); err != nil {
			log.Fatal(err)
		}
		return
	}
	var c config
	flag.IntVar(&c.rounds, "rounds", 5, "interleaved rounds")
	flag.IntVar(&c.blobMiB, "blob-mib", 512, "size of the big blob pushed and pulled, MiB")
	flag.IntVar(&c.images, "images", 100, "small images pushed at once")
	flag.IntVar(&c.clients, "clients", 16, "concurrent manifest GET clients")
	flag.IntVar(&c.requests, "requests", 500, "manifest GETs per client per round")
	flag.IntVar(&c.tags, "tags", 1000, "tags in the tag list")
	flag.IntVar(&c.repos, "repos", 1000, "repositories (one image each) in the catalog and start-up data dir")
	flag.IntVar(&c.listRequests, "list-requests", 20, "tag list and catalog GETs per round")
	flag.StringVar(&c.binDir, "bin", "bin/bench", "where the two registries are built (distribution's is kept between runs)")
	flag.StringVar(&c.workDir, "work", "", "working directory for data dirs (default: a new temp dir, removed at the end)")
	flag.StringVar(&c.only, "only", "", "run only the workloads whose name contains this")
	flag.BoolVar(&c.verbose, "v", false, "log every measurement")
	flag.StringVar(&c.ours, "ours", "", "an idpbuilder binary to measure instead of building this tree (to compare before and after)")
	flag.Parse()
	log.SetFlags(log.Ltime)
	log.SetOutput(os.Stderr)
	if err := run(context.Background(), c); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, c config) error {
	ours, dist, err := buildRegistries(ctx, c.binDir, c.ours == "")
	if c.ours != "" {
		ours = c.ours
	}
	if err != nil {
		return err
	}
	work := c.workDir
	if work == "" {
		if work, err = os.MkdirTemp("", "bench-compare-"); err != nil {
			return err
		}
		defer os.RemoveAll(work)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	loadBefore := loadavg()
	targets := []*target{newOurs(ours, work), newDistribution(dist, work)}
	ref, err := startRefServer(ctx, self, filepath.Join(work, "ref"), int64(c.blobMiB)<<20)
	if err != nil {
		return err
	}
	defer ref.stop()

	b := newBench(c)
	for _, t := range targets {
		if err := b.setup(ctx, t); err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
	}
	defer func() {
		for _, t := range targets {
			t.stop()
		}
	}()
	for round := range c.rounds {
		order := slices.Clone(targets)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		log.Printf("round %d of %d (%s first)", round+1, c.rounds, order[0].name)
		for _, w := range b.workloads() {
			if c.only != "" && !strings.Contains(w.rows[0].name, c.only) {
				continue
			}
			if !w.skipped {
				for _, t := range order {
					vs, err := w.run(ctx, t, round)
					if err != nil {
						return fmt.Errorf("round %d, %s, %s: %w", round+1, w.rows[0].name, t.name, err)
					}
					for i, v := range vs {
						b.record(w.rows[i].name, t.name, v)
					}
				}
			}
			if w.ref != nil {
				v, err := w.ref(ctx, ref, round)
				if err != nil {
					return fmt.Errorf("round %d, %s: %w", round+1, w.refRow, err)
				}
				b.record(w.refRow, "reference", v)
			}
		}
	}
	b.print(os.Stdout, loadBefore, loadavg())
	return nil
}

// buildRegistries builds our binary as `make build` does, and distribution's
// registry from its own module (with its own dependencies and go.sum, not
// ours); the latter is kept in binDir between runs.
func buildRegistries(ctx context.Context, binDir string, buildOurs bool) (ours, dist string, err error) {
	abs, err := filepath.Abs(binDir)
	if err != nil {
		return "", "", err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return "", "", err
	}
	if buildOurs {
		ours = filepath.Join(abs, "idpbuilder")
		log.Printf("building idpbuilder")
		if err := goCmd(ctx, "", "build", "-trimpath", "-ldflags", "-s -w", "-o", ours, "./cmd/idpbuilder"); err != nil {
			return "", "", err
		}
	}
	dist = filepath.Join(abs, "registry")
	if _, err := os.Stat(dist); err == nil {
		return ours, dist, nil
	}
	log.Printf("building %s (once; kept in %s)", distributionModule, abs)
	if err := goCmd(ctx, abs, "install", "-trimpath", "-ldflags", "-s -w", distributionModule); err != nil {
		return "", "", err
	}
	return ours, dist, nil
}

func goCmd(ctx context.Context, gobin string, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if gobin != "" {
		// Outside our module: distribution's module brings its own go.mod,
		// so our replace lines (third_party/) do not apply to it.
		cmd.Env = append(cmd.Env, "GOBIN="+gobin, "GOFLAGS=")
		cmd.Dir = os.TempDir()
	}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (b *bench) print(w io.Writer, before, after string) {
	host, _ := os.Hostname()
	fmt.Fprintf(w, "bench-compare: %d rounds, interleaved; %s, %d CPUs, %s; load average before %s, after %s\n\n",
		b.c.rounds, runtime.Version(), runtime.NumCPU(), cmp.Or(host, "?"), before, after)
	fmt.Fprintln(w, "| workload | idpbuilder | distribution v3.1.2 | idpbuilder vs distribution | machine reference | idpbuilder % of reference | distribution % of reference |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|")
	for _, wl := range b.workloads() {
		for _, rw := range wl.rows {
			o, d, r := b.results[rw.name]["idpbuilder"], b.results[rw.name]["distribution"], b.results[rw.ofReference]["reference"]
			cells := []string{rw.name, "", "", "", "", "", ""}
			if len(o) > 0 && len(d) > 0 {
				mo, md := median(o), median(d)
				speed := md / mo // times: distribution's over ours
				if rw.higherBetter {
					speed = mo / md
				}
				cells[1], cells[2], cells[3] = cell(o, rw.unit), cell(d, rw.unit), fmt.Sprintf("%.2f× %s", speed, fasterWord(speed))
				if len(r) > 0 {
					cells[5], cells[6] = fmt.Sprintf("%.0f%%", 100*mo/median(r)), fmt.Sprintf("%.0f%%", 100*md/median(r))
				}
			}
			if len(r) > 0 {
				cells[4] = cell(r, rw.unit)
				if rw.ofReference != rw.name {
					cells[4] = rw.ofReference + ": " + cells[4]
				}
			}
			if len(o) == 0 && len(r) == 0 {
				continue
			}
			fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Cells: median of the rounds (min–max). \"idpbuilder vs distribution\": how many times faster idpbuilder is (the ratio of throughputs, or the inverse ratio of times); below 1 it is slower. MB = 10^6 bytes.")
}

func fasterWord(speed float64) string {
	if speed >= 1 {
		return "faster"
	}
	return "slower"
}

func cell(v []float64, unit string) string {
	mn, mx := slices.Min(v), slices.Max(v)
	return fmt.Sprintf("%s %s (%s–%s)", num(median(v)), unit, num(mn), num(mx))
}

func num(f float64) string {
	switch {
	case f >= 100:
		return fmt.Sprintf("%.0f", f)
	case f >= 10:
		return fmt.Sprintf("%.1f", f)
	default:
		return fmt.Sprintf("%.2f", f)
	}
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

var errStatus = errors.New("unexpected status")

func expect(resp *http.Response, codes ...int) error {
	if slices.Contains(codes, resp.StatusCode) {
		return nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return fmt.Errorf("%w: %s %s: %d %s", errStatus, resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, strings.TrimSpace(string(body)))
}

func since(start time.Time) float64 { return time.Since(start).Seconds() }
