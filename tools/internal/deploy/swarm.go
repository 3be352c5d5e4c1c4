package deploy

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/dotenv"
	"go.yaml.in/yaml/v4"

	"github.com/slipway-dev/slipway/tools/internal/deploy/remote"
	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/pinned"
	"github.com/slipway-dev/slipway/tools/internal/sshx"
)

func init() { Register(Swarm{}) }

// stackFile is the release's compose file rendered for docker stack deploy.
const stackFile = "stack.yaml"

// Swarm deploys to Docker Swarm: the release's compose file rendered for
// `docker stack deploy` (version 3.8 schema, pinned images) as
// releases/<commit>/stack.yaml, then `docker stack deploy
// --with-registry-auth --prune` on the manager the host is, with registry
// credentials that exist only for that command. `stack deploy` returns
// before the services converge (and `--detach=false` can hang, or exit 0
// after Swarm rolled an update back: docker/cli #5299, #6752), so slipway
// watches every service itself: its UpdateStatus and the state of tasks
// made from its current spec, bounded by --health-timeout. A failed update
// is rolled back: the previous release's stack file deployed again (or,
// without one, `docker service rollback` of the updated services and
// removal of the created ones), watched the same way; exit 4.
type Swarm struct{}

// Name is "swarm".
func (Swarm) Name() string { return "swarm" }

// swarmRun is what Apply saw, for Revert.
type swarmRun struct {
	before  map[string]uint64 // service name -> version before the deploy
	started time.Time         // server clock when the deploy began
}

// Apply deploys the stack and waits for it to converge.
func (Swarm) Apply(ctx context.Context, d *HostDeploy) error {
	h := d.Host
	if h.DryRun {
		h.Planf("render releases/%s/compose.yaml for docker stack deploy -> releases/%s/%s", d.Release, d.Release, stackFile)
		if err := h.StackDeploy(ctx, d.Release, stackFile, nil, d.registries, d.dockerConfig); err != nil {
			return err
		}
		d.MarkChanged()
		h.Planf("watch every service of stack %s until its update completes and its tasks run (up to %s); on failure deploy the previous release's %s again", h.Project, d.HealthTimeout(), stackFile)
		return nil
	}
	if err := h.SwarmManager(ctx); err != nil {
		return err
	}
	env, err := stackEnv(ctx, d, d.Release)
	if err != nil {
		return err
	}
	data, err := h.ReadReleaseFile(ctx, d.Release, "compose.yaml")
	if err != nil {
		return err
	}
	if data == nil {
		return fmt.Errorf("releases/%s/compose.yaml is missing on %s", d.Release, h.Name)
	}
	var model map[string]any
	if err := yaml.Unmarshal(data, &model); err != nil {
		return exit.Usagef("release %s: compose.yaml: %v", short(d.Release), err)
	}
	stack, notes, err := pinned.RenderNotes(model, pinned.Swarm)
	if err != nil {
		return exit.Usagef("rendering release %s for docker stack deploy: %v", short(d.Release), err)
	}
	for _, n := range notes {
		d.Log.Printf("stack file: %s", n)
	}
	if err := h.WriteReleaseFile(ctx, d.Release, stackFile, stack); err != nil {
		return err
	}
	svcs, err := h.StackServices(ctx)
	if err != nil {
		return err
	}
	run := &swarmRun{before: map[string]uint64{}}
	for _, s := range svcs {
		run.before[s.Name] = s.Version
	}
	if run.started, err = h.ServerTime(ctx); err != nil {
		return fmt.Errorf("reading the server's clock: %w", err)
	}
	// Task timestamps have sub-second precision, the clock read whole seconds.
	run.started = run.started.Add(-time.Second)
	d.setSwarmRun(run)
	start := time.Now()
	err = h.StackDeploy(ctx, d.Release, stackFile, env, d.registries, d.dockerConfig)
	if err != nil && errors.Is(err, remote.ErrRegistryLogin) {
		return err // the login failed before anything was deployed
	}
	d.MarkChanged()
	if err != nil {
		return err
	}
	d.Done("docker stack deploy", start)
	if err := watchStack(ctx, d, run.started, false); err != nil {
		return err
	}
	if d.cfg.smokeURL != "" {
		if err := smoke(ctx, d.Conn, d.cfg.smokeURL, time.Now().Add(d.HealthTimeout())); err != nil {
			return &HealthError{Release: d.Release, Reason: "smoke check", Smoke: err.Error()}
		}
		d.Log.Printf("smoke check %s: ok", d.cfg.smokeURL)
	}
	return nil
}

