package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// row is one line of the table.
type row struct {
	name, unit   string
	higherBetter bool
	ofReference  string // the reference row this one is compared with
}

// workload measures one or more rows against a target per round; ref, when
// set, measures the machine's own reference row once per round.
type workload struct {
	rows    []row
	run     func(ctx context.Context, t *target, round int) ([]float64, error)
	refRow  string
	ref     func(ctx context.Context, r *refServerProc, round int) (float64, error)
	skipped bool
}

type bench struct {
	c       config
	big     []byte            // the big blob; its first bytes change per push
	bigDgst map[string]string // per target: the big blob pushed in this round
	base    image             // the image behind manifest GETs, tags and the catalog
	results map[string]map[string][]float64
	mu      sync.Mutex
}

const (
	refPut     = "loopback PUT + sha256 + file write"
	refPutSync = "loopback PUT + sha256 + file write + fsync"
	refGet     = "loopback GET of a file (sendfile)"
	refSHA256  = "sha256 in memory, one core"
)

func newBench(c config) *bench {
	b := &bench{c: c, big: make([]byte, c.blobMiB<<20), bigDgst: map[string]string{}, base: newImage(4096), results: map[string]map[string][]float64{}}
	_, _ = rand.Read(b.big)
	return b
}

func (b *bench) record(row, who string, v float64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.results[row] == nil {
		b.results[row] = map[string][]float64{}
	}
	b.results[row][who] = append(b.results[row][who], v)
	if b.c.verbose {
		log.Printf("%s, %s: %s", row, who, num(v))
	}
}

func mbps(n int, seconds float64) float64 { return float64(n) / 1e6 / seconds }

// setup starts the target's main server with a base image and a repository of
// many tags, and fills the catalog data dir (many repositories, one image
// each) through a second server that is stopped again.
func (b *bench) setup(ctx context.Context, t *target) error {
	log.Printf("%s: setting up (%d tags, %d repositories)", t.name, b.c.tags, b.c.repos)
	cat, err := t.start(ctx, filepath.Join(t.work, "catalog"))
	if err != nil {
		return err
	}
	r := reg{c: t.client, base: cat.base}
	err = r.pushImage(ctx, "cat/r00000", "v1", b.base)
	if err == nil {
		err = parallel(ctx, 8, b.c.repos-1, func(ctx context.Context, i int) error {
			return r.mountImage(ctx, fmt.Sprintf("cat/r%05d", i+1), "cat/r00000", "v1", b.base)
		})
	}
	cat.stop()
	if err != nil {
		return fmt.Errorf("catalog data: %w", err)
	}

	if t.main, err = t.start(ctx, filepath.Join(t.work, "main")); err != nil {
		return err
	}
	r = reg{c: t.client, base: t.main.base}
	if err := r.pushImage(ctx, "bench/base", "v1", b.base); err != nil {
		return err
	}
	if err := r.mountImage(ctx, "bench/tags", "bench/base", "t00000", b.base); err != nil {
		return err
	}
	return parallel(ctx, 8, b.c.tags-1, func(ctx context.Context, i int) error {
		return r.putManifest(ctx, "bench/tags", fmt.Sprintf("t%05d", i+1), b.base.manifest)
	})
}

// parallel runs fn(0..n-1) on workers goroutines.
func parallel(ctx context.Context, workers, n int, fn func(context.Context, int) error) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for i := range n {
		g.Go(func() error { return fn(ctx, i) })
	}
	return g.Wait()
}

