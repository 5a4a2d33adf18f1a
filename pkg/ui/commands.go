package ui

import (
	"net"
	"net/netip"
	"strings"
)

// Command is a command line a copy button puts on the clipboard.
type Command struct {
	Tool string // docker, podman, crane, kubectl, helm, oras
	Text string
}

// endpoint is how clients reach this registry, as the browser did.
type endpoint struct {
	// Host is host:port for pulls from this machine: a loopback address is
	// written "localhost", which Docker and ggcr treat as plain-HTTP-allowed.
	Host string
	// PlainHTTP is true when the registry speaks HTTP, not HTTPS.
	PlainHTTP bool
	// ClusterHost is host:port pods pull by (kubectl); empty means Host.
	ClusterHost string
}

// newEndpoint derives the pull host from the request's Host header.
func newEndpoint(requestHost string, tls bool, clusterHost string) endpoint {
	host, port, err := net.SplitHostPort(requestHost)
	if err != nil {
		host, port = requestHost, ""
		if tls {
			port = "443"
		} else {
			port = "80"
		}
	}
	if ip, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil && ip.IsLoopback() {
		host = "localhost"
	}
	return endpoint{Host: net.JoinHostPort(host, port), PlainHTTP: !tls, ClusterHost: clusterHost}
}

// loopback reports whether Host is this machine.
func (e endpoint) loopback() bool {
	return strings.HasPrefix(e.Host, "localhost:")
}

// reference is repo:tag or repo@digest at host.
func reference(host, repo, ref string) string {
	if strings.Contains(ref, ":") {
		return host + "/" + repo + "@" + ref
	}
	return host + "/" + repo + ":" + ref
}

// commands are the exact commands that fetch repo's ref with each client that
// fits its kind. Flags for plain HTTP are added where the client needs them:
// podman and oras always do; crane does except for localhost; Docker cannot be
// told on the command line (it allows plain HTTP to localhost by itself).
func (e endpoint) commands(repo, ref string, kind Kind) []Command {
	full := reference(e.Host, repo, ref)
	var cmds []Command
	switch kind {
	case KindImage, KindIndex:
		podman := "podman pull "
		if e.PlainHTTP {
			podman += "--tls-verify=false "
		}
		crane := "crane pull "
		if e.PlainHTTP && !e.loopback() {
			crane += "--insecure "
		}
		cluster := e.ClusterHost
		if cluster == "" {
			cluster = e.Host
		}
		cmds = append(cmds,
			Command{"docker", "docker pull " + full},
			Command{"podman", podman + full},
			Command{"crane", crane + full + " " + podName(repo) + ".tar"},
			Command{"kubectl", "kubectl run " + podName(repo) + " --image=" + reference(cluster, repo, ref)},
		)
	case KindHelm:
		if !strings.Contains(ref, ":") { // helm installs a chart by its version tag
			helm := "helm install " + podName(repo) + " oci://" + e.Host + "/" + repo + " --version " + ref
			if e.PlainHTTP {
				helm += " --plain-http"
			}
			cmds = append(cmds, Command{"helm", helm})
		}
		cmds = append(cmds, e.oras(full))
	default:
		cmds = append(cmds, e.oras(full))
	}
	return cmds
}

func (e endpoint) oras(full string) Command {
	if e.PlainHTTP {
		return Command{"oras", "oras pull --plain-http " + full}
	}
	return Command{"oras", "oras pull " + full}
}

// podName turns a repository's last component into a Kubernetes object name
// (DNS-1123 label): lower-case letters, digits and '-', at most 63.
func podName(repo string) string {
	last := repo[strings.LastIndex(repo, "/")+1:]
	var b strings.Builder
	for _, r := range strings.ToLower(last) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	s := strings.Trim(b.String(), "-")
	if len(s) > 63 {
		s = strings.Trim(s[:63], "-")
	}
	if s == "" {
		return "app"
	}
	return s
}
