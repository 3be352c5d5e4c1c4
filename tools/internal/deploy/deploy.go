// Package deploy puts a pushed release on servers over SSH and manages it
// there: deploy (with a pluggable strategy, recreate by default), rollback,
// status, releases and unlock. Each host gets one SSH connection; the
// server-side steps are in package deploy/remote.
package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/deploy/remote"
	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/progress"
)

// Defaults of the CLI contract.
const (
	DefaultHealthTimeout = 2 * time.Minute
	DefaultKeep          = 5
	// DefaultLockTTL is short because a running deploy renews its lock
	// (every TTL/4, see remote.RenewInterval): only a dead holder's lock
	// ages, and the next deploy should not wait long for it.
	DefaultLockTTL = 5 * time.Minute
)

// Options configure Deploy.
type Options struct {
	Target
	Manifest      string        // default manifest.DefaultPath
	Strategy      string        // default "recreate"
	EnvFile       string        // runtime .env for the server (mode 0600 there)
	Parallel      int           // hosts at a time, default 1
	Canary        bool          // the first host alone first
	OnFailure     string        // "rollback" (default) or "stop"
	HealthTimeout time.Duration // default 2m
	SmokeURL      string        // fetched through the SSH connection, expect 2xx
	Keep          int           // releases kept per host, default 5
	LockWait      time.Duration // wait this long for a held lock, default 0
	LockTTL       time.Duration // a lock older than this is taken over; default 5m, negative never
	PreDeploy     string        // "SERVICE: COMMAND" run on the new release before switching
	DryRun        bool          // print every remote change instead of making it
	// RenameProject allows deploying under another project name than the
	// host's current release runs under: the old project is taken down
	// first (volumes kept). Without it such a deploy is refused (exit 2).
	RenameProject bool
	// Compose: how hosts are converged, ComposeAuto (default), ComposeLibrary or ComposeCLI.
	Compose string
	JSON    bool      // stdout: the Result as JSON
	Stdout  io.Writer // results; default os.Stdout
	Log     *progress.Logger
	Getenv  func(string) string // default os.Getenv (credentials, BUILD_URL)

	planOut io.Writer // Stdout, safe for parallel hosts
}

// Host statuses in results.
const (
	StatusDeployed    = "deployed"     // on the new release
	StatusFailed      = "failed"       // failed before changing anything
	StatusRolledBack  = "rolled-back"  // changed, then back on its previous release
	StatusLeftChanged = "left-changed" // changed and not back (rollback failed)
	StatusSkipped     = "skipped"      // not attempted: an earlier batch failed
	StatusPlanned     = "planned"      // --dry-run
)

// HostResult is one host's outcome.
type HostResult struct {
	Host          string            `json:"host"`
	Status        string            `json:"status"`
	Release       string            `json:"release"`
	Previous      string            `json:"previous,omitempty"`
	Compose       string            `json:"compose,omitempty"`
	Dir           string            `json:"dir,omitempty"`
	Error         string            `json:"error,omitempty"`
	RollbackError string            `json:"rollbackError,omitempty"`
	Failing       []FailedContainer `json:"failingContainers,omitempty"`
	Pruned        []string          `json:"pruned,omitempty"`
	Plan          []string          `json:"plan,omitempty"` // --dry-run: the remote actions
	Seconds       float64           `json:"seconds"`
	Handshakes    int               `json:"handshakes"`
	Changes       []ServiceChange   `json:"changes,omitempty"`     // the change plan, per service
	Interrupted   string            `json:"interrupted,omitempty"` // an earlier deploy that died mid-converge, repaired by this one
	RenamedFrom   string            `json:"renamedFrom,omitempty"` // the project taken down for this one (--rename-project, or a rollback across a rename)
	KeptVolumes   []string          `json:"keptVolumes,omitempty"` // RenamedFrom's named volumes, left in place

	err error
}

// Result is a deploy's (or rollback's) outcome over all hosts.
type Result struct {
	Command  string       `json:"command"`
	Project  string       `json:"project"`
	Release  string       `json:"release,omitempty"`
	Strategy string       `json:"strategy,omitempty"`
	DryRun   bool         `json:"dryRun,omitempty"`
	Status   string       `json:"status"` // ok, failed, rolled-back, left-changed, planned
	ExitCode int          `json:"exitCode"`
	Hosts    []HostResult `json:"hosts"`
}

