package deploy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/deploy/remote"
	"github.com/slipway-dev/slipway/tools/internal/exit"
)

func init() { Register(Rolling{}) }

// Defaults of the rolling strategy. The drain is the pause between a new
// container passing its gate and the old one getting its stop signal: long
// enough for a proxy that re-resolves the service name (nginx `resolver
// ... valid=1s`) to know the new container before the old one goes away. A
// service overrides it with `x-slipway-drain: 5s`.
const (
	DefaultDrain   = 2 * time.Second
	DefaultMonitor = 5 * time.Second
	defaultGrace   = 10 * time.Second
)

// Rolling is the zero-downtime strategy for plain Compose hosts. Per changed
// service, in dependency order, honouring the service's
// deploy.update_config (parallelism, delay, order, failure_action, monitor),
// it starts the new containers beside the old ones with Compose itself
// (`up -d --no-deps --no-recreate --scale SVC=N+k SVC`, so they carry
// Compose's labels and `compose ps/logs` show them), waits for their gate
// (healthy where they have a healthcheck, else running for `monitor` without
// a restart), waits the drain period, then stops the old ones with their
// stop_grace_period and removes them.
//
// The old container leaves the service's DNS name when it stops, not before:
// `docker network disconnect` would take it out of the name at once but also
// cuts the connections it is still answering (they hang until the client's
// timeout), while a stop signal lets it finish them; a proxy that retries on
// a refused connection (nginx proxy_next_upstream error) then loses nothing.
//
// Services whose definition and files did not change are left running,
// even when only the release directory their bind mounts come from moved.
// A service publishing a fixed host port, or naming its container, cannot
// run twice and one with a named volume must not (two database servers on one
// data directory): those go stop-first, with a warning saying how to avoid
// the downtime. A failed gate rolls the whole release back (Revert): every
// service already rolled goes back to the previous release the same way.
type Rolling struct{}

// Name is "rolling".
func (Rolling) Name() string { return "rolling" }

func newRoller(d *HostDeploy, target string, revert bool) *roller {
	return &roller{d: d, target: target, revert: revert, cfgs: d.releaseConfigs()}
}

// Apply rolls the host to the new release service by service.
func (Rolling) Apply(ctx context.Context, d *HostDeploy) error {
	start := time.Now()
	if err := d.Pull(ctx); err != nil {
		if !errors.Is(err, remote.ErrRegistryLogin) {
			d.MarkChanged() // as Recreate: a failed pull is a failed deploy
		}
		return err
	}
	d.Done("pull", start)
	if d.Host.DryRun {
		if err := d.PreDeploy(ctx); err != nil {
			return err
		}
		d.MarkChanged()
		d.Host.Planf("rolling update to release %s: per changed service in dependency order (deploy.update_config: parallelism, delay, order, failure_action, monitor): %s, gate (healthy, or running for monitor, default %s), drain %s, docker stop -t <stop_grace_period> + rm of the old containers",
			short(d.Release), "compose up -d --no-deps --no-recreate --scale SVC=N+k SVC", DefaultMonitor, DefaultDrain)
		return d.HealthGate(ctx, d.Release)
	}
	ro := newRoller(d, d.Release, false)
	// Read and check the release before anything changes: a compose file the
	// server's Compose rejects, or a bad update_config, fails with nothing changed.
	if err := ro.load(ctx); err != nil {
		return err
	}
	if err := d.PreDeploy(ctx); err != nil {
		// The hook's `run` may have started dependencies from the new release.
		rctx, cancel := cleanupContext(ctx, d.upTimeout())
		defer cancel()
		if rerr := restorePrevious(rctx, d); rerr != nil {
			d.Log.Warnf("restoring the services after the failed hook: %v", rerr)
		}
		return err
	}
	d.MarkChanged()
	if err := ro.run(ctx); err != nil {
		return err
	}
	return d.HealthGate(ctx, d.Release)
}

// Revert rolls the services back to the previous release the same way
// (services still on it are not touched), or takes a first release down.
func (Rolling) Revert(ctx context.Context, d *HostDeploy) error {
	if svc := d.pausedService(); svc != "" {
		return fmt.Errorf("not rolled back: service %s has deploy.update_config.failure_action: pause, so the host is left as it is (services rolled so far on release %s, the rest on %s); look at it, then run slipway rollback or deploy again",
			svc, short(d.Release), orNone(short(d.Previous)))
	}
	if d.Previous == "" || d.Host.DryRun {
		return Recreate{}.Revert(ctx, d)
	}
	defer d.setReleaseConfigs(nil)
	d.pullPrevious(ctx)
	ro := newRoller(d, d.Previous, true)
	err := ro.load(ctx)
	if err == nil {
		err = ro.run(ctx)
	}
	if err != nil {
		d.Log.Warnf("rolling back service by service failed: %v; converging release %s with compose up instead", err, short(d.Previous))
		return Recreate{}.Revert(ctx, d)
	}
	return d.HealthGate(ctx, d.Previous)
}

