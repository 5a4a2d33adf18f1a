// Package version reports what idpbuilder binary this is.
package version

import (
	"runtime"
	"runtime/debug"
)

// Set at build time with -ldflags "-X github.com/idpbuilder/idpbuilder/pkg/version.version=v1.2.3
// -X github.com/idpbuilder/idpbuilder/pkg/version.commit=abc123". Without them the values come
// from the module build info (go install …@version) or read "dev"/"unknown".
var (
	version = ""
	commit  = ""
)

// Info describes the running binary.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

// Get returns the binary's version information.
func Get() Info {
	info := Info{Version: version, Commit: commit, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && info.Commit == "" {
				info.Commit = s.Value
			}
		}
	}
	if info.Version == "" {
		info.Version = "dev"
	}
	if info.Commit == "" {
		info.Commit = "unknown"
	}
	return info
}