func (o *Options) setDefaults() {
	if o.Manifest == "" {
		o.Manifest = "slipway-release.json"
	}
	if o.Strategy == "" {
		o.Strategy = "recreate"
	}
	if o.Parallel == 0 {
		o.Parallel = 1
	}
	if o.OnFailure == "" {
		o.OnFailure = "rollback"
	}
	if o.HealthTimeout == 0 {
		o.HealthTimeout = DefaultHealthTimeout
	}
	if o.Keep == 0 {
		o.Keep = DefaultKeep
	}
	if o.LockTTL == 0 {
		o.LockTTL = DefaultLockTTL
	}
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Log == nil {
		o.Log = progress.New(os.Stderr)
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	o.planOut = &syncWriter{w: o.Stdout}
}

// syncWriter serialises writes from hosts running in parallel.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (o *Options) validate() (Strategy, error) {
	s, ok := strategyNamed(o.Strategy)
	if !ok {
		return nil, exit.Usagef("--strategy %q: not available; use one of %s", o.Strategy, strings.Join(Strategies(), ", "))
	}
	if o.Parallel < 1 {
		return nil, exit.Usagef("--parallel %d: want 1 or more hosts at a time", o.Parallel)
	}
	if err := validComposeMode(o.Compose); err != nil {
		return nil, err
	}
	if o.Compose == ComposeLibrary && s.Name() == "swarm" {
		return nil, exit.Usagef("--compose library with --strategy swarm: swarm deploys with the server's docker stack; use --compose auto")
	}
	if o.OnFailure != "rollback" && o.OnFailure != "stop" {
		return nil, exit.Usagef("--on-failure %q: want rollback or stop", o.OnFailure)
	}
	if o.HealthTimeout < 0 {
		return nil, exit.Usagef("--health-timeout %s: want a positive duration, e.g. 2m", o.HealthTimeout)
	}
	if o.Keep < 1 {
		return nil, exit.Usagef("--keep %d: want 1 or more releases (the current one counts)", o.Keep)
	}
	if o.LockWait < 0 {
		return nil, exit.Usagef("--lock-wait %s: want 0 or a positive duration", o.LockWait)
	}
	if o.PreDeploy != "" {
		if _, _, ok := parseHook(o.PreDeploy); !ok {
			return nil, exit.Usagef("--pre-deploy %q: want \"SERVICE: COMMAND\", e.g. \"web: python manage.py migrate\"", o.PreDeploy)
		}
	}
	if err := checkSmokeURL(o.SmokeURL); err != nil {
		return nil, exit.With(exit.Usage, err)
	}
	return s, nil
}

// hostRun is one host's state through the whole deploy: its connection and
// lock stay open until every host is done, so a later failure can still roll
// it back under the same lock.
type hostRun struct {
	name     string
	conn     *conn
	lock     *remote.Lock
	d        *HostDeploy
	res      *HostResult
	start    time.Time
	fresh    bool         // releases/<commit> was created by this deploy
	switched bool         // current was switched to the new release
	plan     bytes.Buffer // --dry-run --json: this host's plan

	target      *Target     // to reconnect when the connection dies
	stopRenew   func()      // stops the lock's renewal
	lockLost    atomic.Bool // renewal found the lock taken over
	handshakes  int         // of connections that died and were replaced
	interrupted *remote.Deploying
}

// failUnchanged records a failure that happened before the host changed.
func (r *hostRun) failUnchanged(log *progress.Logger, err error) {
	r.res.Status = StatusFailed
	r.res.err = err
	r.res.Error = err.Error()
	log.Printf("failed, nothing changed: %v", err)
}

