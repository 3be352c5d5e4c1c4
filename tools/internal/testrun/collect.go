package testrun

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/engine"
)

// collect copies results out of the containers and saves every service's log,
// after stopping (gracefully) the running services that have results paths,
// so that what they write on shutdown (coverage, reports) is there.
func (r *runner) collect(ctx context.Context) {
	cs, err := r.eng.ProjectContainers(ctx, r.cp.Name)
	if err != nil {
		r.log.Warnf("collecting results: %v", err)
		return
	}
	byService := map[string][]engine.Container{}
	for _, c := range cs {
		if !c.OneOff {
			byService[c.Service] = append(byService[c.Service], c)
		}
	}
	for svc, containers := range byService {
		if len(r.paths[svc]) == 0 {
			continue
		}
		for _, c := range containers {
			if c.Running {
				r.log.Printf("stopping %s to collect its results", svc)
				if err := r.eng.StopContainer(ctx, c.ID, r.opts.StopGrace); err != nil {
					r.log.Warnf("%v", err)
				}
			}
		}
	}
	// The final states (exit codes of what was just stopped) go in the summary.
	if err := r.refresh(ctx); err != nil {
		r.log.Warnf("collecting results: %v", err)
	}
	for _, n := range r.needed {
		res := r.result(n)
		containers := byService[n]
		for _, c := range containers {
			res.Containers = append(res.Containers, c.Name)
		}
		if len(containers) == 0 {
			continue
		}
		r.saveLog(ctx, n, containers, res)
		for _, c := range containers {
			dest := filepath.Join(r.opts.ResultsDir, n)
			if len(containers) > 1 {
				dest = filepath.Join(dest, fmt.Sprint(c.Number))
			}
			for _, p := range r.paths[n] {
				r.copyResults(ctx, n, c, p, dest, res)
			}
		}
	}
}

func (r *runner) result(n string) *ServiceResult {
	res, ok := r.sum.Services[n]
	if !ok {
		role := "dependency"
		if contains(r.tests, n) {
			role = "test"
		}
		src := r.images[n]
		res = &ServiceResult{Role: role, Image: src.Ref, ManifestService: src.FromManifest, Containers: []string{}}
		r.sum.Services[n] = res
	}
	return res
}

func (r *runner) saveLog(ctx context.Context, n string, containers []engine.Container, res *ServiceResult) {
	file := filepath.Join(r.opts.ResultsDir, "logs", n+".log")
	f, err := os.Create(file)
	if err != nil {
		r.log.Warnf("saving the log of %s: %v", n, err)
		return
	}
	defer f.Close()
	for _, c := range containers {
		if len(containers) > 1 {
			fmt.Fprintf(f, "==> %s <==\n", c.Name)
		}
		if err := r.eng.ContainerLogs(ctx, c, false, f); err != nil {
			r.log.Warnf("saving the log of %s: %v", n, err)
		}
	}
	res.Log = filepath.ToSlash(filepath.Join("logs", n+".log"))
}

func (r *runner) copyResults(ctx context.Context, n string, c engine.Container, p, dest string, res *ServiceResult) {
	rc, err := r.eng.CopyFromContainer(ctx, c.ID, p)
	if errors.Is(err, engine.ErrNoSuchPath) {
		r.log.Warnf("%s: results path %s does not exist in container %s; nothing copied (did the tests write there?)", n, p, c.Name)
		res.MissingResults = append(res.MissingResults, p)
		return
	}
	if err != nil {
		r.log.Warnf("%s: %v", n, err)
		res.MissingResults = append(res.MissingResults, p)
		return
	}
	defer rc.Close()
	if err := os.MkdirAll(dest, 0o755); err != nil {
		r.log.Warnf("%s: %v", n, err)
		return
	}
	files, err := untar(rc, dest)
	rel, _ := filepath.Rel(r.opts.ResultsDir, dest)
	for _, f := range files {
		res.Results = append(res.Results, filepath.ToSlash(filepath.Join(rel, f)))
	}
	if err != nil {
		r.log.Warnf("%s: copying %s: %v", n, p, err)
	}
	r.log.Printf("%s: copied %s (%d files) to %s", n, p, len(files), r.rel(dest))
}