func (b *bench) workloads() []workload {
	size := len(b.big)
	sizeName := fmt.Sprintf("%d MiB", b.c.blobMiB)
	return []workload{
		{
			rows:   []row{{name: "push " + sizeName + " blob (POST, PATCH, PUT)", unit: "MB/s", higherBetter: true, ofReference: refPut}},
			refRow: refPut,
			run: func(ctx context.Context, t *target, round int) ([]float64, error) {
				// A new blob each push: no registry may answer from what it has.
				binary.LittleEndian.PutUint64(b.big, uint64(time.Now().UnixNano()))
				s := sha256.Sum256(b.big)
				dgst := "sha256:" + hex.EncodeToString(s[:])
				r := reg{c: t.client, base: t.main.base}
				start := time.Now()
				if err := r.pushBlob(ctx, "bench/big", bytes.NewReader(b.big), int64(size), dgst); err != nil {
					return nil, err
				}
				sec := since(start)
				b.bigDgst[t.name] = dgst
				return []float64{mbps(size, sec)}, nil
			},
			ref: func(ctx context.Context, rs *refServerProc, round int) (float64, error) {
				start := time.Now()
				if _, err := rs.reg().call(ctx, http.MethodPut, "/upload", bytes.NewReader(b.big), int64(size), nil, http.StatusCreated); err != nil {
					return 0, err
				}
				return mbps(size, since(start)), nil
			},
		},
		{
			rows:    []row{{name: refPutSync, unit: "MB/s", higherBetter: true, ofReference: refPutSync}},
			refRow:  refPutSync,
			skipped: true, // a reference only: distribution syncs each upload's file
			ref: func(ctx context.Context, rs *refServerProc, round int) (float64, error) {
				start := time.Now()
				if _, err := rs.reg().call(ctx, http.MethodPut, "/upload?fsync", bytes.NewReader(b.big), int64(size), nil, http.StatusCreated); err != nil {
					return 0, err
				}
				return mbps(size, since(start)), nil
			},
		},
		{
			rows:   []row{{name: "pull " + sizeName + " blob", unit: "MB/s", higherBetter: true, ofReference: refGet}},
			refRow: refGet,
			run: func(ctx context.Context, t *target, round int) ([]float64, error) {
				r := reg{c: t.client, base: t.main.base}
				start := time.Now()
				n, err := r.download(ctx, "/v2/bench/big/blobs/"+b.bigDgst[t.name])
				if err != nil {
					return nil, err
				}
				if n != int64(size) {
					return nil, fmt.Errorf("pulled %d bytes of %d", n, size)
				}
				return []float64{mbps(size, since(start))}, nil
			},
			ref: func(ctx context.Context, rs *refServerProc, round int) (float64, error) {
				start := time.Now()
				n, err := rs.reg().download(ctx, "/file")
				if err != nil {
					return 0, err
				}
				return mbps(int(n), since(start)), nil
			},
		},
		{
			rows:    []row{{name: refSHA256, unit: "MB/s", higherBetter: true, ofReference: refSHA256}},
			refRow:  refSHA256,
			skipped: true, // a reference only: no registry row
			ref: func(ctx context.Context, rs *refServerProc, round int) (float64, error) {
				start := time.Now()
				sha256.Sum256(b.big)
				return mbps(size, since(start)), nil
			},
		},
		{
			rows: []row{{name: fmt.Sprintf("%d small images pushed at once (4 KiB layer, config, manifest)", b.c.images), unit: "s"}},
			run: func(ctx context.Context, t *target, round int) ([]float64, error) {
				imgs := make([]image, b.c.images)
				for i := range imgs {
					imgs[i] = newImage(4096)
				}
				r := reg{c: t.client, base: t.main.base}
				start := time.Now()
				err := parallel(ctx, b.c.images, b.c.images, func(ctx context.Context, i int) error {
					return r.pushImage(ctx, fmt.Sprintf("small/r%d-%03d", round, i), "v1", imgs[i])
				})
				return []float64{since(start)}, err
			},
		},
		{
			rows: []row{
				{name: fmt.Sprintf("manifest GET by tag, %d clients: p50", b.c.clients), unit: "ms"},
				{name: fmt.Sprintf("manifest GET by tag, %d clients: p99", b.c.clients), unit: "ms"},
				{name: fmt.Sprintf("manifest GET by tag, %d clients: throughput", b.c.clients), unit: "req/s", higherBetter: true},
			},
			run: b.manifestGets,
		},
		{
			rows: []row{{name: fmt.Sprintf("tag list of %d tags (median of %d GETs)", b.c.tags, b.c.listRequests), unit: "ms"}},
			run: func(ctx context.Context, t *target, round int) ([]float64, error) {
				r := reg{c: t.client, base: t.main.base}
				return b.listMedian(ctx, r, fmt.Sprintf("/v2/bench/tags/tags/list?n=%d", b.c.tags), "tags", b.c.tags)
			},
		},
		{
			rows: []row{
				{name: fmt.Sprintf("start-up to the first 200 on /v2/, data dir of %d images", b.c.repos), unit: "ms"},
				{name: fmt.Sprintf("catalog of %d repositories (median of %d GETs)", b.c.repos, b.c.listRequests), unit: "ms"},
			},
			run: func(ctx context.Context, t *target, round int) ([]float64, error) {
				p, err := t.start(ctx, filepath.Join(t.work, "catalog"))
				if err != nil {
					return nil, err
				}
				defer p.stop()
				r := reg{c: newClient(), base: p.base}
				list, err := b.listMedian(ctx, r, fmt.Sprintf("/v2/_catalog?n=%d", b.c.repos), "repositories", b.c.repos)
				if err != nil {
					return nil, err
				}
				return []float64{float64(p.startup.Microseconds()) / 1000, list[0]}, nil
			},
		},
	}
}

