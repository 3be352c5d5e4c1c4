package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/progress"
)

// finish decides the overall status and exit code, prints the summary table
// (stderr) and the result (stdout), and returns the error carrying the code.
func finish(ctx context.Context, o *Options, res *Result, runs []*hostRun) (*Result, error) {
	stop := o.OnFailure == "stop"
	var deployed, failed, rolled, left []*hostRun
	for _, r := range runs {
		res.Hosts = append(res.Hosts, *r.res)
		switch r.res.Status {
		case StatusDeployed:
			deployed = append(deployed, r)
		case StatusFailed:
			failed = append(failed, r)
		case StatusRolledBack:
			rolled = append(rolled, r)
		case StatusLeftChanged:
			left = append(left, r)
		}
	}
	anyProblem := len(failed)+len(rolled)+len(left) > 0
	cancelled := ctx.Err() != nil
	code := exit.OK
	switch {
	case !anyProblem && !cancelled:
		res.Status = "ok"
		if o.DryRun {
			res.Status = "planned"
		}
	case len(left) > 0 || (stop && len(deployed) > 0 && anyProblem):
		res.Status, code = StatusLeftChanged, exit.LeftChanged
	case len(rolled) > 0:
		res.Status, code = StatusRolledBack, exit.RolledBack
	default:
		res.Status, code = "failed", exit.Failed
		for _, r := range failed {
			if c := exit.Code(r.res.err); c == exit.Usage {
				code = c
				break
			}
		}
	}
	if cancelled && code != exit.LeftChanged {
		code = exit.Cancelled
		res.Status = "cancelled"
	}
	res.ExitCode = code
	summaryTable(o.Log, res)
	if o.JSON {
		enc := json.NewEncoder(o.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return res, err
		}
	} else if !o.DryRun {
		for _, h := range res.Hosts {
			fmt.Fprintf(o.Stdout, "%s\t%s\t%s\n", h.Host, h.Status, h.Release)
		}
	}
	if code == exit.OK {
		return res, nil
	}
	return res, exit.With(code, summaryError(res, runs, stop))
}

func summaryError(res *Result, runs []*hostRun, stop bool) error {
	var parts []string
	var cause error
	for _, r := range runs {
		h := r.res
		switch h.Status {
		case StatusFailed:
			parts = append(parts, fmt.Sprintf("%s: %s (nothing changed)", h.Host, h.Error))
		case StatusRolledBack:
			if h.Error != "" {
				parts = append(parts, fmt.Sprintf("%s: %s; %s", h.Host, h.Error, rolledBackTo(h.Previous)))
			} else {
				parts = append(parts, fmt.Sprintf("%s: %s (another host failed)", h.Host, rolledBackTo(h.Previous)))
			}
		case StatusLeftChanged:
			parts = append(parts, fmt.Sprintf("%s: %s; ROLLBACK FAILED: %s", h.Host, h.Error, h.RollbackError))
		case StatusDeployed:
			if stop {
				parts = append(parts, fmt.Sprintf("%s: left on the new release (--on-failure stop)", h.Host))
			}
		}
		if cause == nil && r.res.err != nil {
			cause = r.res.err
		}
	}
	msg := fmt.Sprintf("%s of %s %s: %s", res.Command, res.Project, short(res.Release), strings.Join(parts, "; "))
	if cause != nil && errors.Is(cause, context.Canceled) {
		return fmt.Errorf("%s: %w", msg, context.Canceled)
	}
	return errors.New(msg)
}

// summaryTable writes one line per host to the log (stderr).
func summaryTable(log *progress.Logger, res *Result) {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tSTATUS\tRELEASE\tPREVIOUS\tTIME")
	for _, h := range res.Hosts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", h.Host, h.Status, short(h.Release), orNone(short(h.Previous)),
			progress.Duration(time.Duration(h.Seconds*float64(time.Second))))
	}
	tw.Flush()
	log.Printf("%s %s: %s\n%s", res.Command, short(res.Release), res.Status, strings.TrimRight(b.String(), "\n"))
}

// writeJSON writes v indented to w.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func rolledBackTo(prev string) string {
	if prev == "" {
		return "rolled back (the first release here, taken down again)"
	}
	return "rolled back to " + short(prev)
}
