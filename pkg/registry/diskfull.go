package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/idpbuilder/idpbuilder/internal/units"
	"github.com/idpbuilder/idpbuilder/pkg/registryapi"
)

// DefaultDiskReserve is the free space uploads leave on the data dir's
// filesystem (at most a sixteenth of the filesystem, for small ones): room
// for manifests, tags, the referrers index and distribution's own upload
// bookkeeping, which it cannot write on a full disk.
const DefaultDiskReserve = 8 << 20

// How often the free space is read again while uploads stream: after this
// many bytes were let through, or this long.
const (
	diskRecheckBytes = 1 << 20
	diskRecheckAge   = time.Second
)

// diskRefusalMemory is how long a write refused for lack of space keeps the
// disk reported full when that write still would not fit: long enough for a
// client's retries and an operator's look, not forever for one oversized push.
const diskRefusalMemory = 10 * time.Minute

// DiskFullError is a write refused for lack of space on the data dir's
// filesystem.
type DiskFullError struct {
	// Free is the space available when it was refused; Reserve the part of
	// it uploads must leave.
	Free, Reserve int64
	// Needed is what the write needed (AtLeast: a lower bound, for a body of
	// unknown length); 0 when unknown.
	Needed  int64
	AtLeast bool
}

const diskFullErrorPrefix = "the registry's disk is full: "

func (e *DiskFullError) Error() string {
	return diskFullErrorPrefix + e.detail("this write needs") +
		"; free space on the registry's disk (delete images and collect garbage), then push again"
}

// detail says what is free and what was needed.
func (e *DiskFullError) detail(needed string) string {
	msg := units.Bytes(max(e.Free, 0)) + " free"
	switch {
	case e.Reserve > 0 && e.Free >= e.Reserve:
		msg += fmt.Sprintf(" (uploads leave %s of it for manifests and tags)", units.Bytes(e.Reserve))
	case e.Reserve > 0:
		msg += fmt.Sprintf(", less than the %s uploads leave for manifests and tags", units.Bytes(e.Reserve))
	}
	if e.Needed > 0 {
		need := units.Bytes(e.Needed)
		if e.AtLeast {
			need = "at least " + need
		}
		msg += ", " + needed + " " + need
	}
	return msg
}

// diskGuard keeps uploads from filling the data dir's filesystem and turns a
// full disk into a 507 instead of distribution's 500: uploads stop a reserve
// short of full, a write that fails anyway is recognised by its error (or by
// the free space left), and what it stored is deleted at once.
type diskGuard struct {
	dir    string
	eng    *engine
	log    *slog.Logger
	statfs func(dir string) (total, free int64, err error)

	mu      sync.Mutex
	total   int64
	free    int64 // at the last statfs
	since   int64 // bytes let through since then
	checked time.Time
	// refused is what the last write refused for lack of space needed, at
	// refusedAt; the disk counts as full until that much would fit again, or
	// for diskRefusalMemory. 0 when none.
	refused   int64
	refusedAt time.Time
	lastGC    time.Time
}

func newDiskGuard(dir string, eng *engine, log *slog.Logger) *diskGuard {
	return &diskGuard{dir: dir, eng: eng, log: log, statfs: statfs}
}

func statfs(dir string) (total, free int64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	// Bavail, not Bfree: what an unprivileged writer may use.
	return int64(st.Blocks) * int64(st.Bsize), int64(st.Bavail) * int64(st.Bsize), nil
}

// reserveLocked is the space uploads leave free.
func (g *diskGuard) reserveLocked() int64 {
	return min(DefaultDiskReserve, g.total/16)
}

// refreshLocked reads the free space. A failure leaves the last reading:
// the guard then errs on letting writes through, and a real ENOSPC is still
// answered as such.
func (g *diskGuard) refreshLocked() {
	total, free, err := g.statfs(g.dir)
	g.checked = time.Now()
	if err != nil {
		g.log.Warn("read free disk space", "err", err)
		return
	}
	g.total, g.free, g.since = total, free, 0
}

