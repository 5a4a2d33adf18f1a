//go:build !noengine

package registry

import (
	"context"
	"fmt"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/distribution/distribution/v3/registry/storage"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"

	// The filesystem storage driver registers itself with distribution's factory.
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
)

// This file is the only one that links distribution's server and storage
// (the bulk of the registry's share of the binary); `make size` builds
// without it (tag noengine) to measure that share.

// newApp builds distribution's app, turning its configuration panics into errors.
func newApp(ctx context.Context, cfg *configuration.Configuration) (app distributionApp, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("registry configuration rejected: %v", p)
		}
	}()
	return handlers.NewApp(ctx, cfg), nil
}

// openStorage opens our own handle on the filesystem storage under dataDir.
func openStorage(ctx context.Context, dataDir string) (storagedriver.StorageDriver, distribution.Namespace, error) {
	drv, err := factory.Create(ctx, "filesystem", map[string]any{"rootdirectory": dataDir})
	if err != nil {
		return nil, nil, err
	}
	ns, err := storage.NewRegistry(ctx, drv, storage.EnableDelete)
	if err != nil {
		return nil, nil, err
	}
	return drv, ns, nil
}
