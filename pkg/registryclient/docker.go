package registryclient

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/idpbuilder/idpbuilder/pkg/docker"
)

// ErrNoSuchImage means the Docker engine has no image by the name asked for.
var ErrNoSuchImage = errors.New("no such image in the local Docker engine")

// FromDocker reads image ref from d's engine (docker save, into a temporary
// file: go-containerregistry reads a tarball several times). cleanup removes
// the file; call it once the source is pushed.
func FromDocker(ctx context.Context, d *docker.Client, ref string) (src Source, cleanup func(), err error) {
	nop := func() {}
	if _, err := d.Server(ctx); err != nil {
		return Source{}, nop, err
	}
	ok, err := d.ImageExists(ctx, ref)
	if err != nil {
		return Source{}, nop, err
	}
	if !ok {
		return Source{}, nop, fmt.Errorf("%s: %w", ref, ErrNoSuchImage)
	}
	f, err := os.CreateTemp("", "idpbuilder-push-*.tar")
	if err != nil {
		return Source{}, nop, err
	}
	cleanup = func() { f.Close(); os.Remove(f.Name()) }
	if err := d.Save(ctx, f, ref); err != nil {
		cleanup()
		return Source{}, nop, fmt.Errorf("docker save %s: %w", ref, err)
	}
	src, err = FromTarball(f.Name(), ref)
	if err != nil {
		// docker save names an image it found by ID without a tag; retry untagged.
		src, err = FromTarball(f.Name(), "")
	}
	if err != nil {
		cleanup()
		return Source{}, nop, err
	}
	if src.Name == "" {
		src.Name = ref
	}
	return src, cleanup, nil
}
