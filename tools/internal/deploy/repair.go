package deploy

import (
	"context"
	"fmt"
	"strings"

	"github.com/slipway-dev/slipway/tools/internal/deploy/remote"
)

// repairHost is `rollback --repair` on one host, under its lock (a dead
// owner's lock was taken over when it was acquired): it finds the marker
// of a deploy or rollback that died mid-converge and converges the release
// `current` names again (`compose up -d --remove-orphans` on it, then the
// health gate), removes the release the dead deploy uploaded (it never
// served) and clears the marker. Without a marker there is nothing to
// converge: the host was whole, and a dead owner's lock is released.
func repairHost(ctx context.Context, o *Options, r *hostRun, rels []remote.Release, current string) {
	h, log := r.conn.h, r.conn.log
	m, err := h.ReadDeploying(ctx)
	if err != nil {
		r.failUnchanged(log, err)
		return
	}
	r.res.Release, r.res.Previous = current, current
	if m == nil {
		broken, err := brokenServices(ctx, h, rels, current)
		if err != nil {
			r.failUnchanged(log, err)
			return
		}
		if len(broken) == 0 {
			r.res.Status = StatusDeployed
			log.Printf("nothing to repair: no interrupted deploy or rollback on this host, and release %s serves every service", orNone(short(current)))
			return
		}
		log.Warnf("repairing: %s", strings.Join(broken, "; "))
		m = &remote.Deploying{Command: "deploy", Release: current, Previous: current}
	} else {
		r.interrupted = m
		r.res.Interrupted = m.String()
		log.Warnf("repairing an interrupted %s: %s", m.Command, m.String())
	}
	// The project: current's release.json, else the interrupted release's.
	var target *remote.Release
	project := ""
	for i, rel := range rels {
		if rel.Name == current {
			target = &rels[i]
		}
		if rel.Meta != nil && rel.Meta.Project != "" && (rel.Name == current || (project == "" && rel.Name == m.Release)) {
			project = rel.Meta.Project
		}
	}
	if project == "" {
		r.failUnchanged(log, fmt.Errorf("neither release %s nor %s has a readable release.json naming the compose project; run slipway deploy to converge the host", orNone(short(current)), short(m.Release)))
		return
	}
	h.Project = project
	if current != "" && target == nil {
		r.failUnchanged(log, fmt.Errorf("%s/current names release %s, which is not in %s/releases; run slipway deploy to converge the host", h.Dir, short(current), h.Dir))
		return
	}
	// Repairing converges what current names; a first deploy that died
	// (no current) is taken down instead, keeping its volumes.
	d := &HostDeploy{Host: h, Conn: r.conn.c, Release: current, Previous: current, Log: log,
		cfg: hostConfig{healthTimeout: o.HealthTimeout, smokeURL: o.SmokeURL}}
	if current == "" {
		d.Release, d.Previous = m.Release, ""
	}
	r.d = d
	if err := r.beginConverge(ctx, "rollback", d.Release, current, o.Getenv("BUILD_URL")); err != nil {
		r.failUnchanged(log, err)
		return
	}
	d.MarkChanged()
	// Recreate's revert is exactly the repair: up -d --remove-orphans of
	// current (compose recreates what differs, removes what is extra) and
	// the health gate; or down of a first release.
	if err := (Recreate{}).Revert(ctx, d); err != nil {
		r.res.Status = StatusLeftChanged
		r.res.err = err
		r.res.Error = err.Error()
		r.res.RollbackError = err.Error()
		log.Printf("REPAIR FAILED, the host is left changed: %v", err)
		return
	}
	r.endConverge(ctx, current)
	r.res.Status = StatusDeployed
	if current == "" {
		if err := h.RemoveCurrent(ctx); err != nil {
			log.Warnf("%v", err)
		}
		log.Printf("repaired: the interrupted first deploy's release %s is taken down (volumes kept); nothing was deployed here before", short(m.Release))
		return
	}
	log.Printf("repaired: release %s (current) is serving again", short(current))
}

// brokenServices lists the services of the current release that have no
// container or run another release (what status reports as left changed).
func brokenServices(ctx context.Context, h *remote.Host, rels []remote.Release, current string) ([]string, error) {
	var meta *remote.ReleaseJSON
	for _, rel := range rels {
		if rel.Name == current {
			meta = rel.Meta
		}
	}
	if current == "" || meta == nil || meta.Project == "" {
		return nil, nil
	}
	h.Project = meta.Project
	cs, err := h.Containers(ctx)
	if err != nil {
		return nil, err
	}
	st := &HostStatus{Current: current, Release: meta, Containers: cs}
	judge(st)
	return st.Problems, nil
}
