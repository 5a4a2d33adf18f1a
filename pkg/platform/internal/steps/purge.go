package steps

import (
	"context"
	"fmt"
	"os"
)

// Purge removes the cluster's files: the registry's images, certificates and settings.
type Purge struct{}

// Execute implements Step.
func (Purge) Execute(_ context.Context, c *Context) (err error) {
	c.Status.Start(fmt.Sprintf("Removing the registry's data %s", c.Layout.Dir))
	defer func() { c.Status.End(err) }()
	if err := os.RemoveAll(c.Layout.Dir); err != nil {
		return fmt.Errorf("remove registry data: %w", err)
	}
	return nil
}
