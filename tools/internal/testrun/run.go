package testrun

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/slipway-dev/slipway/tools/internal/composecli"
	"github.com/slipway-dev/slipway/tools/internal/engine"
	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/manifest"
	"github.com/slipway-dev/slipway/tools/internal/progress"
)

// pollInterval is how often the engine is asked about the stack's containers
// while waiting for dependencies and tests.
const pollInterval = 200 * time.Millisecond

// tailLines is how much of a failing service's log is printed.
const tailLines = 30

// Run runs the test stack described by opts and returns its summary (also
// written to <results>/summary.json once the stack was started). The error
// carries the exit code: 2 bad input, 3 tests failed or timed out, 130
// cancelled, 1 anything else. The stack is always torn down.
func Run(ctx context.Context, opts Options) (*Summary, error) {
	if err := defaults(&opts); err != nil {
		return nil, err
	}
	log := opts.Log
	files, err := findFiles(opts.WorkDir, opts.Files)
	if err != nil {
		return nil, err
	}
	var m *manifest.Manifest
	manifestPath := opts.Manifest
	if manifestPath != "" {
		if !filepath.IsAbs(manifestPath) {
			manifestPath = filepath.Join(opts.WorkDir, manifestPath)
		}
		if m, err = manifest.Read(manifestPath); err != nil {
			return nil, err
		}
	}
	if err := checkImageVars(files, m, manifestPath); err != nil {
		return nil, err
	}
	base := filepath.Base(filepath.Dir(files[0]))
	if m != nil {
		base = m.Project
	}
	name := RunName(base, lookupEnv(opts.Environ, "BUILD_TAG"))
	environ := append(append([]string{}, opts.Environ...), imageEnv(m)...)

	p, err := loadProject(ctx, files, name, environ)
	if err != nil {
		return nil, err
	}
	tests, err := SelectTests(p, opts.Services)
	if err != nil {
		return nil, err
	}
	if p, err = p.WithServicesEnabled(tests...); err != nil {
		return nil, exit.Usagef("enabling test services %s: %v", strings.Join(tests, ", "), err)
	}
	needed, err := closure(p, tests)
	if err != nil {
		return nil, err
	}
	paths, err := resultsPaths(p, tests, opts.ResultsPaths)
	if err != nil {
		return nil, err
	}

	compose, err := composecli.Detect(ctx)
	if err != nil {
		return nil, err
	}
	eng, err := engine.New(ctx)
	if err != nil {
		return nil, err
	}
	defer eng.Close()
	images, err := resolveImages(ctx, eng, p, needed, m, manifestPath)
	if err != nil {
		return nil, err
	}
	stack, warnings, err := prepare(p, needed, tests, images)
	if err != nil {
		return nil, err
	}
	rendered, err := render(stack, compose.V1())
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "slipway-test-")
	if err != nil {
		return nil, fmt.Errorf("creating a temporary directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	// 0600: the rendered file holds the interpolated environment.
	file := filepath.Join(tmp, "compose.slipway-test.json")
	if err := os.WriteFile(file, rendered, 0o600); err != nil {
		return nil, fmt.Errorf("writing the rendered test stack: %w", err)
	}

	r := &runner{
		opts: opts, log: log, eng: eng, compose: compose, stack: stack, images: images,
		paths: paths, tests: tests, needed: needed,
		cp: composecli.Project{Name: name, Files: []string{file}, ProjectDir: stack.WorkingDir, Env: environ, Log: log.With("compose")},
		sum: &Summary{
			SchemaVersion: SummarySchemaVersion, Project: name, Files: files, Manifest: opts.Manifest,
			Compose: compose.String(), Tests: tests, Failed: []string{}, Warnings: warnings,
			Services: map[string]*ServiceResult{},
		},
	}
	if m != nil {
		r.sum.Commit = m.Commit
	}
	for _, w := range warnings {
		log.Warnf("%s", w)
	}
	return r.run(ctx)
}

func defaults(o *Options) error {
	if o.Log == nil {
		o.Log = progress.Discard()
	}
	if o.WorkDir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return fmt.Errorf("finding the working directory: %w", err)
		}
		o.WorkDir = wd
	}
	if o.Environ == nil {
		o.Environ = os.Environ()
	}
	if o.ResultsDir == "" {
		o.ResultsDir = DefaultResultsDir
	}
	if !filepath.IsAbs(o.ResultsDir) {
		o.ResultsDir = filepath.Join(o.WorkDir, o.ResultsDir)
	}
	if o.Timeout < 0 {
		return exit.Usagef("--timeout %s: must not be negative (0 means no limit)", o.Timeout)
	}
	if o.StopGrace <= 0 {
		o.StopGrace = 10 * time.Second
	}
	if o.TeardownTimeout <= 0 {
		o.TeardownTimeout = 2 * time.Minute
	}
	return nil
}

