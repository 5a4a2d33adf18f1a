package component

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type fake struct {
	name     string
	startErr error
	healthy  error
	log      *[]string
}

func (f *fake) Name() string { return f.name }
func (f *fake) Start(context.Context) error {
	*f.log = append(*f.log, "start "+f.name)
	return f.startErr
}
func (f *fake) Stop(context.Context) error {
	*f.log = append(*f.log, "stop "+f.name)
	return nil
}
func (f *fake) Health(context.Context) error { return f.healthy }

func TestGroupOrder(t *testing.T) {
	tests := []struct {
		name    string
		failAt  int // index whose Start fails; -1 for none
		want    []string
		wantErr string
	}{
		{name: "all start, stop reversed", failAt: -1, want: []string{"start a", "start b", "start c", "stop c", "stop b", "stop a"}},
		{name: "failure rolls back started ones", failAt: 2, want: []string{"start a", "start b", "start c", "stop b", "stop a"}, wantErr: "start c: boom"},
		{name: "first fails, nothing to stop", failAt: 0, want: []string{"start a"}, wantErr: "start a: boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log []string
			cs := []Component{&fake{name: "a", log: &log}, &fake{name: "b", log: &log}, &fake{name: "c", log: &log}}
			if tt.failAt >= 0 {
				cs[tt.failAt].(*fake).startErr = errors.New("boom")
			}
			g := NewGroup(cs...)
			err := g.Start(context.Background())
			if tt.wantErr != "" {
				require.EqualError(t, err, tt.wantErr)
			} else {
				require.NoError(t, err)
				require.NoError(t, g.Stop(context.Background()))
			}
			assert.Equal(t, tt.want, log)
		})
	}
}

func TestGroupHealth(t *testing.T) {
	var log []string
	g := NewGroup(&fake{name: "a", log: &log}, &fake{name: "b", log: &log, healthy: errors.New("disk full")})
	assert.EqualError(t, g.Health(context.Background()), "b: disk full")
}
