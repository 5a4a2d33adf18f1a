package cli

import (
	"github.com/idpbuilder/idpbuilder/pkg/config"
	"github.com/idpbuilder/idpbuilder/pkg/docker"
	"github.com/idpbuilder/idpbuilder/pkg/platform"
	"github.com/idpbuilder/idpbuilder/pkg/registryclient"
	"github.com/idpbuilder/idpbuilder/pkg/registryruntime"
)

// newPlatform is the platform library as this command line configures it;
// kind's own progress lines go to log.
func newPlatform(stdio IO, cfg config.Config, log *progress) *platform.Platform {
	p := &platform.Platform{
		StateDir:     config.StateDir(stdio.Env),
		Binary:       stdio.Binary,
		Docker:       &docker.Client{Exec: stdio.Exec},
		ServeCertDir: cfg.Registry.CertDir,
		Credentials:  credStore(stdio.Env),
	}
	if log != nil {
		p.Logger = &kindLogger{w: log}
	}
	return p
}

// given is what the user gave for a cluster's registry, defaults included,
// with which settings they chose (flag, environment or config file): the
// others follow what the cluster was created with.
func given(cfg config.Config) platform.Given {
	cc := cfg.Cluster
	mode := registryruntime.ModeContainer
	if cc.RegistryMode != "" {
		mode = registryruntime.Mode(cc.RegistryMode)
	}
	return platform.Given{
		Settings: platform.Settings{
			Mode: mode, Port: cc.RegistryPort, TLS: cc.RegistryTLS, Auth: cc.RegistryAuth,
			InClusterName: cc.InClusterName, Htpasswd: cfg.Registry.Htpasswd, NodeImage: cc.NodeImage, KindConfig: cc.KindConfig,
		},
		Chosen: platform.Fields{
			Mode:          cc.RegistryMode != "",
			Port:          cfg.IsSet("cluster.registryPort"),
			TLS:           cfg.IsSet("cluster.registryTLS"),
			Auth:          cfg.IsSet("cluster.registryAuth"),
			InClusterName: cfg.IsSet("cluster.inClusterName"),
			Htpasswd:      cfg.IsSet("registry.htpasswd"),
			NodeImage:     cfg.IsSet("cluster.nodeImage"),
			KindConfig:    cfg.IsSet("cluster.kindConfig"),
		},
	}
}

// registryClient is a client for the registry at addr, or for the cluster's
// registry when addr is empty (see platform.Client); write is set for pushes
// and deletes. scheme is what the cluster's registry speaks.
func registryClient(stdio IO, cfg config.Config, addr string, write bool) (client *registryclient.Client, scheme string, err error) {
	return newPlatform(stdio, cfg, nil).Client(platform.ClientOptions{
		Cluster: cfg.Cluster.Name, Given: given(cfg), Addr: addr, Write: write,
	})
}

// serverArg is the registry a command's optional HOST:PORT argument names:
// by default the cluster's registry, on the port it was created with.
func serverArg(stdio IO, cfg config.Config, args []string) (string, error) {
	if len(args) == 1 {
		return args[0], nil
	}
	in, err := newPlatform(stdio, cfg, nil).Info(cfg.Cluster.Name, given(cfg))
	if err != nil {
		return "", err
	}
	return in.HostAddr, nil
}