// admit lets n more bytes of an upload through, or refuses them when they
// would eat into the reserve. have is what the upload held before (for the
// message).
func (g *diskGuard) admit(n, have int64, atLeast bool) *DiskFullError {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.checked.IsZero() || g.since+n > diskRecheckBytes || time.Since(g.checked) > diskRecheckAge {
		g.refreshLocked()
	}
	reserve := g.reserveLocked()
	if avail := g.free - g.since - reserve; n > avail {
		return &DiskFullError{Free: g.free - g.since, Reserve: reserve, Needed: have + n, AtLeast: atLeast}
	}
	g.since += n
	return nil
}

// fits checks, without letting anything through, whether n bytes fit in the
// free space (less the reserve when forUpload).
func (g *diskGuard) fits(n int64, forUpload bool) *DiskFullError {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.refreshLocked()
	reserve := g.reserveLocked()
	avail := g.free - g.since
	if forUpload {
		avail -= reserve
	}
	if n > avail {
		return &DiskFullError{Free: g.free - g.since, Reserve: reserve, Needed: n}
	}
	return nil
}

// fullLocked reports whether the disk counts as full: free space under the
// reserve (or none at all), or too little for the last refused write.
func (g *diskGuard) fullLocked() *DiskFullError {
	reserve := g.reserveLocked()
	free := g.free - g.since
	if g.refused > 0 && (free-reserve >= g.refused || time.Since(g.refusedAt) > diskRefusalMemory) {
		g.refused = 0 // it would fit now, or it is old news
	}
	if free <= 0 || free < reserve || g.refused > 0 {
		return &DiskFullError{Free: free, Reserve: reserve, Needed: g.refused, AtLeast: true}
	}
	return nil
}

// noteRefused records a write refused for lack of space. One that needed
// nothing in particular (an upload refused at its start, while free space is
// under the reserve) leaves the free space to say it all.
func (g *diskGuard) noteRefused(needed int64) {
	if needed <= 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.refused, g.refusedAt = needed, time.Now()
}

// status reports the disk for QuotaStatus.
func (g *diskGuard) status() registryapi.DiskStatus {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.refreshLocked()
	st := registryapi.DiskStatus{Total: g.total, Free: g.free - g.since, Reserve: g.reserveLocked()}
	if e := g.fullLocked(); e != nil {
		st.Full, st.Reason = true, "full: "+e.detail("the last refused write needed")
	}
	return st
}

// nearlyFull reports a disk with less than 1 MiB (or the reserve, if less)
// free: a write that failed there most likely failed for lack of space.
func (g *diskGuard) nearlyFull() *DiskFullError {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.refreshLocked()
	reserve := g.reserveLocked()
	if free := g.free - g.since; free < min(max(reserve, 1), 1<<20) {
		return &DiskFullError{Free: free, Reserve: reserve}
	}
	return nil
}

// releaseFiles has the Go runtime close files distribution dropped without
// closing. When distribution's blob writer cannot store its hash state (the
// disk is full) its Close returns before closing the upload's data file; the
// upload is deleted, but a deleted file's blocks come back only when its last
// descriptor is closed, which the os.File's cleanup does once a collection
// finds it unreachable. Collect now (at most once a second) rather than at the
// next collection, which on an idle registry may be minutes away.
func (g *diskGuard) releaseFiles() {
	g.mu.Lock()
	if time.Since(g.lastGC) < time.Second {
		g.mu.Unlock()
		return
	}
	g.lastGC = time.Now()
	g.mu.Unlock()
	runtime.GC()
}

// enospcText and edquotText are how distribution's error details say the
// disk is full (it puts the storage driver's error text there).
var (
	enospcText = []byte(syscall.ENOSPC.Error())
	edquotText = []byte(syscall.EDQUOT.Error())
)

