package push

import (
	"context"
	"fmt"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/engine"
	"github.com/slipway-dev/slipway/tools/internal/progress"
)

// Retry is a bounded exponential backoff for transient registry errors
// (429, 5xx, connection resets, timeouts). Authentication, TLS and
// unreachable-registry errors are never retried: waiting will not fix them.
//
// A registry's Retry-After is not honoured because slipway never sees it:
// the engine passes on only the registry's error text (a 429 arrives as
// "toomanyrequests: ..." in the push stream), never its headers; the
// backoff below is the wait (TestRegistryFault429ThenSuccess).
type Retry struct {
	Attempts int           // total tries, at least 1
	Initial  time.Duration // wait before the second try
	Max      time.Duration // cap on one wait
}

// DefaultRetry: 5 tries over about 15 s.
var DefaultRetry = Retry{Attempts: 5, Initial: time.Second, Max: 8 * time.Second}

// Do runs fn until it succeeds, fails with a non-transient error, or the
// attempts are used up; each retry is logged with its reason.
func (r Retry) Do(ctx context.Context, log *progress.Logger, what string, fn func() error) error {
	if r.Attempts < 1 {
		r.Attempts = 1
	}
	delay := r.Initial
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if engine.Classify(err) != engine.KindRetryable {
			return err
		}
		if attempt >= r.Attempts {
			return fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
		}
		log.Warnf("%s failed: %s; retrying in %s (attempt %d of %d)", what, firstLine(err), progress.Duration(delay), attempt+1, r.Attempts)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		if delay *= 2; r.Max > 0 && delay > r.Max {
			delay = r.Max
		}
	}
}
