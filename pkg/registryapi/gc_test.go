package registryapi

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMatchRepo(t *testing.T) {
	for _, tt := range []struct {
		glob, repo string
		want       bool
	}{
		{"", "anything/at/all", true},
		{"ci/*", "ci/app", true},
		{"ci/*", "ci", false},
		{"ci/*", "ci/app/deep", false},
		{"ci/*", "cd/app", false},
		{"team/**", "team", true},
		{"team/**", "team/a", true},
		{"team/**", "team/a/b/c", true},
		{"team/**", "teams/a", false},
		{"**/cache", "a/b/cache", true},
		{"**/cache", "cache", true},
		{"**/cache", "a/cache/x", false},
		{"a/**/z", "a/z", true},
		{"a/**/z", "a/b/c/z", true},
		{"app-?", "app-1", true},
		{"app-[0-9]", "app-x", false},
		{"ci/[", "ci/[", false}, // malformed: matches nothing
	} {
		assert.Equal(t, tt.want, MatchRepo(tt.glob, tt.repo), "%s ~ %s", tt.glob, tt.repo)
	}
}

func TestGCRequestValidate(t *testing.T) {
	neg := Duration(-time.Second)
	for _, tt := range []struct {
		req  GCRequest
		want string
	}{
		{GCRequest{}, ""},
		{GCRequest{KeepTags: 3, Repo: "team/**"}, ""},
		{GCRequest{Grace: &neg}, "negative"},
		{GCRequest{KeepTags: -1}, "negative"},
		{GCRequest{Repo: "ci/*"}, "give keep_tags"},
		{GCRequest{KeepTags: 1, Repo: "ci//x"}, "empty path component"},
		{GCRequest{KeepTags: 1, Repo: "ci/a**"}, "whole path component"},
		{GCRequest{KeepTags: 1, Repo: "ci/["}, "syntax error"},
	} {
		err := tt.req.Validate()
		if tt.want == "" {
			assert.NoError(t, err, "%+v", tt.req)
		} else {
			assert.ErrorContains(t, err, tt.want, "%+v", tt.req)
		}
	}
}

func TestDurationJSON(t *testing.T) {
	b, err := json.Marshal(GCRequest{Grace: func() *Duration { d := Duration(90 * time.Second); return &d }()})
	require.NoError(t, err)
	assert.JSONEq(t, `{"grace":"1m30s"}`, string(b))
	var req GCRequest
	require.NoError(t, json.Unmarshal([]byte(`{"grace":"0s","dry_run":true}`), &req))
	require.NotNil(t, req.Grace)
	assert.Zero(t, *req.Grace)
	assert.True(t, req.DryRun)
	assert.ErrorContains(t, json.Unmarshal([]byte(`{"grace":3600}`), &req), "a duration is a string")
	assert.ErrorContains(t, json.Unmarshal([]byte(`{"grace":"later"}`), &req), "not a duration")
}