// Revert puts the stack back on the previous release.
func (Swarm) Revert(ctx context.Context, d *HostDeploy) error {
	h := d.Host
	run := d.takeSwarmRun()
	if h.DryRun {
		return nil
	}
	started, err := h.ServerTime(ctx)
	if err != nil {
		return fmt.Errorf("reading the server's clock: %w", err)
	}
	started = started.Add(-time.Second)
	if d.Previous == "" {
		d.Log.Printf("no previous release: removing stack %s (volumes kept)", h.Project)
		return h.StackRemove(ctx)
	}
	prevStack, err := h.ReadReleaseFile(ctx, d.Previous, stackFile)
	if err != nil {
		return err
	}
	if prevStack != nil {
		env, err := stackEnv(ctx, d, d.Previous)
		if err != nil {
			return err
		}
		d.Log.Printf("deploying the stack of release %s again", short(d.Previous))
		if err := h.StackDeploy(ctx, d.Previous, stackFile, env, d.registries, d.dockerConfig); err != nil {
			return err
		}
		return watchStack(ctx, d, started, true)
	}
	// The previous release was not deployed as a stack: undo this deploy's
	// changes service by service.
	svcs, err := h.StackServices(ctx)
	if err != nil {
		return err
	}
	var updated, created []string
	for _, s := range svcs {
		ver, existed := uint64(0), false
		if run != nil {
			ver, existed = run.before[s.Name]
		}
		switch {
		case !existed:
			created = append(created, s.Name)
		case s.Version != ver:
			updated = append(updated, s.Name)
		}
	}
	d.Log.Printf("release %s has no stack file: rolling back %d updated service(s), removing %d created", short(d.Previous), len(updated), len(created))
	if err := h.ServiceRemove(ctx, created); err != nil {
		return err
	}
	if err := h.ServiceRollback(ctx, updated); err != nil {
		return err
	}
	return watchStack(ctx, d, started, true)
}

