package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// refServer is the machine's own reference, run as a process of its own like
// the registries: GET /file serves a file with http.ServeContent (sendfile on
// Linux); PUT /upload hashes the body with sha256 while writing it to a new
// file, as the least a registry must do to accept a blob (with ?fsync, it also
// syncs the file before answering, as distribution does). It prints its
// address on stdout once it listens.
func refServer(args []string) error {
	fs := flag.NewFlagSet("refserver", flag.ContinueOnError)
	dir := fs.String("dir", "", "directory for its files")
	size := fs.Int64("size", 512<<20, "size of the served file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return err
	}
	file := filepath.Join(*dir, "file")
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, rand.Reader, *size); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /file", func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(file)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer f.Close()
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, "", time.Time{}, f)
	})
	mux.HandleFunc("PUT /upload", func(w http.ResponseWriter, r *http.Request) {
		f, err := os.CreateTemp(*dir, "upload-")
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		h := sha256.New()
		_, err = io.Copy(io.MultiWriter(f, h), r.Body)
		if err == nil && r.URL.Query().Has("fsync") {
			err = f.Sync()
		}
		err = errors.Join(err, f.Close())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Docker-Content-Digest", "sha256:"+hex.EncodeToString(h.Sum(nil)))
		w.WriteHeader(http.StatusCreated)
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(l.Addr().String())
	return http.Serve(l, mux)
}

type refServerProc struct {
	cmd    *exec.Cmd
	base   string
	client *http.Client
}

func startRefServer(ctx context.Context, self, dir string, size int64) (*refServerProc, error) {
	cmd := exec.CommandContext(ctx, self, "refserver", "-dir", dir, "-size", fmt.Sprint(size))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("reference server: %w", err)
	}
	return &refServerProc{cmd: cmd, base: "http://" + strings.TrimSpace(line), client: newClient()}, nil
}

func (p *refServerProc) reg() reg { return reg{c: p.client, base: p.base} }

func (p *refServerProc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	_ = p.cmd.Wait()
}
