// Package version holds the build's version, set by the linker (make release).
package version

import (
	"fmt"
	"runtime"
)

// Set with -ldflags "-X github.com/slipway-dev/slipway/tools/internal/version.Version=...".
var (
	Version = "dev"
	Commit  = "unknown"
)

// String is what `slipway version` prints.
func String() string {
	return fmt.Sprintf("slipway %s %s %s/%s", Version, Commit, runtime.GOOS, runtime.GOARCH)
}
