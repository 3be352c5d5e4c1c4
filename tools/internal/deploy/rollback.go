package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/owner"

	"github.com/slipway-dev/slipway/tools/internal/deploy/remote"
	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/manifest"
	"github.com/slipway-dev/slipway/tools/internal/progress"
	"github.com/slipway-dev/slipway/tools/internal/regauth"
)

// RollbackOptions configure Rollback.
type RollbackOptions struct {
	Target
	To            string        // release (commit or unique prefix); default: the one before current
	Parallel      int           // hosts at a time, default 1
	HealthTimeout time.Duration // default 2m
	SmokeURL      string
	LockWait      time.Duration
	LockTTL       time.Duration // default 5m (DefaultLockTTL), negative never
	// Repair: converge the release current names again on a host that a
	// deploy or rollback left mid-converge (see repairHost), instead of
	// going back to an earlier release.
	Repair bool
	// Compose: how hosts are converged, ComposeAuto (default), ComposeLibrary or ComposeCLI.
	Compose string
	JSON    bool
	Stdout  io.Writer
	Log     *progress.Logger
	Getenv  func(string) string
}

// Rollback switches every host back to an earlier release that is still on
// it: compose up of that release directory, the health gate, then `current`.
// A host whose rollback fails is put back on the release it was on (exit 4;
// 5 if that fails too).
func Rollback(ctx context.Context, ro RollbackOptions) (*Result, error) {
	o := Options{Target: ro.Target, Parallel: ro.Parallel, HealthTimeout: ro.HealthTimeout, SmokeURL: ro.SmokeURL,
		LockWait: ro.LockWait, LockTTL: ro.LockTTL, Compose: ro.Compose, JSON: ro.JSON, Stdout: ro.Stdout, Log: ro.Log, Getenv: ro.Getenv}
	o.setDefaults()
	if _, err := o.validate(); err != nil {
		return nil, err
	}
	hosts, err := o.hostList()
	if err != nil {
		return nil, err
	}
	if ro.To != "" && (len(ro.To) < 4 || strings.Trim(ro.To, "0123456789abcdef") != "") {
		return nil, exit.Usagef("--to %q: want a release commit (at least 4 lower-case hex digits), as `slipway releases` lists them", ro.To)
	}
	if ro.Repair && ro.To != "" {
		return nil, exit.Usagef("--repair restores the release current names; it takes no --to")
	}
	res := &Result{Command: "rollback", Release: ro.To}
	runs := make([]*hostRun, len(hosts))
	for i, h := range hosts {
		runs[i] = &hostRun{name: h, res: &HostResult{Host: h, Status: StatusSkipped}, target: &o.Target}
	}
	defer closeRuns(ctx, &o.Target, runs)
	fanOut(ctx, len(runs), o.Parallel, false, func(ctx context.Context, i int) bool {
		r := runs[i]
		r.start = time.Now()
		rollbackHost(ctx, &o, ro.To, ro.Repair, r)
		r.res.Seconds = time.Since(r.start).Seconds()
		if res.Project == "" && r.d != nil {
			res.Project = r.d.Host.Project
		}
		return r.res.Status == StatusDeployed
	})
	for _, r := range runs {
		if r.conn != nil {
			r.res.Handshakes = r.handshakes + r.conn.c.Handshakes()
		}
	}
	if res.Release == "" && len(runs) == 1 {
		res.Release = runs[0].res.Release
	}
	return finish(ctx, &o, res, runs)
}

// closeRuns releases every lock and closes every connection, also after a cancel.
func closeRuns(ctx context.Context, t *Target, runs []*hostRun) {
	cctx, cancel := cleanupContext(ctx, 30*time.Second)
	defer cancel()
	done := make(chan struct{}, len(runs))
	n := 0
	for _, r := range runs {
		if r.conn == nil {
			continue
		}
		n++
		go func() {
			defer func() { done <- struct{}{} }()
			if r.stopRenew != nil {
				r.stopRenew()
			}
			err := r.lock.Release(cctx)
			r.res.Handshakes = r.handshakes + r.conn.c.Handshakes()
			r.conn.c.Close()
			if err != nil && r.lock != nil {
				// The connection died (a cut during upload, say): the lock is
				// still ours to release, over a new connection.
				err = releaseOverNewConn(cctx, t, r)
			}
			if err != nil {
				r.conn.log.Warnf("%v", err)
			}
		}()
	}
	for ; n > 0; n-- {
		<-done
	}
}