// withDiskGuard answers writes that fail for lack of space with 507 and a
// DENIED error saying how much is free, deletes what a failed upload stored,
// and stops uploads before they fill the disk. It sits inside the server
// errors layer, which would otherwise make the 507 a 500, and outside the
// quota layer.
func withDiskGuard(next http.Handler, g *diskGuard) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			next.ServeHTTP(w, r)
			return
		}
		rt := routeOf(r)
		upload := rt.Kind == RouteUpload && rt.Reference != "" && (r.Method == http.MethodPatch || r.Method == http.MethodPut)
		var held int64
		if upload {
			held, _ = g.eng.uploadSize(r.Context(), rt.Repository, rt.Reference)
		}
		// A body of known length that cannot fit is refused before a byte of
		// it is written, and so is a new upload while uploads have no room.
		// Manifests may use the reserve.
		var early *DiskFullError
		switch {
		case r.ContentLength > 0 && (upload || rt.Kind == RouteManifest):
			if early = g.fits(r.ContentLength, upload); early != nil {
				early.Needed += held
			}
		case rt.Kind == RouteUpload && rt.Reference == "" && r.Method == http.MethodPost && r.URL.Query().Get("mount") == "":
			early = g.fits(0, true)
		}
		if early != nil {
			g.refuse(w, r, rt, early, upload)
			return
		}
		var body *guardedBody
		if upload && r.Body != nil && r.Body != http.NoBody {
			atLeast := r.ContentLength < 0
			body = &guardedBody{ReadCloser: r.Body}
			body.take = func(n int64) error {
				if e := g.admit(n, held+body.read, atLeast); e != nil {
					return e
				}
				return nil
			}
			r.Body = body
		}
		dw := &diskFullWriter{ResponseWriter: w}
		next.ServeHTTP(dw, r)
		if !dw.held {
			return
		}
		var cut *DiskFullError
		switch {
		case body != nil && errors.As(body.err, &cut):
		case bytes.Contains(dw.body.Bytes(), enospcText) || bytes.Contains(dw.body.Bytes(), edquotText):
			cut = g.now()
		default:
			// A 5xx for some other reason, unless the disk is all but full
			// now: then that is the likeliest reason (e.g. our own index
			// files, whose errors are logged, not returned).
			if cut = g.nearlyFull(); cut == nil {
				dw.replay()
				return
			}
		}
		switch {
		case cut.Needed > 0:
		case body != nil:
			cut.Needed, cut.AtLeast = held+body.read+1, true
		case r.ContentLength > 0:
			cut.Needed = r.ContentLength
		}
		g.refuse(w, r, rt, cut, upload)
	})
}

// now reports what is free now, for a write that failed with ENOSPC.
func (g *diskGuard) now() *DiskFullError {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.refreshLocked()
	return &DiskFullError{Free: g.free - g.since, Reserve: g.reserveLocked()}
}

// refuse answers 507 and deletes what a refused upload stored.
func (g *diskGuard) refuse(w http.ResponseWriter, r *http.Request, rt Route, e *DiskFullError, upload bool) {
	if upload {
		if err := g.eng.cancelUpload(context.WithoutCancel(r.Context()), rt.Repository, rt.Reference); err != nil {
			g.log.Error("delete an upload that failed on a full disk", "repository", rt.Repository, "err", err)
		}
		g.releaseFiles()
	}
	g.noteRefused(e.Needed)
	g.log.Warn("write refused: disk full", "method", r.Method, "route", rt.Kind.String(), "repository", rt.Repository,
		"free", e.Free, "reserve", e.Reserve, "needed", e.Needed)
	writeOCIError(w, http.StatusInsufficientStorage, codeDenied, e.Error())
}

// diskFullWriter holds back a 5xx answer until the disk guard has decided
// whether the disk was full; anything else passes straight through.
type diskFullWriter struct {
	http.ResponseWriter
	status int
	held   bool
	body   bytes.Buffer
}

func (w *diskFullWriter) WriteHeader(code int) {
	if w.status != 0 {
		return
	}
	w.status = code
	if code >= 500 {
		w.held = true
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *diskFullWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.held {
		if w.body.Len() < 4096 {
			w.body.Write(b[:min(len(b), 4096-w.body.Len())])
		}
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

func (w *diskFullWriter) Flush() {
	if w.held {
		return
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// replay sends a held answer on as it was.
func (w *diskFullWriter) replay() {
	w.ResponseWriter.WriteHeader(w.status)
	_, _ = w.ResponseWriter.Write(w.body.Bytes())
}

func (w *diskFullWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ReadFrom passes through (sendfile, see readFromThrough) except while a 5xx
// is held.
func (w *diskFullWriter) ReadFrom(src io.Reader) (int64, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.held {
		return io.Copy(writeOnly{w}, src)
	}
	return readFromThrough(w.ResponseWriter, src)
}
