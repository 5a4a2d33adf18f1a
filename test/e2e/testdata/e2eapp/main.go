// Command e2eapp is the workload of idpbuilder's end-to-end tests, built static and
// imported into Docker as a one-file image (nothing comes from Docker Hub).
//
//	e2eapp            print the hello message and exit
//	e2eapp sleep      print the hello message and run until killed (for Deployments)
//	e2eapp push REF   build an image holding this very binary and push it to REF over
//	                  plain HTTP, then print its digest (a pod pushing to the registry)
package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

const hello = "hello from an idpbuilder e2e image"

func main() {
	if len(os.Args) < 2 {
		fmt.Println(hello)
		return
	}
	switch os.Args[1] {
	case "sleep":
		fmt.Println(hello)
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
		<-ch
	case "push":
		if len(os.Args) != 3 {
			fail(fmt.Errorf("usage: e2eapp push REF"))
		}
		digest, err := pushSelf(os.Args[2])
		if err != nil {
			fail(err)
		}
		fmt.Println(digest)
	default:
		fail(fmt.Errorf("unknown mode %q", os.Args[1]))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "e2eapp:", err)
	os.Exit(1)
}

func pushSelf(refStr string) (string, error) {
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "e2eapp", Mode: 0o755, Size: int64(len(self)), ModTime: time.Unix(0, 0)}); err != nil {
		return "", err
	}
	if _, err := tw.Write(self); err != nil {
		return "", err
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		return "", err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return "", err
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config.Entrypoint = []string{"/e2eapp"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return "", err
	}
	ref, err := name.ParseReference(refStr, name.Insecure)
	if err != nil {
		return "", err
	}
	// Retry briefly: the in-cluster name may take a moment to resolve after create.
	var lastErr error
	for range 30 {
		if lastErr = remote.Write(ref, img); lastErr == nil {
			d, err := img.Digest()
			return d.String(), err
		}
		time.Sleep(2 * time.Second)
	}
	return "", lastErr
}
