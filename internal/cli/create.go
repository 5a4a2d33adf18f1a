package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"

	"github.com/idpbuilder/idpbuilder/pkg/certs"
	"github.com/idpbuilder/idpbuilder/pkg/config"
	"github.com/idpbuilder/idpbuilder/pkg/docker"
	"github.com/idpbuilder/idpbuilder/pkg/kind"
	"github.com/idpbuilder/idpbuilder/pkg/registryruntime"
)

// helpURL is published in the cluster's local-registry-hosting ConfigMap.
const helpURL = "https://github.com/idpbuilder/idpbuilder/blob/main/docs/kind.md"

func newCreateCommand(stdio IO) *cobra.Command {
	var withRegistry, recreate bool
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create (or reconcile) a Kind cluster whose nodes pull from the built-in registry",
		Long: "Create a Kind cluster and a registry beside it, then wire them together: nodes pull\n" +
			"localhost:<port>/IMAGE from the registry, pods push to <in-cluster-name>:5000.\n" +
			"Running create again on an existing cluster re-checks and repairs the wiring.\n" +
			"Images are kept in the state dir and survive delete + create (delete --purge removes them).",
		Example: "  idpbuilder create\n" +
			"  idpbuilder create --name dev --registry-port 5002\n" +
			"  IDPBUILDER_NODE_IMAGE=kindest/node:v1.34.0 idpbuilder create --recreate",
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := setup(cmd, stdio)
			if err != nil {
				return err
			}
			return runCreate(cmd.Context(), stdio, cfg, withRegistry, recreate)
		},
	}
	addSettingFlags(cmd.Flags(), "name", "node-image", "kind-config", "registry-port", "in-cluster-name",
		"registry-mode", "registry-tls", "registry-auth", "htpasswd")
	cmd.Flags().BoolVar(&withRegistry, "registry", true, "run the built-in registry and wire the nodes to it")
	cmd.Flags().BoolVar(&recreate, "recreate", false, "delete the cluster first if it exists")
	return cmd
}

// step prints a progress line in the style of kind's own.
func step(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, " • "+format+"\n", args...)
}

func runCreate(ctx context.Context, stdio IO, cfg config.Config, withRegistry, recreate bool) error {
	cc := cfg.Cluster
	kindCfg, err := kind.LoadConfig(cc.KindConfig)
	if err != nil {
		return Usage(err)
	}
	d := &docker.Client{}
	if _, err := d.Server(ctx); err != nil {
		return err
	}
	cl, err := kind.New(cc.Name, &kindLogger{w: stdio.Err})
	if err != nil {
		return err
	}
	exists, err := cl.Exists()
	if err != nil {
		return err
	}
	if exists && recreate {
		step(stdio.Err, "Deleting cluster %q (--recreate)", cc.Name)
		if err := cl.Delete(); err != nil {
			return err
		}
		exists = false
	}
	if exists {
		step(stdio.Err, "Cluster %q exists: checking its wiring", cc.Name)
		if err := cl.CheckWiringPossible(ctx); err != nil {
			return err
		}
	} else {
		if err := createCluster(ctx, stdio, d, cl, kindCfg, cc.NodeImage); err != nil {
			return err
		}
	}
	if !withRegistry {
		fmt.Fprintf(stdio.Out, "Cluster %q is ready (no registry: --registry=false).\n", cc.Name)
		return nil
	}

	_, ep, err := ensureRegistry(ctx, stdio, cfg)
	if err != nil {
		if errors.Is(err, registryruntime.ErrNoLinuxBinary) {
			return fmt.Errorf("%w\nthe registry container is built from this binary: build a static one with `make build` (CGO_ENABLED=0), or use --registry-mode=process", err)
		}
		return err
	}
	reg, err := clusterRegistry(stdio, cfg, ep)
	if err != nil {
		return err
	}
	ns, err := cl.Nodes()
	if err != nil {
		return err
	}
	step(stdio.Err, "Wiring %d node(s): hosts.toml for %v", len(ns), reg.Names())
	if err := cl.WireNodes(ctx, reg); err != nil {
		return err
	}
	step(stdio.Err, "Publishing kube-public/local-registry-hosting and %s for pods", reg.InClusterHost())
	if err := cl.ApplyObjects(ctx, reg); err != nil {
		return err
	}

	fmt.Fprintf(stdio.Out, `Cluster %q is ready; its nodes pull from the built-in registry.
  push from this machine:  %[2]s/IMAGE
  pull/push from pods:     %[3]s/IMAGE
  kubectl context:         kind-%[1]s
`, cc.Name, reg.HostAddr, reg.InClusterHost())
	st := resolveSettings(stdio, cfg)
	if st.TLS {
		fmt.Fprintf(stdio.Out, "  TLS:                     local CA %s (sudo idpbuilder registry trust %s --name %s)\n",
			filepath.Join(clusterCertDir(stdio.Env, cc.Name), certs.CAFile), reg.HostAddr, cc.Name)
	}
	if st.Auth != "none" {
		fmt.Fprintf(stdio.Out, "  login (--auth=%s):      idpbuilder registry login %s -u USER --password-stdin\n", st.Auth, reg.HostAddr)
	}
	fmt.Fprintf(stdio.Out, `
Try it:
  docker tag IMAGE %[1]s/myapp:v1
  docker push %[1]s/myapp:v1
  kubectl run myapp --image=%[1]s/myapp:v1
`, reg.HostAddr)
	return nil
}

func createCluster(ctx context.Context, stdio IO, d *docker.Client, cl *kind.Cluster, kindCfg *v1alpha4.Cluster, nodeImage string) error {
	step(stdio.Err, "Creating cluster %q", cl.Name)
	err := cl.Create(kindCfg, nodeImage, 3*time.Minute)
	if err == nil {
		return nil
	}
	if nodeImage != "" {
		if ok, ierr := d.ImageExists(ctx, nodeImage); ierr == nil && !ok {
			return fmt.Errorf("%w\nnode image %s is not in the Docker engine and could not be pulled: load or build it, or choose another with --node-image / IDPBUILDER_NODE_IMAGE", err, nodeImage)
		}
	}
	return err
}
