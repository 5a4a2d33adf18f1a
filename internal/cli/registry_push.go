package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/idpbuilder/idpbuilder/pkg/docker"
	"github.com/idpbuilder/idpbuilder/pkg/registryclient"
)

func newRegistryPushCommand(stdio IO) *cobra.Command {
	var platform, addr, tag string
	cmd := &cobra.Command{
		Use:   "push SOURCE [DESTINATION]",
		Short: "Push a local Docker image, an image tarball or an OCI layout into the registry",
		Long: "Preload the registry. SOURCE is one of:\n" +
			"  - a directory holding an OCI image layout (a multi-platform index is pushed whole;\n" +
			"    --platform picks one image),\n" +
			"  - an image tarball file (docker save / crane pull format),\n" +
			"  - the name of an image in the local Docker engine (streamed with docker save).\n" +
			"DESTINATION is a repository path with a tag (myapp:v1) in the registry; it defaults to\n" +
			"the source's own name where it has one.",
		Example: "  idpbuilder registry push myapp:dev\n" +
			"  idpbuilder registry push ./image.tar myapp:v1\n" +
			"  idpbuilder registry push ./oci-layout myapp:v1 --platform linux/arm64",
		Args: usageArgs(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := setup(cmd, stdio)
			if err != nil {
				return err
			}
			dest := ""
			if len(args) == 2 {
				dest = args[1]
			}
			client, _, err := registryClient(stdio, cfg, addr, true)
			if err != nil {
				return err
			}
			return runPush(cmd.Context(), stdio, client, args[0], dest, platform, tag)
		},
	}
	addSettingFlags(cmd.Flags(), "name", "registry-port", "cert-dir")
	cmd.Flags().StringVar(&addr, "registry-addr", "", "registry host:port (default localhost:<registry-port>)")
	cmd.Flags().StringVar(&platform, "platform", "", "push only this platform of a multi-platform OCI layout (os/arch[/variant])")
	cmd.Flags().StringVar(&tag, "image", "", "which image of a multi-image tarball (its repo:tag)")
	return cmd
}

func runPush(ctx context.Context, stdio IO, c *registryclient.Client, source, dest, platform, tag string) error {
	src, cleanup, err := resolveSource(ctx, &docker.Client{Exec: stdio.Exec}, source, platform, tag)
	if err != nil {
		return err
	}
	defer cleanup()
	ref, err := c.Destination(dest, src)
	if err != nil {
		return Usage(err)
	}
	digest, err := src.Digest()
	if err != nil {
		return fmt.Errorf("read %s: %w", source, err)
	}

	updates := make(chan v1.Update, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		showProgress(stdio.Err, updates)
	}()
	err = c.Push(ctx, src, ref, updates)
	<-done
	var te *transport.Error
	if errors.As(err, &te) && te.StatusCode == http.StatusUnauthorized {
		return fmt.Errorf("%w\nthe registry needs a login to push: idpbuilder registry login %s -u USER --password-stdin", err, c.Registry)
	}
	if err != nil {
		return err
	}
	kind := "image"
	if src.Index != nil {
		kind = "multi-platform index"
	}
	fmt.Fprintf(stdio.Out, "Pushed %s %s@%s\n", kind, ref.Context().Name(), digest)
	return nil
}

// resolveSource decides what SOURCE is: an OCI layout dir, a tarball file, or a
// Docker image name (saved to a temporary tarball, removed by cleanup).
func resolveSource(ctx context.Context, d *docker.Client, source, platform, tag string) (registryclient.Source, func(), error) {
	nop := func() {}
	info, statErr := os.Stat(source)
	switch {
	case statErr == nil && info.IsDir():
		if !registryclient.IsLayout(source) {
			return registryclient.Source{}, nop, Usage(fmt.Errorf("%s is a directory but not an OCI image layout (no oci-layout file)", source))
		}
		src, err := registryclient.FromLayout(source, platform)
		return src, nop, err
	case statErr == nil:
		if platform != "" {
			return registryclient.Source{}, nop, Usage(errors.New("--platform applies to OCI layouts only; an image tarball holds one platform"))
		}
		src, err := registryclient.FromTarball(source, tag)
		return src, nop, err
	}
	if platform != "" {
		return registryclient.Source{}, nop, Usage(errors.New("--platform applies to OCI layouts only; a Docker image holds one platform"))
	}
	src, cleanup, err := registryclient.FromDocker(ctx, d, source)
	switch {
	case errors.Is(err, registryclient.ErrNoSuchImage):
		return src, cleanup, Usage(fmt.Errorf("%s is not a file, a directory, or an image in the local Docker engine", source))
	case errors.Is(err, docker.ErrNotRunning):
		return src, cleanup, fmt.Errorf("%s is not a file or directory, so it was taken as a Docker image name, but: %w", source, err)
	}
	return src, cleanup, err
}

// showProgress renders push progress: a redrawn bar on a terminal, a line every
// few seconds (and at the end) otherwise.
func showProgress(w io.Writer, updates <-chan v1.Update) {
	tty := isTerminal(w)
	var last v1.Update
	lastLine := time.Now()
	for u := range updates {
		if u.Error != nil {
			continue // the push returns the error itself
		}
		last = u
		if tty {
			fmt.Fprintf(w, "\r%s", progressBar(u.Complete, u.Total, 30))
		} else if time.Since(lastLine) >= 2*time.Second {
			fmt.Fprintf(w, "pushed %s of %s\n", humanBytes(u.Complete), humanBytes(u.Total))
			lastLine = time.Now()
		}
	}
	if tty {
		fmt.Fprintf(w, "\r%s\n", progressBar(last.Complete, last.Total, 30))
	} else if last.Total > 0 {
		fmt.Fprintf(w, "pushed %s of %s\n", humanBytes(last.Complete), humanBytes(last.Total))
	}
}

func progressBar(done, total int64, width int) string {
	if total <= 0 {
		return "[" + strings.Repeat(" ", width) + "]"
	}
	filled := int(int64(width) * done / total)
	filled = min(max(filled, 0), width)
	return fmt.Sprintf("[%s%s] %3d%% %s/%s", strings.Repeat("=", filled), strings.Repeat(" ", width-filled),
		100*done/total, humanBytes(done), humanBytes(total))
}