// manifestGets runs clients goroutines, each GETting the base manifest by tag
// requests times, and reports p50, p99 (ms) and requests per second.
func (b *bench) manifestGets(ctx context.Context, t *target, round int) ([]float64, error) {
	r := reg{c: t.client, base: t.main.base}
	lat := make([][]time.Duration, b.c.clients)
	accept := map[string]string{"Accept": mediaManifest}
	start := time.Now()
	err := parallel(ctx, b.c.clients, b.c.clients, func(ctx context.Context, c int) error {
		lat[c] = make([]time.Duration, 0, b.c.requests)
		for range b.c.requests {
			s := time.Now()
			if _, err := r.call(ctx, http.MethodGet, "/v2/bench/base/manifests/v1", nil, 0, accept, http.StatusOK); err != nil {
				return err
			}
			lat[c] = append(lat[c], time.Since(s))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	total := since(start)
	all := slices.Concat(lat...)
	slices.Sort(all)
	pct := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))].Microseconds()) / 1000 }
	return []float64{pct(0.50), pct(0.99), float64(len(all)) / total}, nil
}

// listMedian GETs a list n times and reports the median in ms; the first
// answer must hold want entries under key.
func (b *bench) listMedian(ctx context.Context, r reg, path, key string, want int) ([]float64, error) {
	var doc map[string]any
	if err := r.getJSON(ctx, path, &doc); err != nil {
		return nil, err
	}
	if got, _ := doc[key].([]any); len(got) != want {
		return nil, fmt.Errorf("%s: %d %s, want %d", path, len(got), key, want)
	}
	times := make([]float64, b.c.listRequests)
	for i := range times {
		s := time.Now()
		if _, err := r.call(ctx, http.MethodGet, path, nil, 0, nil, http.StatusOK); err != nil {
			return nil, err
		}
		times[i] = float64(time.Since(s).Microseconds()) / 1000
	}
	return []float64{median(times)}, nil
}

// download GETs path and counts the bytes.
func (r reg) download(ctx context.Context, path string) (int64, error) {
	resp, err := r.do(ctx, http.MethodGet, path, nil, 0, nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if err := expect(resp, http.StatusOK); err != nil {
		return 0, err
	}
	// 1 MiB reads: io.Discard's own ReadFrom reads 8 KiB at a time, which
	// would make the client, not the server, the limit.
	return io.CopyBuffer(struct{ io.Writer }{io.Discard}, struct{ io.Reader }{resp.Body}, make([]byte, 1<<20))
}