// envName is what `export` accepts.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// stackEnv turns the release's .env into `export NAME='value'` lines for the
// stack file's ${VAR} references (docker stack deploy reads no .env).
func stackEnv(ctx context.Context, d *HostDeploy, release string) ([]byte, error) {
	data, err := d.Host.ReadReleaseFile(ctx, release, ".env")
	if err != nil || data == nil {
		return nil, err
	}
	vars, err := dotenv.UnmarshalBytesWithLookup(data, func(string) (string, bool) { return "", false })
	if err != nil {
		// Never quote the file: it holds secrets.
		return nil, exit.Usagef("release %s: .env (from --env-file) cannot be read: %s", short(release), firstLine(redactedErr(err)))
	}
	names := make([]string, 0, len(vars))
	for k := range vars {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, k := range names {
		if !envName.MatchString(k) {
			d.Log.Warnf(".env variable %q cannot be passed to docker stack deploy (not a shell variable name): skipped", k)
			continue
		}
		fmt.Fprintf(&b, "export %s=%s\n", k, sshx.Quote(vars[k]))
	}
	return []byte(b.String()), nil
}

func redactedErr(err error) string {
	s := err.Error()
	if i := strings.Index(s, "="); i >= 0 {
		s = s[:i] + "=..."
	}
	return s
}

// watchStack waits until every service of the stack has converged: no
// update running, and as many running tasks made from its current spec as it
// has replicas. An update Swarm paused or rolled back, or a task made from
// the current spec that failed, fails it at once; so does --health-timeout.
// reverting accepts an update Swarm itself rolled back (that is the goal).
func watchStack(ctx context.Context, d *HostDeploy, since time.Time, reverting bool) error {
	h := d.Host
	start := time.Now()
	deadline := start.Add(d.HealthTimeout())
	lastReport := start
	release := d.Release
	if reverting {
		release = d.Previous
	}
	for {
		svcs, err := h.StackServices(ctx)
		if err != nil {
			return err
		}
		st := judgeStack(svcs, since, reverting)
		if len(st.failed) > 0 {
			e := &HealthError{Release: release, Reason: "swarm update failed"}
			var others []FailedContainer
			for _, f := range st.failed {
				fc := FailedContainer{Name: f.task, Service: f.service, State: f.why, id: f.container}
				if f.container != "" {
					e.Failing = append(e.Failing, fc)
				} else {
					others = append(others, fc)
				}
			}
			if len(e.Failing) > 0 {
				_ = withLogs(ctx, h, d.Log, e) // prints the failed tasks' last lines
			}
			for _, o := range others {
				d.Log.Printf("service %s: %s", o.Service, o.State)
			}
			e.Failing = append(e.Failing, others...)
			return e
		}
		if len(st.pending) == 0 {
			d.Done(fmt.Sprintf("convergence of %d service(s)", len(svcs)), start)
			return nil
		}
		if !time.Now().Before(deadline) {
			e := &HealthError{Release: release, Reason: fmt.Sprintf("not converged after --health-timeout %s", d.HealthTimeout())}
			for _, p := range st.pending {
				e.Failing = append(e.Failing, FailedContainer{Name: p.service, Service: p.service, State: p.why})
			}
			return e
		}
		if time.Since(lastReport) > 10*time.Second {
			var parts []string
			for _, p := range st.pending {
				parts = append(parts, p.service+" ("+p.why+")")
			}
			d.Log.Printf("waiting for %s", strings.Join(parts, ", "))
			lastReport = time.Now()
		}
		if err := sleep(ctx, time.Second); err != nil {
			return err
		}
	}
}

type stackIssue struct {
	service, task, container, why string
}

type stackState struct {
	failed, pending []stackIssue
}

// judgeStack is the convergence verdict over the services (pure, unit-tested).
// since is the server time the deploy began: older update statuses and
// tasks belong to earlier deploys.
func judgeStack(svcs []remote.SwarmService, since time.Time, reverting bool) stackState {
	var st stackState
	for _, s := range svcs {
		fresh := !s.UpdateStarted.IsZero() && !s.UpdateStarted.Before(since)
		if fresh {
			switch s.UpdateState {
			case "updating", "rollback_started":
				st.pending = append(st.pending, stackIssue{service: s.Name, why: strings.ReplaceAll(s.UpdateState, "_", " ")})
				continue
			case "paused", "rollback_paused":
				st.failed = append(st.failed, withCause(stackIssue{service: s.Name, task: s.Name, why: "update " + strings.ReplaceAll(s.UpdateState, "_", " ") + ": " + s.UpdateMessage}, s, since))
				continue
			case "rollback_completed":
				if !reverting {
					st.failed = append(st.failed, withCause(stackIssue{service: s.Name, task: s.Name, why: "Swarm rolled the update back (" + s.UpdateMessage + ")"}, s, since))
					continue
				}
			}
		}
		running, stale := 0, 0
		var bad *remote.SwarmTask
		for i, t := range s.Tasks {
			if !t.UpToDate {
				// An old task still running (start-first keeps it until the
				// new one runs, then stops it with its grace period).
				if t.State == "running" || t.State == "starting" {
					stale++
				}
				continue
			}
			if t.DesiredState == "running" && t.State == "running" {
				running++
			}
			if t.CreatedAt.Before(since) {
				continue
			}
			switch t.State {
			case "failed", "rejected", "orphaned":
				if bad == nil {
					bad = &s.Tasks[i]
				}
			}
		}
		if bad != nil {
			why := "task " + bad.State
			if bad.Err != "" {
				why += ": " + bad.Err
			}
			name := fmt.Sprintf("%s.%d", s.Name, bad.Slot)
			st.failed = append(st.failed, stackIssue{service: s.Name, task: name, container: bad.ContainerID, why: why})
			continue
		}
		want := s.Replicas
		if want < 0 { // global: one per node, at least one
			want = max(1, countDesired(s.Tasks))
		}
		switch {
		case running < want:
			st.pending = append(st.pending, stackIssue{service: s.Name, why: fmt.Sprintf("%d/%d tasks of the current spec running", running, want)})
		case stale > 0:
			st.pending = append(st.pending, stackIssue{service: s.Name, why: fmt.Sprintf("%d old task(s) still stopping", stale)})
		}
	}
	return st
}

// withCause adds the newest task of this deploy that failed (the reason
// Swarm paused or rolled back the update) and its container, for its logs.
func withCause(i stackIssue, s remote.SwarmService, since time.Time) stackIssue {
	for _, t := range s.Tasks { // newest first
		if t.CreatedAt.Before(since) {
			continue
		}
		switch t.State {
		case "failed", "rejected", "shutdown", "complete":
			if t.Err == "" && t.State == "shutdown" {
				continue
			}
			i.task = fmt.Sprintf("%s.%d", s.Name, t.Slot)
			i.container = t.ContainerID
			if t.Err != "" {
				i.why += "; task " + t.State + ": " + t.Err
			}
			return i
		}
	}
	return i
}

func countDesired(ts []remote.SwarmTask) int {
	n := 0
	for _, t := range ts {
		if t.DesiredState == "running" {
			n++
		}
	}
	return n
}
