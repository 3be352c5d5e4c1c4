// Command loadloop sends a bounded HTTP GET loop to a test address (loopback
// or the project's 10.213.0.0/24 test hosts) until SIGINT/SIGTERM, the count
// or the duration ends it, then prints its counts. `make demo` runs it during
// the rolling update; it is a development tool, not part of the release.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/loadloop"
)

func main() {
	url := flag.String("url", "", "URL to GET (http://127.0.0.1:8080/version)")
	count := flag.Int("count", 200000, "at most this many requests")
	dur := flag.Duration("duration", 5*time.Minute, "at most this long")
	workers := flag.Int("workers", 4, "requests in flight at once")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	l, err := loadloop.Start(context.Background(), loadloop.Options{URL: *url, Count: *count, Duration: *dur, Workers: *workers})
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadloop:", err)
		os.Exit(2)
	}
	select {
	case <-ctx.Done():
	case <-l.Done():
	}
	s := l.Stop()
	fmt.Printf("sent=%d ok=%d failed=%d last=%q\n", s.Total(), s.OK, s.Failed, s.Last)
	fmt.Fprintln(os.Stderr, "loadloop:", s.String())
	for _, f := range s.Failures {
		fmt.Fprintf(os.Stderr, "loadloop: failed at %s: %s\n", f.At.Round(time.Millisecond), f.Reason)
	}
}
