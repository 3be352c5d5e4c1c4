// Command slipway builds, tests, pushes and deploys docker-compose apps.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/slipway-dev/slipway/tools/internal/cli"
	"github.com/slipway-dev/slipway/tools/internal/exit"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.App().RunContext(ctx, os.Args)
	cancelled := ctx.Err() != nil
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "slipway: error: %v\n", err)
	}
	code := exit.Code(err)
	if code == exit.Failed && cancelled {
		code = exit.Cancelled
	}
	os.Exit(code)
}
