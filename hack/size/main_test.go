package main

import "testing"

func TestSymbolPackage(t *testing.T) {
	mods := map[string]string{
		"net/http": "std",
		"github.com/distribution/distribution/v3/registry/handlers": "github.com/distribution/distribution/v3",
		"github.com/distribution/distribution/v3":                   "github.com/distribution/distribution/v3",
		"gopkg.in/yaml.v3": "gopkg.in/yaml.v3",
	}
	tests := []struct{ sym, want string }{
		{"net/http.(*conn).serve", "net/http"},
		{"github.com/distribution/distribution/v3/registry/handlers.(*App).ServeHTTP", "github.com/distribution/distribution/v3/registry/handlers"},
		{"type:*github.com/distribution/distribution/v3/registry/handlers.App", "github.com/distribution/distribution/v3/registry/handlers"},
		{"go:itab.*net/http.response,net/http.ResponseWriter", "net/http"},
		{"github.com/distribution/distribution/v3.ErrBlobUnknown", "github.com/distribution/distribution/v3"},
		{"gopkg.in/yaml.v3.Unmarshal", "gopkg.in/yaml.v3"},
		{"slices.Sort[go.shape.string]", ""},
		{"runtime.pclntab", ""},
		{"go:func.*", ""},
	}
	for _, tt := range tests {
		if got := symbolPackage(tt.sym, mods); got != tt.want {
			t.Errorf("symbolPackage(%q) = %q, want %q", tt.sym, got, tt.want)
		}
	}
}