func lookupEnv(environ []string, key string) string {
	for i := len(environ) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(environ[i], key+"="); ok {
			return v
		}
	}
	return ""
}

// runner is one run of a prepared stack.
type runner struct {
	opts    Options
	log     *progress.Logger
	eng     *engine.Client
	compose *composecli.CLI
	cp      composecli.Project
	stack   *types.Project
	images  map[string]imageSource
	paths   map[string][]string // results paths by service
	tests   []string
	needed  []string
	sum     *Summary

	mu       sync.Mutex
	svcs     map[string]*service
	failure  *failure // the first dependency failure, if any
	streams  sync.WaitGroup
	stopLogs context.CancelFunc
	warned   map[string]bool
}

// service is the run's view of one compose service.
type service struct {
	name       string
	cfg        types.ServiceConfig
	test       bool
	started    bool
	containers []engine.Container
	stopped    bool // stopped by slipway (timeout, failed dependency)
}

// failure is why a run stopped early because of a dependency.
type failure struct {
	service string
	outcome string
	msg     string
	code    int // exit code: TestsFailed, or Usage for a stack that cannot work
}

func (r *runner) run(ctx context.Context) (*Summary, error) {
	start := time.Now()
	r.sum.Started = start.UTC()
	log := r.log
	log.Printf("test stack %s: tests %s, with %s (%s)", r.cp.Name, strings.Join(r.tests, ", "),
		strings.Join(r.dependencies(), ", "), r.compose)

	// Teardown happens whatever happens below, on its own bounded context so
	// that a cancelled run (Jenkins abort) still cleans up.
	defer r.teardown(ctx)

	if err := r.cleanResults(); err != nil {
		return nil, err
	}
	logCtx, stopLogs := context.WithCancel(context.WithoutCancel(ctx))
	r.stopLogs = stopLogs
	defer stopLogs()

	// Building test-only images is not counted in --timeout (a cold build
	// cache is not a slow test); everything from creating the stack is.
	err := r.build(ctx)
	runCtx, cancel := ctx, context.CancelFunc(func() {})
	if r.opts.Timeout > 0 {
		runCtx, cancel = context.WithTimeout(ctx, r.opts.Timeout)
	}
	defer cancel()
	if err == nil {
		err = r.up(runCtx)
	}
	upFailed := err != nil
	if err == nil {
		err = r.execute(runCtx, logCtx)
	}

	// Tests that finished as the deadline passed did not time out.
	cancelled := ctx.Err() != nil
	timedOut := !cancelled && runCtx.Err() != nil && err != nil
	result, code, msg := ResultPassed, exit.OK, ""
	switch {
	case cancelled:
		result, code, msg = ResultCancelled, exit.Cancelled, "cancelled (SIGINT/SIGTERM)"
	case timedOut:
		result, code, msg = ResultTimeout, exit.TestsFailed, r.timeoutMessage()
	case r.failure != nil:
		result, code, msg = ResultFailed, r.failure.code, r.failure.msg
	case upFailed || err != nil:
		result, code, msg = ResultError, exit.Code(err), err.Error()
	}

	if !cancelled {
		// Collecting results and logs gets its own bound: the run's own
		// context may be past its deadline.
		cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute+r.opts.StopGrace)
		r.stopEarly(cctx, timedOut)
		r.waitLogs()
		r.collect(cctx)
		ccancel()
	}
	r.finish(result, timedOut)
	if result == ResultPassed && len(r.sum.Failed) > 0 {
		result, code = ResultFailed, exit.TestsFailed
		var parts []string
		for _, n := range r.sum.Failed {
			switch res := r.sum.Services[n]; {
			case res != nil && res.ExitCode != nil:
				parts = append(parts, fmt.Sprintf("%s exited with code %d", n, *res.ExitCode))
			case res != nil:
				parts = append(parts, n+" "+res.Outcome)
			default:
				parts = append(parts, n)
			}
		}
		msg = "tests failed: " + strings.Join(parts, ", ")
	}
	r.sum.Result, r.sum.ExitCode, r.sum.Message = result, code, msg
	r.sum.Finished = time.Now().UTC()
	r.sum.DurationSeconds = seconds(time.Since(start))
	// Written on cancellation too (it costs no engine call), before teardown,
	// so a Jenkins post step finds what happened.
	if werr := writeSummary(r.opts.ResultsDir, r.sum); werr != nil {
		log.Warnf("writing %s: %v", filepath.Join(r.opts.ResultsDir, "summary.json"), werr)
	}
	if !cancelled {
		r.report()
	}

	switch result {
	case ResultPassed:
		log.Printf("tests passed: %s", strings.Join(r.tests, ", "))
		return r.sum, nil
	case ResultCancelled:
		return r.sum, fmt.Errorf("test run %s cancelled: %w", r.cp.Name, context.Canceled)
	case ResultError:
		if err == nil {
			err = errors.New(msg)
		}
		return r.sum, exit.With(code, fmt.Errorf("test stack %s: %w", r.cp.Name, err))
	default:
		return r.sum, exit.With(code, fmt.Errorf("%s; see %s", msg, filepath.Join(r.rel(r.opts.ResultsDir), "summary.json")))
	}
}

