package deploy

import (
	"context"
	"fmt"
	"strings"

	"github.com/slipway-dev/slipway/tools/internal/deploy/remote"
	"github.com/slipway-dev/slipway/tools/internal/exit"
)

// The project name is the app's identity on a host: its containers, networks
// and named volumes (the database's data) carry it. A deploy under another
// name would start a second copy of the app beside the first, with empty
// volumes, or clash with it over ports; so the name the host's current
// release runs under wins, and a change of name is an explicit rename.

// projectMismatch is the exit-2 refusal of a deploy whose manifest names
// another project than the one the host's current release runs under.
func projectMismatch(host, dir, current, running, want string) error {
	return exit.Usagef("%s: %s runs compose project %q (release %s), but this release is project %q: "+
		"deploying it would start a second copy of the app beside the first, with its own empty volumes; nothing was changed. "+
		"Either build and deploy under the host's name (-p %s, COMPOSE_PROJECT_NAME=%s or name: %s in the compose file), "+
		"or rename deliberately with --rename-project (Jenkins: deployCompose(renameProject: true)), "+
		"which takes project %q down first (containers and networks removed, its named volumes kept) and then deploys %q",
		host, dir, running, short(current), want, running, running, running, running, want)
}

// releaseOfOtherProject refuses to upload a release over one of the same
// commit that was deployed under another project: its release.json records
// the project its rollbacks run under, and is never rewritten by another.
func releaseOfOtherProject(rels []remote.Release, commit, project, host string) error {
	for _, rel := range rels {
		if rel.Name == commit && rel.Meta != nil && rel.Meta.Project != "" && rel.Meta.Project != project {
			return exit.Usagef("%s: release %s is already there as project %q (its release.json), and this deploy is project %q: "+
				"a release keeps the project it was first deployed under, nothing was changed; "+
				"deploy a new commit under %q (git commit --allow-empty will do), or go back to it under its own project with slipway rollback --to %s",
				host, short(commit), rel.Meta.Project, project, project, short(commit))
		}
	}
	return nil
}

// renamed reports whether the host's previous release runs under another
// project than the one being converged (a rename, or a rollback across one).
func (d *HostDeploy) renamed() bool {
	return d.prevProject != "" && d.prevProject != d.Host.Project
}

// hostAs is the host's operations under another project name.
func (d *HostDeploy) hostAs(project string) *remote.Host {
	h := *d.Host
	h.Project = project
	return &h
}

// noteVolumes records the named volumes of the project being converged
// before it changes, so that undoing a deploy that started the project here
// removes only the volumes that deploy created.
func (d *HostDeploy) noteVolumes(ctx context.Context) {
	if d.Previous != "" && !d.renamed() {
		return // the project runs here already: its volumes are its data
	}
	vols, err := d.Host.Volumes(ctx)
	if err != nil {
		d.Log.Warnf("%v; volumes of project %s are kept if this deploy is undone", err, d.Host.Project)
		return
	}
	d.volumesBefore = map[string]bool{}
	for _, v := range vols {
		d.volumesBefore[v] = true
	}
}

// removeCreatedVolumes removes the volumes of the converged project that did
// not exist before this deploy (its containers must be gone). Failures are
// warnings: the host runs what it should; the volumes are only left over.
func (d *HostDeploy) removeCreatedVolumes(ctx context.Context) {
	if d.volumesBefore == nil {
		return
	}
	vols, err := d.Host.Volumes(ctx)
	if err != nil {
		d.Log.Warnf("%v", err)
		return
	}
	var created []string
	for _, v := range vols {
		if !d.volumesBefore[v] {
			created = append(created, v)
		}
	}
	if len(created) == 0 {
		return
	}
	if err := d.Host.RemoveVolumes(ctx, created); err != nil {
		d.Log.Warnf("removing the volumes this deploy created: %v", err)
		return
	}
	d.Log.Printf("removed the volume(s) this deploy created: %s", strings.Join(created, ", "))
}

// takeDownPrevious stops the previous project before the renamed one
// converges: compose down without -v (swarm: stack rm), so its named volumes
// stay; it returns them, for the output. The host counts as changed from here.
func (d *HostDeploy) takeDownPrevious(ctx context.Context, swarm bool) ([]string, error) {
	old := d.hostAs(d.prevProject)
	vols, err := old.Volumes(ctx)
	if err != nil {
		d.Log.Warnf("%v", err) // only for the output: the volumes stay either way
	}
	d.MarkChanged()
	d.Log.Printf("renaming the project from %s to %s: taking project %s (release %s) down; its volumes are kept", d.prevProject, d.Host.Project, d.prevProject, short(d.Previous))
	if swarm {
		if err := old.StackRemove(ctx); err != nil {
			return vols, err
		}
		if err := old.WaitStackGone(ctx, d.upTimeout()); err != nil {
			return vols, err
		}
	} else if err := old.Down(ctx, d.Previous); err != nil {
		return vols, fmt.Errorf("taking project %s down: %w", d.prevProject, err)
	}
	if len(vols) > 0 {
		d.Log.Printf("project %s is down; its volumes are kept (remove them with docker volume rm once they are no longer needed): %s", d.prevProject, strings.Join(vols, ", "))
	} else {
		d.Log.Printf("project %s is down; it had no named volumes", d.prevProject)
	}
	return vols, nil
}

// revertRenamed undoes a converge under a new project name: the new project
// comes down (and the volumes it created go), then the previous release comes
// up again under its own project.
func revertRenamed(ctx context.Context, strategy Strategy, d *HostDeploy) error {
	swarm := strategy.Name() == "swarm"
	d.Log.Printf("taking project %s down, then project %s (release %s) up again", d.Host.Project, d.prevProject, short(d.Previous))
	if swarm {
		if err := d.Host.StackRemove(ctx); err != nil {
			return err
		}
		if err := d.Host.WaitStackGone(ctx, d.upTimeout()); err != nil {
			return err
		}
	} else {
		if err := d.Host.Down(ctx, d.Release); err != nil {
			return fmt.Errorf("taking project %s down: %w", d.Host.Project, err)
		}
		d.removeCreatedVolumes(ctx)
	}
	saved := d.Host
	d.Host = d.hostAs(d.prevProject)
	defer func() { d.Host = saved }()
	if swarm {
		return strategy.Revert(ctx, d)
	}
	// Recreate, also after a rolling deploy: nothing of the new project runs.
	return Recreate{}.Revert(ctx, d)
}