// Deploy deploys the manifest's release to every host. The returned error
// carries the exit code of the contract (exit.Code): 1 nothing changed, 2 bad
// input, 4 failed and rolled back, 5 failed and left changed, 130 cancelled.
func Deploy(ctx context.Context, o Options) (*Result, error) {
	o.setDefaults()
	strategy, err := o.validate()
	if err != nil {
		return nil, err
	}
	hosts, err := o.hostList()
	if err != nil {
		return nil, err
	}
	b, err := loadBundle(o.Manifest, o.EnvFile, o.Log)
	if err != nil {
		return nil, err
	}
	if len(b.unpinned) > 0 {
		o.Log.Warnf("images without a digest (the server may run other bytes than were tested): %s", strings.Join(b.unpinned, ", "))
	}
	dockerConfig, registries, err := registryConfig(b.registries, b.envHosts(), o.Getenv)
	if err != nil {
		return nil, exit.With(exit.Failed, err)
	}
	if anon := missing(b.registries, registries); len(anon) > 0 {
		o.Log.Printf("no registry credentials for %s (neither SLIPWAY_REGISTRY_USER/SLIPWAY_REGISTRY_PASSWORD nor DOCKER_CONFIG has them): the servers pull anonymously or with their own docker login", strings.Join(anon, ", "))
	}
	res := &Result{Command: "deploy", Project: b.m.Project, Release: b.m.Commit, Strategy: strategy.Name(), DryRun: o.DryRun}
	runs := make([]*hostRun, len(hosts))
	for i, h := range hosts {
		runs[i] = &hostRun{name: h, res: &HostResult{Host: h, Status: StatusSkipped, Release: b.m.Commit}, target: &o.Target}
	}
	// Locks and connections are released on every path, even after a cancel.
	defer closeRuns(ctx, &o.Target, runs)

	failed := fanOut(ctx, len(runs), o.Parallel, o.Canary, func(ctx context.Context, i int) bool {
		r := runs[i]
		r.start = time.Now()
		deployHost(ctx, &o, strategy, b, dockerConfig, registries, r)
		r.res.Seconds = time.Since(r.start).Seconds()
		return r.res.Status == StatusDeployed || r.res.Status == StatusPlanned
	})

	if failed {
		// Hosts that finished on the new release: roll them back, or leave them.
		var done []*hostRun
		for _, r := range runs {
			if r.res.Status == StatusDeployed {
				done = append(done, r)
			}
		}
		if o.OnFailure == "rollback" && len(done) > 0 {
			o.Log.Printf("rolling back %d host(s) already on the new release", len(done))
			fanOut(ctx, len(done), o.Parallel, false, func(ctx context.Context, i int) bool {
				r := done[i]
				revertHost(ctx, strategy, r, "another host failed")
				return true
			})
		}
	} else {
		for _, r := range runs {
			if r.res.Status == StatusDeployed || r.res.Status == StatusPlanned {
				prune(ctx, r, o.Keep)
			}
		}
	}
	for _, r := range runs {
		if r.conn != nil {
			r.res.Handshakes = r.handshakes + r.conn.c.Handshakes()
		}
		if r.plan.Len() > 0 {
			r.res.Plan = strings.Split(strings.TrimRight(r.plan.String(), "\n"), "\n")
		}
	}
	return finish(ctx, &o, res, runs)
}

