// Package testrun implements `slipway test`: it runs a compose test stack
// against exactly the images build recorded in the release manifest, under a
// project name unique to the run, waits for dependencies through the Engine
// API, runs the test services to completion, copies their results and logs
// out, writes <results>/summary.json and always tears the stack down.
package testrun

import (
	"time"

	"github.com/slipway-dev/slipway/tools/internal/progress"
)

// Defaults of the command's flags.
const (
	DefaultResultsDir = "test-results"
	DefaultTimeout    = 30 * time.Minute
)

// DefaultFiles are looked for, in order, when no -f is given.
var DefaultFiles = []string{
	"docker-compose.test.yml", "docker-compose.test.yaml",
	"compose.test.yml", "compose.test.yaml",
}

// Options are the flags of `slipway test`.
type Options struct {
	Files        []string      // -f, in order; empty: the first of DefaultFiles found in WorkDir
	Services     []string      // --service; empty: see SelectTests
	ResultsDir   string        // --results; default DefaultResultsDir
	ResultsPaths []string      // --results-path [SERVICE:]PATH
	Timeout      time.Duration // --timeout; 0 means no limit
	// Manifest is the release manifest to take built images from. Empty means
	// none: every service runs its own image or is built as compose would.
	Manifest string

	WorkDir string   // directory relative paths are taken from; default cwd
	Environ []string // environment for interpolation and compose; default os.Environ()
	Log     *progress.Logger

	// StopGrace is how long a test container gets to write its results after
	// SIGTERM when the run is cut short (timeout, crashed dependency); the
	// service's stop_grace_period wins when set. Default 10 s.
	StopGrace time.Duration
	// TeardownTimeout bounds teardown, which runs on a fresh context even
	// after cancellation. Default 2 min.
	TeardownTimeout time.Duration
}
