package deploy

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/deploy/remote"
	"github.com/slipway-dev/slipway/tools/internal/progress"
)

// Strategy moves one host from its previous release to a new one whose files
// are already uploaded, and back. The host fan-out, the lock, the upload, the
// `current` switch and pruning are the same for every strategy and live
// outside it.
//
// Apply must call d.MarkChanged() before its first step that changes what
// runs on the host; an error after that makes the caller Revert the host (exit
// 4, or 5 when Revert fails), an error before it means nothing changed (exit 1).
type Strategy interface {
	Name() string
	Apply(ctx context.Context, d *HostDeploy) error
	// Revert brings the host back to d.Previous (serving, health-gated); with no
	// previous release (a first deploy) it stops what Apply started.
	Revert(ctx context.Context, d *HostDeploy) error
}

var (
	strategiesMu sync.Mutex
	strategies   = map[string]Strategy{}
)

// Register adds a strategy (rolling and swarm register themselves the same way).
func Register(s Strategy) {
	strategiesMu.Lock()
	defer strategiesMu.Unlock()
	strategies[s.Name()] = s
}

// Strategies lists the registered strategy names.
func Strategies() []string {
	strategiesMu.Lock()
	defer strategiesMu.Unlock()
	var names []string
	for n := range strategies {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func strategyNamed(name string) (Strategy, bool) {
	strategiesMu.Lock()
	defer strategiesMu.Unlock()
	s, ok := strategies[name]
	return s, ok
}

func init() { Register(Recreate{}) }

// HostDeploy is one host's deploy as a strategy sees it.
type HostDeploy struct {
	Host     *remote.Host // Dir, Project and compose flavour are set
	Conn     Conn
	Release  string // the new release (commit), uploaded to releases/<Release>
	Previous string // the release `current` pointed to before, "" on a first deploy
	Log      *progress.Logger

	cfg          hostConfig
	images       []string // images to pull; nil: compose pull
	prevImages   []string // the previous release's images (its release.json), pulled before a revert
	dockerConfig []byte   // config.json with auths for the pull, nil for none
	registries   []string
	// prevProject is the project Previous runs under when it is not Host's
	// (a rename, or a rollback across one); "" when it is the same.
	prevProject string
	// volumesBefore: the project's volumes before a deploy that starts it
	// here; nil when unknown or when the project ran here already.
	volumesBefore map[string]bool

	mu      sync.Mutex
	changed bool
	// Strategy state carried from Apply to Revert of this one host deploy.
	paused       string                           // rolling: service whose failure_action: pause stopped the rollout
	rollingCfgs  map[string]*remote.ReleaseConfig // rolling: compose config reads, by release
	swarmPending *swarmRun                        // swarm: what Apply saw before the stack deploy
}

// setPaused records that the rollout stopped on svc with failure_action:
// pause, which Revert then leaves as it is.
func (d *HostDeploy) setPaused(svc string) {
	d.mu.Lock()
	d.paused = svc
	d.mu.Unlock()
}

// pausedService is the service set by setPaused, "" for none.
func (d *HostDeploy) pausedService() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.paused
}

// releaseConfigs returns the compose config reads kept for this host deploy
// (the release directories do not change in between), nil for none.
func (d *HostDeploy) releaseConfigs() map[string]*remote.ReleaseConfig {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.rollingCfgs
}

func (d *HostDeploy) setReleaseConfigs(cfgs map[string]*remote.ReleaseConfig) {
	d.mu.Lock()
	d.rollingCfgs = cfgs
	d.mu.Unlock()
}

// takeSwarmRun returns and forgets what swarm's Apply recorded.
func (d *HostDeploy) takeSwarmRun() *swarmRun {
	d.mu.Lock()
	defer d.mu.Unlock()
	run := d.swarmPending
	d.swarmPending = nil
	return run
}

func (d *HostDeploy) setSwarmRun(run *swarmRun) {
	d.mu.Lock()
	d.swarmPending = run
	d.mu.Unlock()
}

// MarkChanged records that the host is about to change (see Strategy).
func (d *HostDeploy) MarkChanged() {
	d.mu.Lock()
	d.changed = true
	d.mu.Unlock()
}

// Changed reports whether MarkChanged was called.
func (d *HostDeploy) Changed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.changed
}

// hostConfig is what a strategy needs of the command's options.
type hostConfig struct {
	healthTimeout time.Duration
	smokeURL      string
	preDeploy     string
}

// Done logs "<what> done in ..." (not in a dry run, where nothing was done).
func (d *HostDeploy) Done(what string, start time.Time) {
	if !d.Host.DryRun {
		d.Log.Done(what, start)
	}
}

// HealthTimeout is the deploy's --health-timeout.
func (d *HostDeploy) HealthTimeout() time.Duration { return d.cfg.healthTimeout }

