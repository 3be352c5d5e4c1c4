package deploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/owner"

	"github.com/slipway-dev/slipway/tools/internal/deploy/remote"
	"github.com/slipway-dev/slipway/tools/internal/progress"
)

// keepLock renews the host's lock while it is held (see remote.RenewInterval);
// closeRuns stops it before releasing the lock.
func (r *hostRun) keepLock(ttl time.Duration, log *progress.Logger) {
	r.stopRenew = r.lock.KeepAlive(remote.RenewInterval(ttl), func(err error) {
		r.lockLost.Store(true)
		log.Warnf("%v: another deploy may be changing this host now; this one stops before converging if it has not started to, and otherwise finishes (or rolls back) what it started", err)
	})
}

// checkInterrupted looks for the marker of a deploy or rollback that died
// mid-converge and says what this run does about it: it converges the host
// to a whole release, which repairs it. Its rollback target stays the
// release `current` names (the last one that was whole).
func (r *hostRun) checkInterrupted(ctx context.Context, cmd, release string) error {
	h := r.conn.h
	m, err := h.ReadDeploying(ctx)
	if err != nil || m == nil {
		return err
	}
	r.interrupted = m
	r.res.Interrupted = m.String()
	r.conn.log.Warnf("an earlier %s was interrupted mid-converge on this host (its connection died or it was killed): %s; its containers may run a mix of releases while %s/current still names %s; this %s converges release %s, which repairs it",
		m.Command, m.String(), h.Dir, orNone(short(m.Previous)), cmd, short(release))
	return nil
}

// marker is the .slipway/deploying content for this run.
func (r *hostRun) marker(cmd, release, previous, build string) remote.Deploying {
	m := remote.Deploying{Command: cmd, Release: release, Previous: previous, Owner: whoami(), PID: os.Getpid(), BuildURL: build,
		Time: time.Now().UTC().Format(time.RFC3339), Origin: owner.Self()}
	if r.lock != nil {
		m.Token = r.lock.Token()
	}
	m.Fresh = cmd == "deploy" && r.fresh
	return m
}

// beginConverge is the last step before the host changes: it makes sure the
// lock is still this deploy's (renewing it) and writes the marker a later
// deploy finds if this one dies mid-converge. An error means nothing changed.
func (r *hostRun) beginConverge(ctx context.Context, cmd, release, previous, build string) error {
	h := r.conn.h
	if err := r.lock.Renew(ctx); err != nil {
		if errors.Is(err, remote.ErrLockLost) {
			r.lockLost.Store(true)
			return fmt.Errorf("%w; not converging: another deploy may be changing this host (check slipway status, then deploy again)", err)
		}
		return err
	}
	if r.interrupted != nil {
		r.waitComposeIdle(ctx)
	}
	return h.WriteDeploying(ctx, r.marker(cmd, release, previous, build))
}

// waitComposeIdle lets a compose command that a cut connection left
// running on the server finish before this run converges the host: two
// converges of one project at once race (containers renamed under each
// other, the loser's release winning). Failing to check is only a warning.
func (r *hostRun) waitComposeIdle(ctx context.Context) {
	timeout := 3 * time.Minute
	if r.d != nil {
		timeout = r.d.upTimeout()
	}
	start := time.Now()
	waited, err := r.conn.h.WaitComposeIdle(ctx, timeout)
	switch {
	case err != nil:
		r.conn.log.Warnf("%v; converging anyway", err)
	case waited:
		r.conn.log.Printf("waited %s for the interrupted run's compose command on the server to finish", progress.Duration(time.Since(start)))
	}
}

// endConverge removes the marker once the host is whole again: on the new
// release, or back on the previous one; current is what <dir>/current now
// names.
func (r *hostRun) endConverge(ctx context.Context, current string) {
	h := r.conn.h
	// Also after a cancel: a marker left behind would report a whole host as
	// interrupted.
	ctx, cancel := cleanupContext(ctx, 30*time.Second)
	defer cancel()
	if err := h.ClearDeploying(ctx); err != nil {
		r.conn.log.Warnf("%v", err)
		return
	}
	// The interrupted run's own upload never became a whole release here,
	// unless this run deployed that same release (then it is current and stays).
	if m := r.interrupted; m != nil && m.Fresh && !h.DryRun {
		r.interrupted = nil
		if m.Release == current {
			r.conn.log.Printf("kept release %s uploaded by the interrupted %s: it is current now", short(m.Release), m.Command)
			return
		}
		if err := h.RemoveReleases(ctx, []string{m.Release}, nil); err != nil {
			r.conn.log.Warnf("removing release %s left by the interrupted %s: %v", short(m.Release), m.Command, err)
		} else {
			r.conn.log.Printf("removed release %s uploaded by the interrupted %s (it never served here)", short(m.Release), m.Command)
		}
	}
}

// connAlive runs a no-op over the host's connection.
func (r *hostRun) connAlive(ctx context.Context) bool {
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return r.conn.c.Run(cctx, "true", nil, nil, nil) == nil
}

// redial replaces the host's dead connection with a new one; the deploy's
// state (directory, project, compose flavour, lock) moves over to it.
func (r *hostRun) redial(ctx context.Context) error {
	old := r.conn
	c, err := r.target.dial(ctx, r.name, old.log)
	if err != nil {
		return err
	}
	nh := *old.h
	nh.Conn = c.c
	c.h = &nh
	r.handshakes += old.c.Handshakes()
	old.c.Close()
	r.conn = c
	if r.d != nil {
		r.d.Host, r.d.Conn = c.h, c.c
	}
	r.waitComposeIdle(ctx)
	if r.lock != nil {
		r.lock.SetHost(c.h)
		// The lock may have aged while the connection was down.
		if err := r.lock.Renew(ctx); err != nil {
			c.log.Warnf("%v", err)
		}
	}
	return nil
}