func rollbackHost(ctx context.Context, o *Options, to string, repair bool, r *hostRun) {
	log := o.Log.With(r.name)
	c, err := o.Target.dial(ctx, r.name, log)
	if err != nil {
		r.failUnchanged(log, err)
		return
	}
	r.conn = c
	h := c.h
	facts, probeErr := h.Probe(ctx)
	if probeErr != nil && !libraryMayHelp(probeErr) {
		r.failUnchanged(log, probeErr)
		return
	}
	// Whether the library converges depends on the release's strategy, read below.
	r.res.Dir = facts.Dir
	cmd := "rollback"
	if repair {
		cmd = "rollback --repair"
	}
	lock, err := h.AcquireLock(ctx, remote.LockInfo{Owner: whoami(), PID: os.Getpid(), BuildURL: o.Getenv("BUILD_URL"),
		Command: cmd, Time: time.Now().UTC().Format(time.RFC3339), Origin: owner.Self()}, o.LockWait, o.LockTTL)
	if err != nil {
		r.failUnchanged(log, err)
		return
	}
	r.lock = lock
	r.keepLock(o.LockTTL, log)
	rels, current, err := h.Releases(ctx)
	if err != nil {
		r.failUnchanged(log, err)
		return
	}
	if repair {
		// A repair converges with recreate's steps.
		if err := chooseConverger(ctx, o.Compose, "recreate", h, facts, probeErr); err != nil {
			r.failUnchanged(log, err)
			return
		}
		r.res.Compose = composeUsed(h)
		repairHost(ctx, o, r, rels, current)
		return
	}
	target, err := pickRollback(rels, current, to)
	if err != nil {
		r.failUnchanged(log, err)
		return
	}
	if err := r.checkInterrupted(ctx, "rollback", target.Name); err != nil {
		r.failUnchanged(log, err)
		return
	}
	r.res.Release, r.res.Previous = target.Name, current
	// Each release runs under the project recorded when it was first
	// deployed; a rollback across a rename takes the current project down.
	project, curProject := "", ""
	if target.Meta != nil {
		project = target.Meta.Project
	}
	for _, rel := range rels {
		if rel.Name == current && rel.Meta != nil {
			curProject = rel.Meta.Project
		}
	}
	if project == "" {
		project = curProject
	}
	if project == "" {
		r.failUnchanged(log, fmt.Errorf("release %s has no readable release.json naming its compose project", target.Name))
		return
	}
	h.Project = project
	var images, envHosts, registries []string
	if target.Meta != nil {
		images = target.Meta.Images
		for _, img := range manifest.CredentialImages(target.Meta.Services, target.Meta.External) {
			if hst, err := regauth.HostOf(img); err == nil {
				envHosts = append(envHosts, hst)
			}
		}
		seen := map[string]bool{}
		for _, img := range images {
			if hst, err := regauth.HostOf(img); err == nil && !seen[hst] {
				seen[hst] = true
				registries = append(registries, hst)
			}
		}
		sort.Strings(registries)
	}
	dockerConfig, logins, err := registryConfig(registries, envHosts, o.Getenv)
	if err != nil {
		r.failUnchanged(log, err)
		return
	}
	strategy := Strategy(Recreate{})
	if target.Meta != nil {
		if s, ok := strategyNamed(target.Meta.Strategy); ok {
			strategy = s
		}
	}
	if err := chooseConverger(ctx, o.Compose, strategy.Name(), h, facts, probeErr); err != nil {
		r.failUnchanged(log, err)
		return
	}
	r.res.Compose = composeUsed(h)
	d := &HostDeploy{Host: h, Conn: c.c, Release: target.Name, Previous: current, Log: log,
		cfg:    hostConfig{healthTimeout: o.HealthTimeout, smokeURL: o.SmokeURL},
		images: images, dockerConfig: dockerConfig, registries: logins}
	if len(images) == 0 {
		d.images = nil
	}
	if curProject != "" && curProject != project {
		d.prevProject = curProject
		r.res.RenamedFrom = curProject
	}
	r.d = d
	log.Printf("rolling back from %s to %s", orNone(short(current)), short(target.Name))
	toCfg, err := serverRelease(ctx, h, target.Name, target.Meta)
	if err == nil && toCfg == nil {
		err = fmt.Errorf("releases/%s is gone from the server", target.Name)
	}
	if err == nil {
		err = planChanges(ctx, d, r, rels, toCfg)
	}
	if err != nil {
		r.failUnchanged(log, fmt.Errorf("the change plan: %w", err))
		return
	}
	if d.images == nil && h.Lib != nil {
		d.images = imagesOf(toCfg)
	}
	if d.renamed() {
		log.Printf("release %s was deployed as project %s, the current release as project %s: project %s is taken down (volumes kept), then %s comes up", short(target.Name), project, curProject, curProject, project)
	}
	if err := r.beginConverge(ctx, "rollback", target.Name, current, o.Getenv("BUILD_URL")); err != nil {
		r.failUnchanged(log, err)
		return
	}
	if d.renamed() && strategy.Name() != "swarm" {
		d.noteVolumes(ctx)
	}
	ok := r.applyAndSwitch(ctx, strategy, func(err error) {
		r.endConverge(ctx, current)
		r.failUnchanged(log, err)
	})
	if !ok {
		return
	}
	r.res.Status = StatusDeployed
	log.Printf("now on release %s (was %s)", short(target.Name), orNone(short(current)))
}