// finish fills in every service's state and outcome from the final states.
func (r *runner) finish(result string, timedOut bool) {
	now := time.Now()
	for _, n := range r.needed {
		res := r.result(n)
		var s *service
		if r.svcs != nil {
			s = r.svcs[n]
		}
		var containers []engine.Container
		if s != nil {
			containers = s.containers
		}
		res.State = "not-created"
		for i, c := range containers {
			if i == 0 || (c.Exited() && c.ExitCode != 0) {
				res.State, res.Health, res.OOMKilled = c.Status, c.Health, c.OOMKilled
				if c.Exited() {
					code := c.ExitCode
					res.ExitCode = &code
				} else {
					res.ExitCode = nil
				}
			}
			res.Restarts += c.RestartCount
			if !c.StartedAt.IsZero() {
				end := c.FinishedAt
				if end.IsZero() || end.Before(c.StartedAt) {
					end = now
				}
				if d := seconds(end.Sub(c.StartedAt)); d > res.DurationSeconds {
					res.DurationSeconds = d
				}
			}
		}
		started := s != nil && s.started
		switch {
		case r.failure != nil && r.failure.service == n:
			res.Outcome, res.Message = r.failure.outcome, r.failure.msg
		case !started:
			res.Outcome = OutcomeNotStarted
		case res.Role == "test" && s.stopped && timedOut:
			res.Outcome = OutcomeTimeout
		case res.Role == "test" && s.stopped:
			res.Outcome = OutcomeStopped
		case res.Role == "test" && res.ExitCode != nil && *res.ExitCode == 0:
			res.Outcome = OutcomePassed
		case res.Role == "test" && res.ExitCode != nil:
			res.Outcome = OutcomeFailed
		case res.Role == "test":
			res.Outcome = OutcomeTimeout // still running when the run ended
		default:
			res.Outcome = OutcomeOK
		}
		// Failed lists causes: a service stopped or never started because of
		// another's failure is a consequence.
		failed := res.Outcome != OutcomePassed && res.Outcome != OutcomeOK &&
			res.Outcome != OutcomeNotStarted && res.Outcome != OutcomeStopped
		if failed {
			r.sum.Failed = append(r.sum.Failed, n)
		}
	}
	sort.Strings(r.sum.Failed)
}

// report prints one line per service (dependencies first) and the log tail
// of the failing ones.
func (r *runner) report() {
	order := append(append([]string{}, r.dependencies()...), r.tests...)
	for _, n := range order {
		res, ok := r.sum.Services[n]
		if !ok {
			continue
		}
		code := "-"
		if res.ExitCode != nil {
			code = fmt.Sprint(*res.ExitCode)
		}
		line := fmt.Sprintf("%-10s %-11s %s (exit %s, %.1fs)", res.Role, res.Outcome, n, code, res.DurationSeconds)
		if len(res.Results) > 0 {
			line += fmt.Sprintf(", %d result files", len(res.Results))
		}
		r.log.Printf("%s", line)
	}
	for _, n := range r.sum.Failed {
		res := r.sum.Services[n]
		if res.Log == "" {
			continue
		}
		lines := tailFile(filepath.Join(r.opts.ResultsDir, filepath.FromSlash(res.Log)), tailLines)
		if len(lines) == 0 {
			continue
		}
		l := r.log.With(n)
		l.Printf("--- last %d lines of %s ---", len(lines), r.rel(filepath.Join(r.opts.ResultsDir, filepath.FromSlash(res.Log))))
		for _, line := range lines {
			l.Printf("%s", line)
		}
	}
}

// teardown removes everything of the run: containers (with their anonymous
// volumes), networks, named volumes and the run-local images. It runs on a
// fresh, bounded context so it also happens after a cancellation, and it
// sweeps by project label through the Engine API so nothing is left even when
// the compose CLI fails or was killed.
func (r *runner) teardown(parent context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), r.opts.TeardownTimeout)
	defer cancel()
	t := time.Now()
	log := r.log
	// The Engine API sweep removes, by the compose project label, all that
	// `compose down --volumes` would (containers, killed: results are already
	// out; their anonymous volumes; networks; named volumes), without another
	// start of the CLI (most of a second for Python v1). `compose down` runs
	// only when the sweep failed or left something, then a second sweep.
	_, err := r.eng.RemoveProject(ctx, r.cp.Name)
	left, lerr := r.eng.ListProject(ctx, r.cp.Name)
	if err != nil || lerr != nil || !left.Empty() {
		if err != nil {
			log.Warnf("teardown: %v; trying compose down", err)
		}
		cp := r.cp
		cp.Log = nil // the error carries the output's tail
		if err := r.compose.Run(ctx, cp, r.downArgs()...); err != nil {
			log.Warnf("teardown: %v", err)
		}
		if _, err := r.eng.RemoveProject(ctx, r.cp.Name); err != nil {
			log.Warnf("teardown: %v", err)
		}
		left, lerr = r.eng.ListProject(ctx, r.cp.Name)
	}
	for _, n := range r.needed {
		if b := r.images[n].Built; b != "" {
			if err := r.eng.RemoveImageTag(ctx, b); err != nil {
				log.Warnf("teardown: %v", err)
			}
		}
	}
	switch {
	case lerr != nil:
		log.Warnf("teardown: checking what is left: %v", lerr)
	case !left.Empty():
		log.Warnf("teardown of %s left %s: remove them with docker rm -f / docker network rm / docker volume rm", r.cp.Name, left)
	default:
		log.Done("teardown of "+r.cp.Name, t)
	}
}

func (r *runner) downArgs() []string {
	return []string{"down", "--volumes", "--remove-orphans", "--timeout", "0"}
}
