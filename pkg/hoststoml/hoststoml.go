// Package hoststoml renders containerd's per-registry host configuration, the
// hosts.toml files under a certs.d directory: for the cluster's nodes (pkg/kind)
// and for this machine's containerd (`registry trust`), one renderer for both.
package hoststoml

import (
	"fmt"
	"strings"
)

// File is one registry's hosts.toml: containerd sends the pulls and pushes
// for a registry name to Server.
type File struct {
	// Comment, when set, is the first line (a "# " is added): lets a writer
	// recognise its own files.
	Comment string
	// Server is the registry's base URL, e.g. http://localdev-registry:5000.
	Server string
	// CA is the path of the CA containerd verifies Server with; empty for the
	// system roots (never skip_verify).
	CA string
	// Authorization, when set, is a header value containerd sends with each request.
	Authorization string
}

// String renders the file. The explicit [host] entry matters: with config_path
// set, containerd no longer treats localhost as plain HTTP on its own.
func (f File) String() string {
	var b strings.Builder
	if f.Comment != "" {
		fmt.Fprintf(&b, "# %s\n", f.Comment)
	}
	fmt.Fprintf(&b, "server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\", \"push\"]\n", f.Server, f.Server)
	if f.CA != "" {
		fmt.Fprintf(&b, "  ca = %q\n", f.CA)
	}
	if f.Authorization != "" {
		fmt.Fprintf(&b, "  [host.%q.header]\n    Authorization = [%q]\n", f.Server, f.Authorization)
	}
	return b.String()
}