// restorePrevious puts the previous release back after a failed hook.
func restorePrevious(ctx context.Context, d *HostDeploy) error {
	if d.Previous == "" {
		return d.Host.Down(ctx, d.Release)
	}
	ro := newRoller(d, d.Previous, true)
	if err := ro.load(ctx); err != nil {
		return err
	}
	return ro.run(ctx)
}

// roller runs one rolling update of a host to a target release.
type roller struct {
	d      *HostDeploy
	target string
	revert bool // rolling back: failure_action does not apply

	cfgs map[string]*remote.ReleaseConfig
	cs   []remote.RollContainer
}

// load reads the project's containers and the resolved configuration of the
// target release and of every release a container was created from.
func (ro *roller) load(ctx context.Context) error {
	cs, err := ro.d.Host.RollContainers(ctx)
	if err != nil {
		return err
	}
	ro.cs = cs
	// Each release read is a Compose run (a Python start-up on v1): the
	// target, then only the releases of containers whose config hash differs
	// from the target's in a service that mounts something from the release
	// directory (the hash holds that path, so only a comparison of the two
	// definitions and their files tells whether it changed).
	if err := ro.fetch(ctx, []string{ro.target}); err != nil {
		return err
	}
	t := ro.cfgs[ro.target]
	if t == nil || t.Err == releaseGone {
		return fmt.Errorf("release %s is not on the server (releases/%s is missing)", short(ro.target), ro.target)
	}
	if t.Err != "" {
		return exit.Usagef("the server's Compose cannot read release %s: %s", short(ro.target), t.Err)
	}
	var more []string
	for _, c := range cs {
		if c.ConfigHash != "" && c.ConfigHash == t.Hashes[c.Service] {
			continue
		}
		if c.Release == "" || c.Release == ro.target || !validCommitName(c.Release) || slices.Contains(more, c.Release) {
			continue
		}
		if len(releasePaths(comparable(t, c.Service, ro.d.Host.Dir+"/releases/"+t.Release))) > 0 {
			more = append(more, c.Release)
		}
	}
	return ro.fetch(ctx, more)
}

// releaseGone marks a release whose directory is not on the server.
const releaseGone = "its directory is gone"