// pickRollback chooses the release to go back to: --to (a commit or unique
// prefix), else the newest release older than current.
func pickRollback(rels []remote.Release, current, to string) (remote.Release, error) {
	if current == "" {
		return remote.Release{}, errors.New("no current release on this host: nothing to roll back from; run slipway deploy")
	}
	if to != "" {
		var found []remote.Release
		for _, r := range rels {
			if strings.HasPrefix(r.Name, to) {
				found = append(found, r)
			}
		}
		switch {
		case len(found) == 0:
			return remote.Release{}, exit.Usagef("--to %s: no such release on this host (slipway releases lists them)", to)
		case len(found) > 1:
			return remote.Release{}, exit.Usagef("--to %s: ambiguous, matches %d releases; give more digits", to, len(found))
		case found[0].Name == current:
			return remote.Release{}, exit.Usagef("--to %s: that is the current release", to)
		}
		return found[0], nil
	}
	for i, r := range rels { // newest first
		if r.Name == current {
			if i+1 < len(rels) {
				return rels[i+1], nil
			}
			break
		}
	}
	// current not in the list, or the oldest: take the newest other release.
	for _, r := range rels {
		if r.Name != current && !r.Time().After(timeOf(rels, current)) {
			return r, nil
		}
	}
	return remote.Release{}, errors.New("no release before the current one is kept on this host; nothing to roll back to")
}

func timeOf(rels []remote.Release, name string) time.Time {
	for _, r := range rels {
		if r.Name == name {
			return r.Time()
		}
	}
	return time.Now().Add(24 * time.Hour)
}

func releaseOverNewConn(ctx context.Context, t *Target, r *hostRun) error {
	c, err := t.dial(ctx, r.name, r.conn.log)
	if err != nil {
		return fmt.Errorf("releasing the deploy lock: %w; run slipway unlock --host %s once the host is reachable", err, r.name)
	}
	defer c.c.Close()
	c.h.Dir = r.conn.h.Dir
	return r.lock.ReleaseOn(ctx, c.h)
}
