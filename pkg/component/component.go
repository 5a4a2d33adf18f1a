// Package component defines the small lifecycle contract shared by every long-running
// piece of idpbuilder (the registry today; the cluster runtime and UI later), and a
// runner that starts them in order and stops them in reverse.
package component

import (
	"context"
	"errors"
	"fmt"
)

// Component is a piece with a lifecycle.
//
// Start must return once the component is serving (or has failed to); long-running
// work continues in the background until Stop. Stop must be safe to call after a
// failed or partial Start. Health reports whether the component can do its job now.
type Component interface {
	Name() string
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	Health(ctx context.Context) error
}

// Group starts components in order and stops them in reverse order.
type Group struct {
	components []Component
	started    []Component
}

// NewGroup returns a group for the given components.
func NewGroup(cs ...Component) *Group {
	return &Group{components: cs}
}

// Start starts every component in order. If one fails, those already started are
// stopped again (with ctx) and the start error is returned.
func (g *Group) Start(ctx context.Context) error {
	for _, c := range g.components {
		if err := c.Start(ctx); err != nil {
			startErr := fmt.Errorf("start %s: %w", c.Name(), err)
			if stopErr := g.Stop(ctx); stopErr != nil {
				return errors.Join(startErr, stopErr)
			}
			return startErr
		}
		g.started = append(g.started, c)
	}
	return nil
}

// Stop stops the started components in reverse order and joins their errors.
func (g *Group) Stop(ctx context.Context) error {
	var errs []error
	for i := len(g.started) - 1; i >= 0; i-- {
		c := g.started[i]
		if err := c.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", c.Name(), err))
		}
	}
	g.started = nil
	return errors.Join(errs...)
}

// Health checks every component and joins the failures.
func (g *Group) Health(ctx context.Context) error {
	var errs []error
	for _, c := range g.components {
		if err := c.Health(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.Name(), err))
		}
	}
	return errors.Join(errs...)
}