// fetch reads the releases not read yet.
func (ro *roller) fetch(ctx context.Context, releases []string) error {
	var missing []string
	for _, r := range releases {
		if _, ok := ro.cfgs[r]; !ok {
			missing = append(missing, r)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	// Hashes tell whether a container is what a release defines now.
	hashes := map[string]bool{ro.target: true}
	start := time.Now()
	got, err := ro.d.Host.ReleaseConfigs(ctx, missing, hashes)
	if err != nil {
		return err
	}
	cfgs := map[string]*remote.ReleaseConfig{}
	for k, v := range ro.cfgs {
		cfgs[k] = v
	}
	for _, r := range missing {
		// A release whose directory is gone is remembered as such.
		cfgs[r] = &remote.ReleaseConfig{Release: r, Err: releaseGone}
	}
	for k, v := range got {
		cfgs[k] = v
	}
	ro.cfgs = cfgs
	ro.d.setReleaseConfigs(cfgs)
	ro.d.Done(fmt.Sprintf("compose config of %d release(s)", len(missing)), start)
	return nil
}

func validCommitName(s string) bool {
	return s != "" && !strings.ContainsAny(s, "/ \t\n'\"$`\\") && !strings.HasPrefix(s, ".")
}

// run plans against the current containers and executes the plan.
func (ro *roller) run(ctx context.Context) error {
	d := ro.d
	// The hook (or a previous step) may have changed the containers.
	if err := ro.load(ctx); err != nil {
		return err
	}
	if len(ro.cs) == 0 {
		// Nothing runs yet: no downtime to avoid, one compose up does it.
		d.Log.Printf("no containers of project %s yet: compose up of release %s", d.Host.Project, short(ro.target))
		uctx, cancel := context.WithTimeout(ctx, d.upTimeout())
		defer cancel()
		if err := d.Host.Up(uctx, ro.target); err != nil {
			return fmt.Errorf("converging: %w", err)
		}
		return nil
	}
	p, err := planRoll(d.Host.Dir, ro.target, ro.cfgs, ro.cs)
	if err != nil {
		return err
	}
	for _, n := range p.Notes {
		d.Log.Printf("%s", n)
	}
	if len(p.Services) == 0 && len(p.Orphans) == 0 {
		d.Log.Printf("every service is already on release %s", short(ro.target))
	}
	start := time.Now()
	for _, s := range p.Services {
		if s.Warning != "" && !ro.revert {
			d.Log.Warnf("%s", s.Warning)
		}
		if err := ro.rollService(ctx, s); err != nil {
			var skip *continueError
			if errors.As(err, &skip) {
				continue
			}
			return err
		}
	}
	if len(p.Orphans) > 0 {
		var ids, names []string
		for _, c := range p.Orphans {
			ids = append(ids, c.ID)
			names = append(names, c.Name)
		}
		d.Log.Printf("removing containers of services release %s does not have: %s", short(ro.target), strings.Join(names, ", "))
		if err := d.Host.StopRemove(ctx, ids, defaultGrace); err != nil {
			return err
		}
	}
	if len(p.Services) > 0 {
		d.Done(fmt.Sprintf("rolling update of %d service(s)", len(p.Services)), start)
	}
	return nil
}

// continueError is a failed service whose failure_action is continue.
type continueError struct{ err error }

func (e *continueError) Error() string { return e.err.Error() }

// rollService replaces one service's containers batch by batch.
func (ro *roller) rollService(ctx context.Context, s *svcRoll) error {
	d := ro.d
	log := d.Log
	// Containers that are not running serve nothing: out of the way first.
	var old []remote.RollContainer
	var dead []string
	for _, c := range s.Stale {
		if c.State == "running" {
			old = append(old, c)
		} else {
			dead = append(dead, c.ID)
		}
	}
	if err := d.Host.RemoveForce(ctx, dead); err != nil {
		return err
	}
	old = append(old, s.Extra...)
	needNew := s.Replicas - len(s.Keep)
	if needNew < 0 {
		needNew = 0
	}
	plan := rollBatches(needNew, len(old), s.Policy.Parallelism)
	stopFirst := s.Order == "stop-first"
	at := "all at once"
	if len(plan) > 1 {
		at = fmt.Sprintf("%d at a time", s.Policy.Parallelism)
	}
	log.Printf("%s: %s; %s, %d new container(s), %s", s.Name, s.Reason, s.Order, needNew, at)
	created, removed := 0, 0
	for i, b := range plan {
		nNew, nOld := b[0], b[1]
		batch := old[removed : removed+nOld]
		if stopFirst && nOld > 0 {
			if err := ro.stopOld(ctx, s, batch, false); err != nil {
				return err
			}
			removed += nOld
		}
		if nNew > 0 {
			// Beside running old containers, the new ones stay out of the
			// service's DNS name until they pass: nothing is sent to a
			// container that is still starting, or failing.
			hide := s.NetMode == "" && (len(old)-removed > 0 || len(s.Keep) > 0 || created > 0)
			ids, err := ro.scaleUp(ctx, s, nNew, hide)
			if err == nil {
				err = ro.gate(ctx, s, ids)
			}
			if err == nil && hide {
				err = ro.join(ctx, s, ids)
			}
			if err != nil {
				rctx, cancel := cleanupContext(ctx, time.Minute)
				if rerr := d.Host.RemoveForce(rctx, ids); rerr != nil {
					log.Warnf("%v", rerr)
				}
				cancel()
				return ro.failed(s, err)
			}
			created += nNew
		}
		if !stopFirst && nOld > 0 {
			if err := ro.stopOld(ctx, s, batch, created > 0); err != nil {
				return err
			}
			removed += nOld
		}
		if i < len(plan)-1 && s.Policy.Delay > 0 {
			if err := sleep(ctx, s.Policy.Delay); err != nil {
				return err
			}
		}
	}
	return nil
}

func (ro *roller) failed(s *svcRoll, err error) error {
	if ro.revert || ctxErr(err) {
		return err
	}
	switch s.Policy.FailureAction {
	case "pause":
		ro.d.setPaused(s.Name)
		return fmt.Errorf("service %s failed its gate and has failure_action: pause: %w", s.Name, err)
	case "continue":
		ro.d.Log.Warnf("service %s failed its gate (%v); its old containers keep running and, as its failure_action is continue, the rollout goes on", s.Name, err)
		return &continueError{err}
	}
	return err
}

func ctxErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// stopOld drains (after new containers started) and then stops and removes
// old containers.
func (ro *roller) stopOld(ctx context.Context, s *svcRoll, batch []remote.RollContainer, drain bool) error {
	var ids, names []string
	for _, c := range batch {
		ids = append(ids, c.ID)
		names = append(names, c.Name)
	}
	if drain && s.Drain > 0 {
		if err := sleep(ctx, s.Drain); err != nil {
			return err
		}
	}
	start := time.Now()
	if err := ro.d.Host.StopRemove(ctx, ids, s.Grace); err != nil {
		return err
	}
	what := "stop of " + strings.Join(names, ", ")
	if drain && s.Drain > 0 {
		what = fmt.Sprintf("drain %s and %s", secs(s.Drain), what)
	}
	ro.d.Done(s.Name+": "+what, start)
	return nil
}

func secs(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s" }
