// Command slipway builds, tests, pushes and deploys docker-compose apps.
package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/cli"
	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/grace"
)

func main() {
	out, err := grace.Setup(os.Getenv)
	if err != nil {
		fmt.Fprintf(os.Stderr, "slipway: error: %v\n", err)
		finish(nil, exit.Usage)
	}
	g, err := grace.ParseGrace(os.Getenv(grace.EnvGrace))
	if err != nil {
		fmt.Fprintf(os.Stderr, "slipway: error: %v\n", err)
		finish(out, exit.Usage)
	}
	ctx, stop := grace.Signal(context.Background(), g)
	go watchdog(ctx, out, g)
	err = cli.App().RunContext(ctx, os.Args)
	cancelled := ctx.Err() != nil
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "slipway: error: %v\n", err)
	}
	code := exit.Code(err)
	if code == exit.Failed && cancelled {
		code = exit.Cancelled
	}
	finish(out, code)
}

var once sync.Once

// finish flushes the log file, then writes the exit file (the step reads
// the log once the exit file exists), then exits. Only the first call
// (main's or the watchdog's) counts.
func finish(out *grace.Output, code int) {
	once.Do(func() {
		out.Close()
		if err := grace.WriteExitFile(os.Getenv, code); err != nil {
			fmt.Fprintf(os.Stderr, "slipway: warning: %v\n", err)
		}
		os.Exit(code)
	})
	select {} // the other caller is exiting
}

// watchdog ends a cancelled deploy or rollback that overruns its grace
// (plus a moment for the last messages): its cleanup calls are bounded by
// the grace, so this only catches a call that is not. Hosts may then be
// left changed (exit 5: `slipway rollback --repair` restores them). Other
// commands keep their own cleanup bounds (a test run's teardown must not
// be cut short: it would leave containers behind).
func watchdog(ctx context.Context, out *grace.Output, g time.Duration) {
	if len(os.Args) < 2 || (os.Args[1] != "deploy" && os.Args[1] != "rollback") {
		return
	}
	<-ctx.Done()
	if grace.Cause(ctx) == nil {
		return
	}
	time.Sleep(g + 3*time.Second)
	fmt.Fprintf(os.Stderr, "slipway: error: the cleanup after the interruption did not finish within %s (%s): hosts may be left changed; run slipway rollback --repair\n", g, grace.EnvGrace)
	finish(out, exit.LeftChanged)
}
