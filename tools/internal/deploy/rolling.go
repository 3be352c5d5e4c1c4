package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/deploy/remote"
	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/progress"
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
		return d.Compose(ctx, d.Release, "down", "--remove-orphans")
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
		if err := d.Compose(uctx, ro.target, "up", "-d", "--remove-orphans"); err != nil {
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

// scaleUp creates n more containers of the service with the target
// release's definition, next to the ones there are, and returns their IDs.
func (ro *roller) scaleUp(ctx context.Context, s *svcRoll, n int, hide bool) ([]string, error) {
	d := ro.d
	before, err := d.Host.RollContainers(ctx)
	if err != nil {
		return nil, err
	}
	had := map[string]bool{}
	total := 0
	for _, c := range before {
		if c.Service == s.Name {
			had[c.ID] = true
			total++
		}
	}
	uctx, cancel := context.WithTimeout(ctx, d.upTimeout())
	defer cancel()
	start := time.Now()
	scale := fmt.Sprintf("%s=%d", s.Name, total+n)
	if hide {
		err = d.Compose(uctx, ro.target, "up", "--no-start", "--no-deps", "--no-recreate", "--scale", scale, s.Name)
	} else {
		err = d.Compose(uctx, ro.target, "up", "-d", "--no-deps", "--no-recreate", "--scale", scale, s.Name)
	}
	after, lerr := d.Host.RollContainers(ctx)
	var ids []string
	if lerr == nil {
		for _, c := range after {
			if c.Service == s.Name && !had[c.ID] {
				ids = append(ids, c.ID)
			}
		}
	}
	if err != nil {
		return ids, fmt.Errorf("starting new containers of %s: %w", s.Name, err)
	}
	if lerr != nil {
		return ids, lerr
	}
	if len(ids) != n {
		return ids, fmt.Errorf("starting new containers of %s: compose created %d, want %d", s.Name, len(ids), n)
	}
	if hide {
		for _, id := range ids {
			if err := d.Host.Reattach(ctx, id, ro.attachments(s, id, false)); err != nil {
				return ids, err
			}
		}
		if err := d.Host.StartContainers(ctx, ids); err != nil {
			return ids, err
		}
	}
	d.Done(fmt.Sprintf("%s: start of %d new container(s)", s.Name, n), start)
	return ids, nil
}

// gate waits until the new containers pass: healthy where they have a
// healthcheck (and, with update_config.monitor set, stay so for monitor),
// else running for monitor without a restart; a container that exits,
// restarts or turns unhealthy fails at once. Bounded by --health-timeout.
func (ro *roller) gate(ctx context.Context, s *svcRoll, ids []string) error {
	d := ro.d
	start := time.Now()
	deadline := start.Add(d.HealthTimeout())
	readyAt := map[string]time.Time{}
	startedAt := map[string]string{}
	lastReport := start
	for {
		cs, err := d.Host.InspectContainers(ctx, ids)
		if err != nil {
			return err
		}
		now := time.Now()
		var failed, pending []FailedContainer
		if len(cs) < len(ids) {
			failed = append(failed, FailedContainer{Name: "(a new container of " + s.Name + ")", Service: s.Name, State: "removed while starting"})
		}
		for _, c := range cs {
			v, why := remote.Judge(c.Container)
			fc := FailedContainer{Name: c.Name, Service: c.Service, State: why, id: c.ID}
			if first, ok := startedAt[c.ID]; ok && c.StartedAt != first && v != remote.Failed {
				v, fc.State = remote.Failed, "restarted"
			} else if !ok && c.StartedAt != "" {
				startedAt[c.ID] = c.StartedAt
			}
			if c.RestartCount > 0 && v != remote.Failed {
				v, fc.State = remote.Failed, fmt.Sprintf("restarted %d time(s)", c.RestartCount)
			}
			switch v {
			case remote.Failed:
				failed = append(failed, fc)
				continue
			case remote.Pending:
				delete(readyAt, c.ID)
				pending = append(pending, fc)
				continue
			}
			if _, ok := readyAt[c.ID]; !ok {
				readyAt[c.ID] = now
			}
			// Without a healthcheck "running" is all there is: it must last
			// monitor. With one, healthy is the gate, and an explicit monitor
			// watches it longer.
			need := time.Duration(0)
			if c.State == "running" && (!c.Healthcheck || s.Policy.MonitorSet) {
				need = s.Policy.Monitor
			}
			if now.Sub(readyAt[c.ID]) < need {
				fc.State = fmt.Sprintf("%s, watching for %s", why, secs(need))
				pending = append(pending, fc)
			}
		}
		if len(failed) > 0 {
			return withLogs(ctx, d.Host, d.Log, &HealthError{Release: ro.target, Reason: "new container of " + s.Name + " failed", Failing: failed})
		}
		if len(pending) == 0 {
			d.Done(s.Name+": gate of the new container(s)", start)
			return nil
		}
		if !now.Before(deadline) {
			return withLogs(ctx, d.Host, d.Log, &HealthError{Release: ro.target, Reason: fmt.Sprintf("new container of %s not ready after --health-timeout %s", s.Name, d.HealthTimeout()), Failing: pending})
		}
		if now.Sub(lastReport) > 10*time.Second {
			var names []string
			for _, p := range pending {
				names = append(names, p.Name+" ("+p.State+")")
			}
			d.Log.Printf("%s: waiting for %s", s.Name, strings.Join(names, ", "))
			lastReport = now
		}
		if err := sleep(ctx, healthPoll); err != nil {
			return err
		}
	}
}

// join gives new containers that passed their gate the service's DNS names
// on its networks (they ran without them). Connections they opened on those
// networks meanwhile (a database pool, say) are cut once and reopened by the
// application.
func (ro *roller) join(ctx context.Context, s *svcRoll, ids []string) error {
	start := time.Now()
	for _, id := range ids {
		if err := ro.d.Host.Reattach(ctx, id, ro.attachments(s, id, true)); err != nil {
			return err
		}
	}
	ro.d.Done(s.Name+": new container(s) joined the service's name", start)
	return nil
}

// attachments are the networks a container of s joins: with the service's
// aliases (compose's: the service name, the network's aliases and the short
// container ID), or with the short ID alone while it is not yet serving.
func (ro *roller) attachments(s *svcRoll, id string, named bool) []remote.NetAttach {
	t := ro.cfgs[ro.target]
	short := id
	if len(short) > 12 {
		short = short[:12]
	}
	var out []remote.NetAttach
	for _, n := range s.Nets {
		a := remote.NetAttach{Network: networkName(t.Model, ro.d.Host.Project, n.Key)}
		if named {
			a.Aliases = append(append([]string{s.Name}, n.Aliases...), short)
		} else {
			a.Aliases = []string{short}
		}
		out = append(out, a)
	}
	return out
}

// svcNet is a network a service joins.
type svcNet struct {
	Key     string   // its key under the top-level networks:
	Aliases []string // networks.<key>.aliases of the service
	Static  bool     // a fixed ipv4_address/ipv6_address
}

// serviceNets reads a service's networks (default: the project's default network).
func serviceNets(svc map[string]any) []svcNet {
	var out []svcNet
	switch n := svc["networks"].(type) {
	case map[string]any:
		for _, k := range keysOf(n) {
			sn := svcNet{Key: k}
			if def, ok := n[k].(map[string]any); ok {
				if al, ok := def["aliases"].([]any); ok {
					for _, a := range al {
						sn.Aliases = append(sn.Aliases, fmt.Sprint(a))
					}
				}
				_, v4 := def["ipv4_address"]
				_, v6 := def["ipv6_address"]
				sn.Static = v4 || v6
			}
			out = append(out, sn)
		}
	case []any:
		for _, k := range n {
			out = append(out, svcNet{Key: fmt.Sprint(k)})
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	default:
		out = []svcNet{{Key: "default"}}
	}
	return out
}

// networkName is the engine's name of the project's network key: its name:
// when set (external or not), the key itself for an external network, else
// <project>_<key>, as Compose names them.
func networkName(model map[string]any, project, key string) string {
	defs, _ := model["networks"].(map[string]any)
	def, _ := defs[key].(map[string]any)
	if n, _ := def["name"].(string); n != "" {
		return n
	}
	switch ext := def["external"].(type) {
	case bool:
		if ext {
			return key
		}
	case map[string]any:
		if n, _ := ext["name"].(string); n != "" {
			return n
		}
		return key
	}
	return project + "_" + key
}

// rollBatches splits an update into batches of (new containers, old
// containers) of at most parallelism each (0: all in one batch).
func rollBatches(needNew, old, parallelism int) [][2]int {
	par := parallelism
	if par <= 0 {
		par = max(needNew, old, 1)
	}
	var out [][2]int
	for n, o := needNew, old; n > 0 || o > 0; {
		b := [2]int{min(par, n), min(par, o)}
		out = append(out, b)
		n, o = n-b[0], o-b[1]
	}
	return out
}

// ---- planning (pure: unit-tested without a server) ----

// updatePolicy is a service's deploy.update_config.
type updatePolicy struct {
	Parallelism   int // 0: all at once
	Delay         time.Duration
	Order         string // "start-first", "stop-first" or "" (not set)
	FailureAction string // "rollback" (default), "pause", "continue"
	Monitor       time.Duration
	MonitorSet    bool
}

// svcRoll is one service to roll.
type svcRoll struct {
	Name     string
	Replicas int
	Grace    time.Duration // stop_grace_period
	Drain    time.Duration // x-slipway-drain
	Policy   updatePolicy
	Order    string   // effective order
	Nets     []svcNet // networks it joins (none with network_mode)
	NetMode  string   // network_mode, "" for compose's networks
	Keep     []remote.RollContainer
	Stale    []remote.RollContainer
	Extra    []remote.RollContainer // current containers beyond Replicas
	Reason   string
	Warning  string
}

// rollPlan is what a rolling update of a host does.
type rollPlan struct {
	Services []*svcRoll // changed services, dependencies first
	Orphans  []remote.RollContainer
	Notes    []string
}

// planRoll compares what runs (cs) with the target release and decides, per
// service, what to replace and how.
func planRoll(dir, target string, cfgs map[string]*remote.ReleaseConfig, cs []remote.RollContainer) (*rollPlan, error) {
	t := cfgs[target]
	order, err := dependencyOrder(t)
	if err != nil {
		return nil, err
	}
	byService := map[string][]remote.RollContainer{}
	for _, c := range cs {
		byService[c.Service] = append(byService[c.Service], c)
	}
	p := &rollPlan{}
	var unchanged []string
	for _, name := range order {
		svc := t.Service(name)
		s := &svcRoll{Name: name, Grace: defaultGrace, Drain: DefaultDrain}
		if err := s.readConfig(svc); err != nil {
			return nil, err
		}
		moved := map[string]bool{}
		var why []string
		for _, c := range byService[name] {
			ok, reason := current(dir, name, c, t, cfgs)
			switch {
			case ok:
				s.Keep = append(s.Keep, c)
				if c.Release != target && c.ConfigHash != t.Hashes[name] {
					moved[c.Release] = true
				}
			default:
				s.Stale = append(s.Stale, c)
				why = appendOnce(why, reason)
			}
		}
		if len(s.Keep) > s.Replicas {
			s.Extra = s.Keep[s.Replicas:]
			s.Keep = s.Keep[:s.Replicas]
			why = appendOnce(why, fmt.Sprintf("scaled down to %d", s.Replicas))
		}
		if len(byService[name]) == 0 {
			why = append(why, "new service")
		} else if len(s.Stale) == 0 && len(s.Keep) < s.Replicas {
			why = appendOnce(why, fmt.Sprintf("scaled up to %d", s.Replicas))
		}
		if len(why) == 0 {
			unchanged = append(unchanged, name)
			for r := range moved {
				p.Notes = append(p.Notes, fmt.Sprintf("%s: unchanged (same definition and files as in release %s, whose directory its containers keep using)", name, short(r)))
			}
			continue
		}
		s.Reason = strings.Join(why, ", ")
		s.decideOrder(svc, len(s.Stale)+len(s.Extra) > 0)
		p.Services = append(p.Services, s)
	}
	if len(unchanged) > 0 && len(p.Services) > 0 {
		p.Notes = append(p.Notes, "left running, unchanged: "+strings.Join(unchanged, ", "))
	}
	known := map[string]bool{}
	for _, n := range order {
		known[n] = true
	}
	for _, c := range cs {
		if !known[c.Service] {
			p.Orphans = append(p.Orphans, c)
		}
	}
	return p, nil
}

func appendOnce(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// current says whether container c of service name already runs what the
// target release defines: the same config hash, or (created from another
// release's directory) an identical definition and identical files.
func current(dir, name string, c remote.RollContainer, t *remote.ReleaseConfig, cfgs map[string]*remote.ReleaseConfig) (bool, string) {
	// A container that does not run must be replaced to run; one that runs
	// unhealthy or crash-loops with the right definition is left to the
	// health gate (a new one would not fare better).
	switch c.State {
	case "exited", "dead", "created":
		if v, why := remote.Judge(c.Container); v == remote.Failed || c.State != "exited" {
			return false, "container " + c.Name + " " + why
		}
	}
	want := t.Hashes[name]
	if want != "" && c.ConfigHash == want {
		return true, ""
	}
	if c.Release == t.Release {
		return false, "definition changed"
	}
	r := cfgs[c.Release]
	if r == nil {
		// Not read: nothing of this service comes from a release directory,
		// so a different hash is a different definition.
		if svc := t.Service(name); svc != nil && svc["image"] != nil && fmt.Sprint(svc["image"]) != c.Image {
			return false, "new image"
		}
		return false, "definition changed"
	}
	if r.Err != "" || r.Model == nil {
		return false, "created from a release that is gone"
	}
	// With its hashes read, the container must still be what its release
	// defines (a release deployed again with a new .env changes that).
	if len(r.Hashes) > 0 && r.Hashes[name] != c.ConfigHash {
		return false, "definition changed"
	}
	return sameService(dir, name, r, t)
}

// sameService compares a service's resolved definition in two releases with
// each release's own directory factored out, plus the files under that
// directory it references.
func sameService(dir, name string, a, b *remote.ReleaseConfig) (bool, string) {
	ra, rb := dir+"/releases/"+a.Release, dir+"/releases/"+b.Release
	sa, sb := comparable(a, name, ra), comparable(b, name, rb)
	if sa == nil || sb == nil {
		return false, "definition changed"
	}
	if img(sa) != img(sb) {
		return false, "new image"
	}
	if !reflect.DeepEqual(sa, sb) {
		return false, "definition changed"
	}
	for _, p := range releasePaths(sb) {
		if !sameFiles(a.Files, b.Files, p) {
			return false, "file " + p + " changed"
		}
	}
	return true, ""
}

func img(m map[string]any) string {
	s, _ := m["service"].(map[string]any)
	i, _ := s["image"].(string)
	return i
}

// releaseMark replaces a release directory in compared definitions.
const releaseMark = "<release>"

// comparable is the service's definition, plus the top-level networks,
// volumes, configs and secrets it uses, with the release directory replaced
// by a mark and the keys that do not change a container dropped.
func comparable(c *remote.ReleaseConfig, name, relDir string) map[string]any {
	svc := c.Service(name)
	if svc == nil {
		return nil
	}
	s := deepCopyJSON(svc)
	for k := range s {
		if strings.HasPrefix(k, "x-") {
			delete(s, k)
		}
	}
	if dep, ok := s["deploy"].(map[string]any); ok {
		delete(dep, "update_config")
		delete(dep, "rollback_config")
	}
	out := map[string]any{"service": s}
	for _, top := range []string{"networks", "volumes", "configs", "secrets"} {
		defs, _ := c.Model[top].(map[string]any)
		used := map[string]any{}
		for _, ref := range refsTo(svc, top) {
			if def, ok := defs[ref]; ok {
				used[ref] = def
			} else {
				used[ref] = nil
			}
		}
		if len(used) > 0 {
			out[top] = deepCopyJSON(used)
		}
	}
	return replaceDir(out, relDir).(map[string]any)
}

// refsTo lists the top-level names of kind a service uses.
func refsTo(svc map[string]any, kind string) []string {
	var out []string
	switch kind {
	case "networks":
		switch n := svc["networks"].(type) {
		case map[string]any:
			for k := range n {
				out = append(out, k)
			}
		case []any:
			for _, x := range n {
				out = append(out, fmt.Sprint(x))
			}
		default:
			if _, ok := svc["network_mode"]; !ok {
				out = append(out, "default")
			}
		}
	case "volumes":
		vols, _ := svc["volumes"].([]any)
		for _, v := range vols {
			if src, ok := namedVolume(v); ok {
				out = append(out, src)
			}
		}
	default: // configs, secrets
		list, _ := svc[kind].([]any)
		for _, x := range list {
			switch x := x.(type) {
			case string:
				out = append(out, x)
			case map[string]any:
				if s, _ := x["source"].(string); s != "" {
					out = append(out, s)
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// namedVolume reports the volume name of a volumes entry that mounts a
// named volume (not a bind mount, not an anonymous volume).
func namedVolume(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		parts := strings.Split(v, ":")
		if len(parts) < 2 {
			return "", false // anonymous: just a container path
		}
		src := parts[0]
		if src == "" || strings.HasPrefix(src, "/") || strings.HasPrefix(src, ".") || strings.HasPrefix(src, "~") || strings.HasPrefix(src, "$") {
			return "", false
		}
		return src, true
	case map[string]any:
		if t, _ := v["type"].(string); t != "" && t != "volume" {
			return "", false
		}
		src, _ := v["source"].(string)
		return src, src != ""
	}
	return "", false
}

func deepCopyJSON(m map[string]any) map[string]any {
	data, err := json.Marshal(m)
	if err != nil {
		return m
	}
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		return m
	}
	return out
}

func replaceDir(v any, relDir string) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			v[k] = replaceDir(x, relDir)
		}
		return v
	case []any:
		for i, x := range v {
			v[i] = replaceDir(x, relDir)
		}
		return v
	case string:
		if v == relDir {
			return releaseMark
		}
		return strings.ReplaceAll(v, relDir+"/", releaseMark+"/")
	}
	return v
}

// releasePaths lists the paths inside the release directory a (marked)
// definition references: bind-mount sources, config and secret files.
func releasePaths(v any) []string {
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		case string:
			for rest := v; ; {
				i := strings.Index(rest, releaseMark+"/")
				if i < 0 {
					break
				}
				rest = rest[i+len(releaseMark)+1:]
				p := rest
				if j := strings.IndexAny(p, ": \t"); j >= 0 {
					p = p[:j]
				}
				out = appendOnce(out, strings.TrimSuffix(p, "/"))
			}
		}
	}
	walk(v)
	sort.Strings(out)
	return out
}

// sameFiles compares the files at or under p in two releases.
func sameFiles(a, b map[string]string, p string) bool {
	pick := func(m map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range m {
			if k == p || strings.HasPrefix(k, p+"/") {
				out[k] = v
			}
		}
		return out
	}
	return reflect.DeepEqual(pick(a), pick(b))
}

// readConfig reads replicas, stop_grace_period, x-slipway-drain and
// deploy.update_config of a resolved service definition.
func (s *svcRoll) readConfig(svc map[string]any) error {
	where := "services." + s.Name
	s.Replicas = 1
	if v, ok := svc["scale"]; ok {
		n, err := toInt(v)
		if err != nil {
			return exit.Usagef("%s.scale: %v", where, err)
		}
		s.Replicas = n
	}
	dep, _ := svc["deploy"].(map[string]any)
	if v, ok := dep["replicas"]; ok {
		n, err := toInt(v)
		if err != nil {
			return exit.Usagef("%s.deploy.replicas: %v", where, err)
		}
		s.Replicas = n
	}
	if v, ok := svc["stop_grace_period"]; ok {
		g, err := toDuration(v)
		if err != nil {
			return exit.Usagef("%s.stop_grace_period: %v", where, err)
		}
		s.Grace = g
	}
	if v, ok := svc["x-slipway-drain"]; ok {
		g, err := toDuration(v)
		if err != nil {
			return exit.Usagef("%s.x-slipway-drain: %v", where, err)
		}
		s.Drain = g
	}
	s.NetMode, _ = svc["network_mode"].(string)
	if s.NetMode == "" {
		s.Nets = serviceNets(svc)
	}
	pol, err := parsePolicy(where+".deploy.update_config", dep["update_config"])
	if err != nil {
		return err
	}
	s.Policy = pol
	return nil
}

// parsePolicy reads deploy.update_config (nil: the defaults).
func parsePolicy(where string, v any) (updatePolicy, error) {
	p := updatePolicy{Parallelism: 1, FailureAction: "rollback", Monitor: DefaultMonitor}
	if v == nil {
		return p, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return p, exit.Usagef("%s: want a mapping (parallelism, delay, order, failure_action, monitor)", where)
	}
	for k, x := range m {
		var err error
		switch k {
		case "parallelism":
			p.Parallelism, err = toInt(x)
		case "delay":
			p.Delay, err = toDuration(x)
		case "monitor":
			p.Monitor, err = toDuration(x)
			p.MonitorSet = true
		case "order":
			p.Order = fmt.Sprint(x)
			if p.Order != "start-first" && p.Order != "stop-first" {
				err = fmt.Errorf("%q: want start-first or stop-first", p.Order)
			}
		case "failure_action":
			p.FailureAction = fmt.Sprint(x)
			if p.FailureAction != "rollback" && p.FailureAction != "pause" && p.FailureAction != "continue" {
				err = fmt.Errorf("%q: want rollback, pause or continue", p.FailureAction)
			}
		case "max_failure_ratio":
			// Swarm's; one failed gate is already a failure here.
		default:
			if !strings.HasPrefix(k, "x-") {
				err = fmt.Errorf("unknown key (want parallelism, delay, order, failure_action, monitor)")
			}
		}
		if err != nil {
			return p, exit.Usagef("%s.%s: %v", where, k, err)
		}
	}
	return p, nil
}

// decideOrder picks start-first or stop-first and the warning that goes with
// a forced stop-first.
func (s *svcRoll) decideOrder(svc map[string]any, replacing bool) {
	s.Order = s.Policy.Order
	if s.Order == "" {
		s.Order = "start-first"
	}
	if s.Order == "stop-first" {
		return
	}
	if cn, _ := svc["container_name"].(string); cn != "" {
		s.Order = "stop-first"
		if replacing {
			s.Warning = fmt.Sprintf("service %s sets container_name %q, so a second container cannot exist beside it: it is stopped before its replacement starts (down meanwhile). Remove container_name to roll it without downtime.", s.Name, cn)
		}
		return
	}
	for _, n := range s.Nets {
		if n.Static {
			s.Order = "stop-first"
			if replacing {
				s.Warning = fmt.Sprintf("service %s has a fixed address on network %s (ipv4_address/ipv6_address), which a second container cannot have at the same time: it is stopped before its replacement starts (down meanwhile). Let Docker assign the address and reach it by name to roll it without downtime.", s.Name, n.Key)
			}
			return
		}
	}
	if ports := fixedPorts(svc); len(ports) > 0 {
		s.Order = "stop-first"
		if replacing {
			s.Warning = fmt.Sprintf("service %s publishes fixed host port %s, which a second container cannot bind while the first runs: it is stopped before its replacement starts (down meanwhile). To roll it without downtime, publish the port from a proxy service in front of it instead (the proxy reaches it by service name and itself stays unchanged between releases).", s.Name, strings.Join(ports, ", "))
		}
		return
	}
	if s.Policy.Order == "" {
		var vols []string
		list, _ := svc["volumes"].([]any)
		for _, v := range list {
			if n, ok := namedVolume(v); ok {
				vols = append(vols, n)
			}
		}
		if len(vols) > 0 {
			s.Order = "stop-first"
			if replacing {
				s.Warning = fmt.Sprintf("service %s mounts named volume %s, which two containers must not use at once (two database servers on one data directory): it is stopped before its replacement starts (down meanwhile). If two containers may share it safely, set deploy.update_config.order: start-first on it.", s.Name, strings.Join(vols, ", "))
			}
		}
	}
}

// fixedPorts lists a service's published host ports ("8080", "127.0.0.1:8080").
func fixedPorts(svc map[string]any) []string {
	var out []string
	list, _ := svc["ports"].([]any)
	for _, p := range list {
		switch p := p.(type) {
		case map[string]any:
			pub := p["published"]
			if pub == nil {
				continue
			}
			s := fmt.Sprint(pub)
			if s == "" || s == "0" {
				continue
			}
			if ip, _ := p["host_ip"].(string); ip != "" {
				s = ip + ":" + s
			}
			out = append(out, s)
		default:
			s := fmt.Sprint(p)
			s, _, _ = strings.Cut(s, "/")
			// [ip:]host:container, or a bare container port (ephemeral host port).
			i := strings.LastIndex(s, ":")
			if i < 0 {
				continue
			}
			host := s[:i]
			if strings.HasPrefix(host, "[") {
				continue
			}
			if j := strings.LastIndex(host, ":"); j >= 0 {
				if host[j+1:] == "" {
					continue
				}
			}
			out = append(out, host)
		}
	}
	return out
}

// dependencyOrder sorts the release's services so that each comes after
// those it depends_on (ties by name).
func dependencyOrder(c *remote.ReleaseConfig) ([]string, error) {
	names := c.Services()
	deps := map[string][]string{}
	for _, n := range names {
		switch d := c.Service(n)["depends_on"].(type) {
		case map[string]any:
			for k := range d {
				deps[n] = append(deps[n], k)
			}
		case []any:
			for _, k := range d {
				deps[n] = append(deps[n], fmt.Sprint(k))
			}
		}
		sort.Strings(deps[n])
	}
	var out []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(n string, path []string) error
	visit = func(n string, path []string) error {
		switch state[n] {
		case 1:
			return exit.Usagef("services depend on each other in a cycle: %s", strings.Join(append(path, n), " -> "))
		case 2:
			return nil
		}
		state[n] = 1
		for _, dep := range deps[n] {
			if c.Service(dep) == nil {
				continue // compose itself reports a missing dependency
			}
			if err := visit(dep, append(path, n)); err != nil {
				return err
			}
		}
		state[n] = 2
		out = append(out, n)
		return nil
	}
	for _, n := range names {
		if err := visit(n, nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func toInt(v any) (int, error) {
	switch v := v.(type) {
	case int:
		return v, nil
	case int64:
		return int(v), nil
	case uint64:
		return int(v), nil
	case float64:
		if v == math.Trunc(v) {
			return int(v), nil
		}
	case string:
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
			return n, nil
		}
	}
	return 0, fmt.Errorf("%v: want a whole number", v)
}

// toDuration reads a compose duration ("1m30s", "500ms"); a bare number is
// seconds.
func toDuration(v any) (time.Duration, error) {
	switch v := v.(type) {
	case string:
		s := strings.TrimSpace(v)
		if n, err := strconv.ParseFloat(s, 64); err == nil {
			return time.Duration(n * float64(time.Second)), nil
		}
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return 0, fmt.Errorf("%q: want a duration such as 5s, 1m30s or 500ms", v)
		}
		return d, nil
	case int, int64, uint64, float64:
		n, err := toInt(v)
		if err != nil {
			return 0, err
		}
		return time.Duration(n) * time.Second, nil
	}
	return 0, fmt.Errorf("%v: want a duration such as 5s", v)
}

// withoutInUse leaves out of drop the release directories that containers
// of the project still run from: a rolling update leaves a service whose
// definition and files did not change on the directory of the release that
// created it, and its bind mounts must survive a restart. If the containers
// cannot be listed, nothing is dropped.
func withoutInUse(ctx context.Context, h *remote.Host, drop []string, log *progress.Logger) []string {
	if len(drop) == 0 || h.DryRun {
		return drop
	}
	cs, err := h.Containers(ctx)
	if err != nil {
		log.Warnf("not pruning old releases: %v", err)
		return nil
	}
	inUse := map[string]bool{}
	for _, c := range cs {
		inUse[c.Release] = true
	}
	var out []string
	for _, r := range drop {
		if inUse[r] {
			log.Printf("keeping release %s: containers still run from its directory", short(r))
			continue
		}
		out = append(out, r)
	}
	return out
}

func keysOf(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