// dependencies are the needed services that are not tests.
func (r *runner) dependencies() []string {
	var out []string
	for _, n := range r.needed {
		if !contains(r.tests, n) {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return []string{"no dependencies"}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// cleanResults removes what an earlier run left where this one writes, so
// Jenkins never publishes stale JUnit files. Only slipway's own outputs go:
// the results directory may hold other things.
func (r *runner) cleanResults() error {
	dir := r.opts.ResultsDir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return exit.Usagef("--results %s: %v", dir, err)
	}
	stale := []string{"summary.json", "logs"}
	stale = append(stale, r.needed...)
	for _, s := range stale {
		if err := os.RemoveAll(filepath.Join(dir, s)); err != nil {
			return fmt.Errorf("clearing old results %s: %w", filepath.Join(dir, s), err)
		}
	}
	return os.MkdirAll(filepath.Join(dir, "logs"), 0o755)
}

// build builds the test-only images.
func (r *runner) build(ctx context.Context) error {
	var builds []string
	for _, n := range r.needed {
		if r.images[n].Built != "" {
			builds = append(builds, n)
		}
	}
	if len(builds) > 0 {
		t := time.Now()
		r.log.Printf("building test-only images: %s", strings.Join(builds, ", "))
		err := r.compose.Run(ctx, r.cp, append([]string{"build"}, builds...)...)
		if err != nil && ctx.Err() == nil && strings.Contains(err.Error(), "unable to find image") {
			// Another run of the same project on this engine removed its
			// identical test image at teardown, and with it the cached layers
			// this classic build was using (seen with concurrent Jenkins runs).
			// A second build makes the layers again.
			r.log.Warnf("building test-only images: a cached layer vanished mid-build (another run's teardown); building again")
			err = r.compose.Run(ctx, r.cp, append([]string{"build"}, builds...)...)
		}
		if err != nil {
			return fmt.Errorf("building test-only services: %w", err)
		}
		r.log.Done("building test-only images", t)
	}
	return nil
}

// up creates the stack's networks, volumes and containers without starting
// anything: slipway starts them service by service, as the depends_on
// conditions allow.
func (r *runner) up(ctx context.Context) error {
	args := []string{"up", "--no-start", "--no-build"}
	if err := r.compose.Run(ctx, r.cp, append(args, r.needed...)...); err != nil {
		return fmt.Errorf("creating the stack: %w", err)
	}
	return nil
}

// execute starts services as their dependencies allow and watches every
// container until all test services have exited, a dependency fails, or ctx
// ends.
func (r *runner) execute(ctx, logCtx context.Context) error {
	r.svcs = map[string]*service{}
	for _, n := range r.needed {
		cfg, _ := r.stack.GetService(n)
		r.svcs[n] = &service{name: n, cfg: cfg, test: contains(r.tests, n)}
	}
	r.warned = map[string]bool{}
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		if err := r.refresh(ctx); err != nil {
			return err
		}
		if f := r.checkDependencies(); f != nil {
			r.fail(f)
			return nil
		}
		ready, f := r.readyToStart()
		if f != nil {
			r.fail(f)
			return nil
		}
		// Services ready together start together, as compose would.
		errs := make([]error, len(ready))
		var wg sync.WaitGroup
		for i, s := range ready {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = r.start(ctx, logCtx, s)
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err == nil {
				continue
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r.fail(&failure{service: ready[i].name, outcome: OutcomeNotStarted, code: exit.TestsFailed,
				msg: fmt.Sprintf("service %s could not start: %v", ready[i].name, err)})
			return nil
		}
		if r.testsDone() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (r *runner) fail(f *failure) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failure == nil {
		r.failure = f
	}
}

// refresh reads the state of every container of the run.
func (r *runner) refresh(ctx context.Context) error {
	if r.svcs == nil {
		return nil // never got as far as starting anything
	}
	cs, err := r.eng.ProjectContainers(ctx, r.cp.Name)
	if err != nil {
		return err
	}
	for _, s := range r.svcs {
		s.containers = s.containers[:0]
	}
	for _, c := range cs {
		if s, ok := r.svcs[c.Service]; ok && !c.OneOff {
			s.containers = append(s.containers, c)
		}
	}
	return nil
}