// deployHost runs the whole deploy on one host and records its outcome.
func deployHost(ctx context.Context, o *Options, strategy Strategy, b *bundle, dockerConfig []byte, registries []string, r *hostRun) {
	log := o.Log.With(r.name)
	c, err := o.Target.dial(ctx, r.name, log)
	if err != nil {
		r.failUnchanged(log, err)
		return
	}
	r.conn = c
	h := c.h
	h.Project = b.m.Project
	h.DryRun = o.DryRun
	if o.JSON {
		h.Plan = &r.plan // goes into the JSON result
	} else {
		h.Plan = o.planOut
	}
	facts, err := h.Probe(ctx)
	if err := chooseConverger(ctx, o.Compose, strategy.Name(), h, facts, err); err != nil {
		r.failUnchanged(log, err)
		return
	}
	r.res.Dir = facts.Dir
	r.res.Compose = composeUsed(h)
	r.res.Previous = facts.Current
	if !facts.Writable {
		r.failUnchanged(log, fmt.Errorf("deploy directory %s is not writable by the SSH user on %s: create it and chown it to that user, or choose another --dir", facts.Dir, r.name))
		return
	}
	log.Printf("docker %s, compose %s, dir %s, current release %s", facts.DockerVersion, composeName(h, facts), facts.Dir, orNone(short(facts.Current)))
	// The host's project wins; checked before the lock, so a refused deploy
	// leaves no trace, and again under it (current may move meanwhile).
	if facts.Project != "" && facts.Project != b.m.Project && !o.RenameProject {
		r.failUnchanged(log, projectMismatch(r.name, facts.Dir, facts.Current, facts.Project, b.m.Project))
		return
	}
	lock, err := h.AcquireLock(ctx, lockInfo(o, b), o.LockWait, o.LockTTL)
	if err != nil {
		r.failUnchanged(log, err)
		return
	}
	r.lock = lock
	r.keepLock(o.LockTTL, log)
	// Under the lock: current may have moved while we waited for it, and
	// whether releases/<commit> exists decides what a rollback removes.
	rels, cur, err := h.Releases(ctx)
	if err != nil {
		r.failUnchanged(log, err)
		return
	}
	if err := r.checkInterrupted(ctx, "deploy", b.m.Commit); err != nil {
		r.failUnchanged(log, err)
		return
	}
	facts.Current, r.res.Previous = cur, cur
	r.fresh = true
	prevProject := ""
	for _, rel := range rels {
		if rel.Name == b.m.Commit {
			r.fresh = false
		}
		if rel.Name == cur && rel.Meta != nil && rel.Meta.Project != b.m.Project {
			prevProject = rel.Meta.Project
		}
	}
	if prevProject != "" && !o.RenameProject {
		r.failUnchanged(log, projectMismatch(r.name, facts.Dir, cur, prevProject, b.m.Project))
		return
	}
	if err := releaseOfOtherProject(rels, b.m.Commit, b.m.Project, r.name); err != nil {
		r.failUnchanged(log, err)
		return
	}
	commit := b.m.Commit
	d := &HostDeploy{Host: h, Conn: c.c, Release: commit, Previous: facts.Current, Log: log,
		cfg:    hostConfig{healthTimeout: o.HealthTimeout, smokeURL: o.SmokeURL, preDeploy: o.PreDeploy},
		images: b.pullImages(), dockerConfig: dockerConfig, registries: registries, prevProject: prevProject}
	r.res.RenamedFrom = prevProject
	for _, rel := range rels {
		if rel.Name == d.Previous && rel.Meta != nil {
			d.prevImages = rel.Meta.Images
		}
	}
	if d.Previous == commit {
		// Deploying the current release again (a new .env, say): a rollback
		// goes to the same release.
		log.Printf("release %s is already current: converging it again", short(commit))
	}
	r.d = d
	files, err := releaseFiles(b, h.Kind, facts.Dir, d.Previous, o, log)
	if err != nil {
		r.failUnchanged(log, err)
		return
	}
	to, err := uploadRelease(ctx, h, commit, files)
	if err == nil {
		err = planChanges(ctx, d, r, rels, to)
	}
	if err != nil {
		r.failUnchanged(log, fmt.Errorf("the change plan: %w", err))
		return
	}
	if d.images == nil && h.Lib != nil {
		// Image references the server's .env decides: the library pulls
		// what the loaded release names (the CLI would run compose pull).
		d.images = imagesOf(to)
	}
	start := time.Now()
	if err := h.Upload(ctx, commit, files); err != nil {
		r.failUnchanged(log, err)
		return
	}
	if !o.DryRun {
		log.Done(fmt.Sprintf("upload of %d files", len(files)), start)
	}
	removeFresh := func() {
		if r.fresh && !o.DryRun {
			cctx, cancel := cleanupContext(ctx, 30*time.Second)
			_ = h.RemoveRelease(cctx, commit)
			cancel()
		}
	}
	if err := r.beginConverge(ctx, "deploy", commit, facts.Current, buildURL(b.m.BuildURL, o.Getenv)); err != nil {
		removeFresh()
		r.failUnchanged(log, err)
		return
	}
	if strategy.Name() != "swarm" {
		d.noteVolumes(ctx) // swarm creates volumes in its tasks, after stack rm returns
	}
	ok := r.applyAndSwitch(ctx, strategy, func(err error) {
		removeFresh()
		cctx, cancel := cleanupContext(ctx, 30*time.Second)
		d.removeCreatedVolumes(cctx) // a failed hook's `run` may have created some
		cancel()
		r.endConverge(ctx, d.Previous)
		r.failUnchanged(log, err)
	})
	if !ok {
		return
	}
	if o.DryRun {
		r.res.Status = StatusPlanned
		return
	}
	r.res.Status = StatusDeployed
	log.Printf("deployed release %s (previous %s) in %s", short(commit), orNone(short(d.Previous)), progress.Duration(time.Since(r.start)))
}

