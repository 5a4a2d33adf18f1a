package hoststoml

import (
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestString(t *testing.T) {
	tests := []struct {
		name string
		file File
		want string
	}{
		{
			name: "plain HTTP",
			file: File{Server: "http://localdev-registry:5000"},
			want: `server = "http://localdev-registry:5000"

[host."http://localdev-registry:5000"]
  capabilities = ["pull", "resolve", "push"]
`,
		},
		{
			name: "TLS with a CA and a login, marked",
			file: File{Comment: "written by idpbuilder", Server: "https://localhost:5001", CA: "/etc/containerd/certs.d/localhost:5001/ca.crt", Authorization: "Basic YTpi"},
			want: `# written by idpbuilder
server = "https://localhost:5001"

[host."https://localhost:5001"]
  capabilities = ["pull", "resolve", "push"]
  ca = "/etc/containerd/certs.d/localhost:5001/ca.crt"
  [host."https://localhost:5001".header]
    Authorization = ["Basic YTpi"]
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.file.String())
		})
	}
}

// TestParses: what containerd reads, as containerd's own decoder sees it.
func TestParses(t *testing.T) {
	var doc struct {
		Server string
		Host   map[string]struct {
			Capabilities []string
			CA           string
			Header       map[string][]string
		}
	}
	f := File{Server: "https://r:5000", CA: "/c/ca.crt", Authorization: `Basic "q"`}
	_, err := toml.Decode(f.String(), &doc)
	require.NoError(t, err)
	assert.Equal(t, "https://r:5000", doc.Server)
	h := doc.Host["https://r:5000"]
	assert.Equal(t, []string{"pull", "resolve", "push"}, h.Capabilities)
	assert.Equal(t, "/c/ca.crt", h.CA)
	assert.Equal(t, []string{`Basic "q"`}, h.Header["Authorization"])
}
