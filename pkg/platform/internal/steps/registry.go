package steps

import (
	"context"
	"errors"
	"fmt"

	"github.com/idpbuilder/idpbuilder/pkg/platform/internal/state"
	"github.com/idpbuilder/idpbuilder/pkg/registryruntime"
)

// Registry starts the cluster's registry in its mode, or repairs it, and
// records the settings it runs with. A container that cannot run this binary
// falls back to a process unless the user chose the mode. An instance of the
// other mode (the cluster was switched) is removed first: it must not keep the port.
type Registry struct{}

// Execute implements Step.
func (Registry) Execute(ctx context.Context, c *Context) (err error) {
	mode := c.Settings.Mode
	c.Status.Start(registryTitle(c, mode, ""))
	defer func() { c.Status.End(err) }()
	if err := removeOther(ctx, c, mode); err != nil {
		return err
	}
	rt, ep, err := ensure(ctx, c, mode)
	if err != nil && mode == registryruntime.ModeContainer && !c.ModeChosen && errors.Is(err, registryruntime.ErrNoLinuxBinary) {
		mode = registryruntime.ModeProcess
		c.Status.Start(registryTitle(c, mode, fmt.Sprintf(" (no container: %v)", err)))
		rt, ep, err = ensure(ctx, c, mode)
	}
	if err != nil {
		return err
	}
	c.Settings.Mode = mode
	if err := state.Save(c.Layout.SettingsFile(), c.Settings); err != nil {
		return fmt.Errorf("record the registry's settings: %w", err)
	}
	reg, err := c.ClusterRegistry(ep)
	if err != nil {
		return err
	}
	c.Runtime, c.Endpoint, c.Registry = rt, ep, &reg
	return nil
}

func registryTitle(c *Context, mode registryruntime.Mode, note string) string {
	return fmt.Sprintf("Starting the registry %s on localhost:%d%s", mode, c.Settings.Port, note)
}

func ensure(ctx context.Context, c *Context, mode registryruntime.Mode) (registryruntime.Runtime, *registryruntime.Endpoint, error) {
	rt, err := c.NewRuntime(ctx, mode)
	if err != nil {
		return nil, nil, err
	}
	ep, err := rt.Ensure(ctx)
	return rt, ep, err
}

func removeOther(ctx context.Context, c *Context, mode registryruntime.Mode) error {
	other, err := c.NewRuntime(ctx, mode.Other())
	if err != nil {
		return err
	}
	st, err := other.State(ctx)
	if err != nil || st.Status == registryruntime.StatusMissing {
		return err
	}
	if err := other.Remove(ctx); err != nil {
		return fmt.Errorf("remove the registry %s: %w", other.Describe(), err)
	}
	return nil
}

// RemoveRegistry removes the registry's instance in its mode (never its data).
type RemoveRegistry struct{}

// Execute implements Step.
func (RemoveRegistry) Execute(ctx context.Context, c *Context) (err error) {
	rt, err := c.NewRuntime(ctx, c.Settings.Mode)
	if err != nil {
		return err
	}
	c.Status.Start(fmt.Sprintf("Removing the registry %s (%s)", rt.Mode(), rt.Describe()))
	defer func() { c.Status.End(err) }()
	return rt.Remove(ctx)
}
