//go:build noengine

package registry

import (
	"context"
	"errors"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/configuration"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
)

// A build with the tag noengine has no registry engine: it exists only so that
// `make size` can measure how much the engine adds to the binary.
var errNoEngine = errors.New("this binary was built without the registry engine (build tag noengine)")

func newApp(context.Context, *configuration.Configuration) (distributionApp, error) {
	return nil, errNoEngine
}

func openStorage(context.Context, string) (storagedriver.StorageDriver, distribution.Namespace, error) {
	return nil, nil, errNoEngine
}