// applyAndSwitch is the end of every host deploy and rollback: it takes
// the previous project down when d renames it, applies strategy and
// switches current to d.Release. A failure after the host changed is
// recorded and reverted; one before it goes to unchanged. It reports
// whether the host is on d.Release.
func (r *hostRun) applyAndSwitch(ctx context.Context, strategy Strategy, unchanged func(error)) bool {
	d := r.d
	fail := func(err error) bool {
		r.res.err = err
		r.res.Error = err.Error()
		var he *HealthError
		if errors.As(err, &he) {
			r.res.Failing = he.Failing
		}
		d.Log.Printf("failed after changing the host: %v", err)
		revertHost(ctx, strategy, r, "")
		return false
	}
	if d.renamed() {
		vols, err := d.takeDownPrevious(ctx, strategy.Name() == "swarm")
		r.res.KeptVolumes = vols
		if err != nil {
			return fail(err)
		}
	}
	if err := strategy.Apply(ctx, d); err != nil {
		if !d.Changed() {
			unchanged(err)
			return false
		}
		return fail(err)
	}
	if err := d.Host.SwitchCurrent(ctx, d.Release); err != nil {
		return fail(err)
	}
	r.switched = true
	r.endConverge(ctx, d.Release)
	return true
}

// revertHost brings a changed host back to its previous release, with a
// context that survives cancellation. why is set when the host itself was fine.
func revertHost(ctx context.Context, strategy Strategy, r *hostRun, why string) {
	log := r.conn.log
	d := r.d
	rctx, cancel := cleanupContext(ctx, d.upTimeout()+d.cfg.healthTimeout)
	defer cancel()
	target := "release " + short(d.Previous)
	if d.Previous == "" {
		target = "no release (this was the first deploy here)"
	}
	if why != "" {
		log.Printf("rolling back to %s: %s", target, why)
		// The host was consistent (on the new release); converging it back
		// may be interrupted like any converge.
		if err := d.Host.WriteDeploying(rctx, r.marker("rollback", d.Previous, d.Release, "")); err != nil {
			log.Warnf("%v", err)
		}
	} else {
		log.Printf("rolling back to %s", target)
	}
	wasPaused := d.pausedService() != "" // a paused rolling host is left as it is, connection or not
	revert := func() error {
		if d.renamed() {
			return revertRenamed(rctx, strategy, d)
		}
		err := strategy.Revert(rctx, d)
		if err == nil && d.Previous == "" {
			d.removeCreatedVolumes(rctx) // a first deploy leaves nothing behind
		}
		return err
	}
	err := revert()
	if err != nil && !wasPaused && !d.Host.DryRun && !r.connAlive(rctx) {
		// The connection died mid-converge while this process lives: roll
		// back over a new one, as the lock is released over a new one.
		log.Printf("the SSH connection to %s is gone (%v): reconnecting to roll back", r.name, err)
		if derr := r.redial(rctx); derr != nil {
			err = fmt.Errorf("%w; reconnecting failed: %v; %s/.slipway/deploying records the interrupted converge: the next slipway deploy or rollback on this host detects it and converges the host again (run it once %s is reachable)",
				err, derr, d.Host.Dir, r.name)
		} else {
			err = revert()
		}
	}
	if err == nil && r.switched && d.Previous != "" {
		err = d.Host.SwitchCurrent(rctx, d.Previous)
	}
	if err != nil {
		r.res.Status = StatusLeftChanged
		r.res.RollbackError = err.Error()
		log.Printf("ROLLBACK FAILED, the host is left changed: %v", err)
		return
	}
	r.endConverge(rctx, d.Previous)
	if r.switched && d.Previous == "" {
		// A first release that was switched and then taken down: no current.
		if err := d.Host.RemoveCurrent(rctx); err != nil {
			log.Warnf("%v", err)
		}
	}
	if r.fresh && d.Previous != d.Release {
		if err := d.Host.RemoveRelease(rctx, d.Release); err != nil {
			log.Warnf("%v", err)
		}
	}
	r.res.Status = StatusRolledBack
	if d.Previous == "" {
		log.Printf("rolled back: release %s taken down, nothing was deployed here before", short(d.Release))
	} else {
		log.Printf("rolled back: release %s is serving again", short(d.Previous))
	}
}