// Pull makes the new release's images present, with registry credentials
// that exist on the server only for that one command.
func (d *HostDeploy) Pull(ctx context.Context) error {
	return d.Host.Pull(ctx, d.Release, d.images, d.registries, d.dockerConfig)
}

// pullPrevious makes the previous release's images present before a revert
// converges it (they may have been removed from the server since it ran),
// with the same short-lived credentials. A failure is only a warning: the
// images may be present anyway, and compose up says so if they are not.
func (d *HostDeploy) pullPrevious(ctx context.Context) {
	if d.Previous == "" || len(d.prevImages) == 0 || d.Host.DryRun {
		return
	}
	if err := d.Host.Pull(ctx, d.Previous, d.prevImages, d.registries, d.dockerConfig); err != nil {
		d.Log.Warnf("pulling release %s's images for the rollback: %v", short(d.Previous), err)
	}
}

// PreDeploy runs the --pre-deploy hook (`compose run --rm SERVICE sh -c
// COMMAND`) on the new release; a no-op without a hook.
func (d *HostDeploy) PreDeploy(ctx context.Context) error {
	svc, cmd, ok := parseHook(d.cfg.preDeploy)
	if !ok {
		return nil
	}
	d.Log.Printf("pre-deploy hook: %s: %s", svc, cmd)
	if err := d.Host.RunOneOff(ctx, d.Release, svc, []string{"sh", "-c", cmd}); err != nil {
		if inner := errors.Unwrap(err); inner != nil {
			err = inner // the hook is named below; not the compose command line again
		}
		return fmt.Errorf("pre-deploy hook %q failed: %w", d.cfg.preDeploy, err)
	}
	return nil
}

// HealthGate waits until the project's containers pass, then fetches the
// smoke URL; see healthGate.
func (d *HostDeploy) HealthGate(ctx context.Context, release string) error {
	return healthGate(ctx, d.Host, d.Conn, d.cfg.healthTimeout, d.cfg.smokeURL, release, d.Log)
}

func parseHook(s string) (svc, cmd string, ok bool) {
	svc, cmd, ok = strings.Cut(s, ":")
	svc, cmd = strings.TrimSpace(svc), strings.TrimSpace(cmd)
	return svc, cmd, ok && svc != "" && cmd != ""
}

// upTimeout bounds one `compose up`. Compose waits for depends_on health
// conditions itself, forever when a dependency crash-loops in "starting", so
// the bound is the health timeout plus time to create the containers.
func (d *HostDeploy) upTimeout() time.Duration { return d.cfg.healthTimeout + 2*time.Minute }

// Recreate is the default strategy: pull, pre-deploy hook, then `compose up -d
// --remove-orphans`, which recreates changed services (a short downtime for
// them) and leaves unchanged ones running, then the health gate.
type Recreate struct{}

// Name is "recreate".
func (Recreate) Name() string { return "recreate" }

// Apply converges the host to the new release.
func (Recreate) Apply(ctx context.Context, d *HostDeploy) error {
	start := time.Now()
	if err := d.Pull(ctx); err != nil {
		if !errors.Is(err, remote.ErrRegistryLogin) {
			// The contract treats a failed pull as a failed deploy: the
			// previous release is re-deployed and health-checked (exit 4).
			d.MarkChanged()
		}
		return err
	}
	d.Done("pull", start)
	if err := d.PreDeploy(ctx); err != nil {
		// `run` starts the hook service's dependencies from the new release;
		// converge the previous release again so nothing stays switched.
		rctx, cancel := cleanupContext(ctx, d.upTimeout())
		var rerr error
		if d.Previous != "" {
			rerr = d.Host.Up(rctx, d.Previous)
		} else {
			rerr = d.Host.Down(rctx, d.Release)
		}
		cancel()
		if rerr != nil {
			d.Log.Warnf("restoring the services after the failed hook: %v", rerr)
		}
		return err
	}
	d.MarkChanged()
	start = time.Now()
	uctx, cancel := context.WithTimeout(ctx, d.upTimeout())
	defer cancel()
	if err := d.Host.Up(uctx, d.Release); err != nil {
		return fmt.Errorf("converging: %w", err)
	}
	d.Done("up", start)
	return d.HealthGate(ctx, d.Release)
}

// Revert converges the previous release again (or takes a first release down,
// keeping its volumes) and health-gates it.
func (Recreate) Revert(ctx context.Context, d *HostDeploy) error {
	uctx, cancel := context.WithTimeout(ctx, d.upTimeout())
	defer cancel()
	if d.Previous == "" {
		d.Log.Printf("no previous release: stopping release %s (volumes kept)", short(d.Release))
		return d.Host.Down(uctx, d.Release)
	}
	d.pullPrevious(uctx)
	if err := d.Host.Up(uctx, d.Previous); err != nil {
		return fmt.Errorf("re-deploying release %s: %w", short(d.Previous), err)
	}
	return d.HealthGate(ctx, d.Previous)
}

func short(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}
