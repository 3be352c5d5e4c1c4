package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/deploy/remote"
	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/progress"
)

// InfoOptions configure Status, Releases and Unlock.
type InfoOptions struct {
	Target
	JSON   bool
	Stdout io.Writer
	Log    *progress.Logger
}

func (o *InfoOptions) setDefaults() {
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Log == nil {
		o.Log = progress.New(os.Stderr)
	}
}

// HostStatus is one host as `slipway status` reports it.
type HostStatus struct {
	Host        string              `json:"host"`
	Dir         string              `json:"dir,omitempty"`
	Docker      string              `json:"docker,omitempty"`
	Compose     string              `json:"compose,omitempty"`
	Current     string              `json:"current,omitempty"`
	Release     *remote.ReleaseJSON `json:"release,omitempty"` // current's release.json
	Releases    int                 `json:"releases"`
	Lock        *remote.LockStatus  `json:"lock,omitempty"`
	Deploying   *remote.Deploying   `json:"deploying,omitempty"`   // .slipway/deploying: a converge in progress or interrupted
	Interrupted bool                `json:"interrupted,omitempty"` // Deploying's run is gone (see interruptedRun)
	Containers  []remote.Container  `json:"containers"`
	Healthy     bool                `json:"healthy"` // every container passes the health gate's rules
	// Services of the current release: serving (a container of current
	// runs), missing (no container at all), other-release (only containers
	// of another release run) or not-running.
	Services []ServiceStatus `json:"services"`
	// LockOwnerDead: the lock is held by a process that is provably gone.
	LockOwnerDead bool `json:"lockOwnerDead,omitempty"`
	// LeftChanged: the host is not serving its current release as a whole
	// (interrupted, a service missing or on another release, a dead
	// owner's lock): exit 5; `slipway rollback --repair` restores it.
	LeftChanged bool     `json:"leftChanged"`
	Problems    []string `json:"problems,omitempty"`
	Error       string   `json:"error,omitempty"`
}

// ServiceStatus is one service of the current release on a host.
type ServiceStatus struct {
	Service string `json:"service"`
	State   string `json:"state"` // serving, missing, other-release, not-running
	Release string `json:"release,omitempty"`
}

// Service states in status.
const (
	ServiceServing      = "serving"
	ServiceMissing      = "missing"
	ServiceOtherRelease = "other-release"
	ServiceNotRunning   = "not-running"
)

// HostReleases is one host's releases as `slipway releases` reports them.
type HostReleases struct {
	Host     string           `json:"host"`
	Dir      string           `json:"dir,omitempty"`
	Current  string           `json:"current,omitempty"`
	Releases []ReleaseSummary `json:"releases"`
	Error    string           `json:"error,omitempty"`
}

// ReleaseSummary is one release directory.
type ReleaseSummary struct {
	Commit     string   `json:"commit"`
	Current    bool     `json:"current"`
	DeployedAt string   `json:"deployedAt,omitempty"`
	DeployedBy string   `json:"deployedBy,omitempty"`
	Branch     string   `json:"branch,omitempty"`
	BuildURL   string   `json:"buildUrl,omitempty"`
	Previous   string   `json:"previous,omitempty"`
	Images     []string `json:"images,omitempty"`
}

// forHosts connects to every host (up to 8 at a time: these commands only
// read) and calls fn with the connection; errors are per host.
func forHosts(ctx context.Context, t *Target, log *progress.Logger, fn func(ctx context.Context, i int, c *conn, f *remote.Facts) error) ([]error, error) {
	hosts, err := t.hostList()
	if err != nil {
		return nil, err
	}
	errs := make([]error, len(hosts))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			hl := log.With(h)
			c, err := t.dial(ctx, h, hl)
			if err != nil {
				errs[i] = err
				return
			}
			defer c.c.Close()
			f, err := c.h.Probe(ctx)
			if f == nil {
				errs[i] = err
				return
			}
			if errors.Is(err, remote.ErrNoDocker) {
				// No docker CLI: a server deployed through the compose
				// library is read through its engine's API.
				_ = c.h.UseEngineAPIOf(ctx, f) // unreachable: no containers listed, as before
			}
			errs[i] = fn(ctx, i, c, f)
		}()
	}
	wg.Wait()
	return errs, nil
}

// Status reports, per host, the current release (who deployed it, when,
// from which build) and the state and health of the project's containers.
func Status(ctx context.Context, o InfoOptions) ([]HostStatus, error) {
	o.setDefaults()
	hosts, err := o.hostList()
	if err != nil {
		return nil, err
	}
	out := make([]HostStatus, len(hosts))
	errs, err := forHosts(ctx, &o.Target, o.Log, func(ctx context.Context, i int, c *conn, f *remote.Facts) error {
		st := &out[i]
		st.Dir, st.Docker, st.Compose = f.Dir, f.DockerVersion, string(f.Compose)
		rels, current, err := c.h.Releases(ctx)
		if err != nil {
			return err
		}
		st.Current, st.Releases = current, len(rels)
		for _, r := range rels {
			if r.Name == current {
				st.Release = r.Meta
			}
		}
		if st.Lock, err = c.h.ReadLock(ctx); err != nil {
			return err
		}
		if st.Deploying, err = c.h.ReadDeploying(ctx); err != nil {
			return err
		}
		st.Interrupted = interruptedRun(st.Deploying, st.Lock)
		st.LockOwnerDead = st.Lock != nil && st.Lock.Info.Origin.Dead()
		if st.Release == nil || st.Release.Project == "" || f.DockerVersion == "" {
			st.Containers = []remote.Container{}
			judge(st)
			return nil
		}
		c.h.Project = st.Release.Project
		cs, err := c.h.Containers(ctx)
		if err != nil {
			return err
		}
		st.Containers = cs
		st.Healthy = len(cs) > 0
		for _, ct := range cs {
			if v, _ := remote.Judge(ct); v != remote.Ready {
				st.Healthy = false
			}
		}
		judge(st)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Host = hosts[i]
		if out[i].Containers == nil {
			out[i].Containers = []remote.Container{}
		}
		if errs[i] != nil {
			out[i].Error = errs[i].Error()
		}
	}
	if o.JSON {
		if err := writeJSON(o.Stdout, out); err != nil {
			return out, err
		}
	} else {
		printStatus(o.Stdout, out)
	}
	var left []string
	for _, st := range out {
		if st.LeftChanged {
			left = append(left, st.Host+": "+strings.Join(st.Problems, "; "))
		}
	}
	if len(left) > 0 {
		return out, exit.With(exit.LeftChanged, fmt.Errorf("status: host(s) left changed: %s; run slipway rollback --repair to restore the current release", strings.Join(left, "; ")))
	}
	return out, hostErrors("status", hosts, errs)
}

// judge fills a host's per-service states and whether it is left changed.
func judge(st *HostStatus) {
	st.Services = []ServiceStatus{}
	if st.Interrupted {
		st.Problems = append(st.Problems, "interrupted mid-converge ("+st.Deploying.String()+")")
	}
	if st.LockOwnerDead {
		st.Problems = append(st.Problems, "locked by a deploy that is gone ("+st.Lock.Info.Origin.String()+")")
	}
	if m := st.Release; m != nil {
		var names []string
		for n := range m.Services {
			names = append(names, n)
		}
		for n := range m.External {
			if _, ok := m.Services[n]; !ok {
				names = append(names, n)
			}
		}
		sort.Strings(names)
		for _, n := range names {
			ss := serviceState(n, st.Current, st.Containers)
			st.Services = append(st.Services, ss)
			switch ss.State {
			case ServiceMissing:
				st.Problems = append(st.Problems, "service "+n+" has no container")
			case ServiceOtherRelease:
				st.Problems = append(st.Problems, "service "+n+" runs release "+short(ss.Release)+", not current")
			}
		}
	}
	// A live deploy converging right now mixes releases on purpose: that is
	// "converging", not left changed (unless its lock's owner is gone).
	live := st.Deploying != nil && !st.Interrupted
	st.LeftChanged = len(st.Problems) > 0 && (!live || st.LockOwnerDead)
}

func serviceState(name, current string, cs []remote.Container) ServiceStatus {
	found, other := false, ""
	for _, c := range cs {
		if c.Service != name {
			continue
		}
		found = true
		if c.State != "running" {
			continue
		}
		if c.Release == "" || c.Release == current {
			return ServiceStatus{Service: name, State: ServiceServing, Release: current}
		}
		other = c.Release
	}
	switch {
	case !found:
		return ServiceStatus{Service: name, State: ServiceMissing}
	case other != "":
		return ServiceStatus{Service: name, State: ServiceOtherRelease, Release: other}
	}
	// Only stopped containers: a one-shot service (a migration) looks like
	// this too, so it is reported, not counted as a problem.
	return ServiceStatus{Service: name, State: ServiceNotRunning}
}

func printStatus(w io.Writer, sts []HostStatus) {
	for i, st := range sts {
		if i > 0 {
			fmt.Fprintln(w)
		}
		if st.Error != "" {
			fmt.Fprintf(w, "%s: error: %s\n", st.Host, st.Error)
			continue
		}
		if st.Current == "" {
			fmt.Fprintf(w, "%s: no release in %s\n", st.Host, st.Dir)
		} else {
			fmt.Fprintf(w, "%s: current %s", st.Host, st.Current)
			if m := st.Release; m != nil {
				fmt.Fprintf(w, " (project %s", m.Project)
				if m.Branch != "" {
					fmt.Fprintf(w, ", branch %s", m.Branch)
				}
				fmt.Fprintf(w, "), deployed %s by %s", m.DeployedAt, m.DeployedBy)
				if m.BuildURL != "" {
					fmt.Fprintf(w, " from %s", m.BuildURL)
				}
			}
			fmt.Fprintln(w)
		}
		if st.Lock != nil {
			fmt.Fprintf(w, "  locked: %s\n", (&remote.LockHeldError{Info: st.Lock.Info, Age: st.Lock.Age}).Error())
		}
		switch {
		case st.Interrupted:
			fmt.Fprintf(w, "  INTERRUPTED: %s died mid-converge; the containers may run a mix of releases; slipway rollback --repair (or the next deploy or rollback) converges the host again\n", st.Deploying)
		case st.Deploying != nil:
			fmt.Fprintf(w, "  converging: %s\n", st.Deploying)
		}
		if st.LockOwnerDead {
			fmt.Fprintf(w, "  LOCK LEFT: its owner %s is gone; the next deploy, rollback or rollback --repair takes it over\n", st.Lock.Info.Origin)
		}
		if len(st.Services) > 0 {
			var parts []string
			for _, ss := range st.Services {
				parts = append(parts, ss.Service+" "+ss.State)
			}
			fmt.Fprintf(w, "  services: %s\n", strings.Join(parts, ", "))
		}
		for _, ss := range st.Services {
			switch ss.State {
			case ServiceMissing:
				fmt.Fprintf(w, "  MISSING: service %s has no container\n", ss.Service)
			case ServiceOtherRelease:
				fmt.Fprintf(w, "  MIXED: service %s runs release %s, not current\n", ss.Service, short(ss.Release))
			}
		}
		if len(st.Containers) > 0 {
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "  SERVICE\tCONTAINER\tSTATE\tHEALTH\tRELEASE")
			for _, c := range st.Containers {
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", c.Service, c.Name, c.State, dash(c.Health), dash(short(c.Release)))
			}
			tw.Flush()
		}
	}
}

// interruptedRun says whether the run that wrote the deploying marker is
// gone: it no longer holds the lock, or the lock was not renewed for longer
// than the default TTL (a live deploy renews it every TTL/4).
func interruptedRun(m *remote.Deploying, lock *remote.LockStatus) bool {
	if m == nil {
		return false
	}
	if m.Origin.Dead() {
		return true
	}
	if lock == nil || m.Token == "" || lock.Info.Token != m.Token {
		return true
	}
	return lock.Age > DefaultLockTTL
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Releases lists each host's release directories, newest first, current marked.
func Releases(ctx context.Context, o InfoOptions) ([]HostReleases, error) {
	o.setDefaults()
	hosts, err := o.hostList()
	if err != nil {
		return nil, err
	}
	out := make([]HostReleases, len(hosts))
	errs, err := forHosts(ctx, &o.Target, o.Log, func(ctx context.Context, i int, c *conn, f *remote.Facts) error {
		hr := &out[i]
		hr.Dir = f.Dir
		rels, current, err := c.h.Releases(ctx)
		if err != nil {
			return err
		}
		hr.Current = current
		for _, r := range rels {
			s := ReleaseSummary{Commit: r.Name, Current: r.Current, DeployedAt: r.Time().UTC().Format(time.RFC3339)}
			if m := r.Meta; m != nil {
				s.DeployedBy, s.Branch, s.BuildURL, s.Previous, s.Images = m.DeployedBy, m.Branch, m.BuildURL, m.Previous, m.Images
			}
			hr.Releases = append(hr.Releases, s)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Host = hosts[i]
		if out[i].Releases == nil {
			out[i].Releases = []ReleaseSummary{}
		}
		if errs[i] != nil {
			out[i].Error = errs[i].Error()
		}
	}
	if o.JSON {
		if err := writeJSON(o.Stdout, out); err != nil {
			return out, err
		}
	} else {
		for i, hr := range out {
			if len(out) > 1 || hr.Error != "" {
				if i > 0 {
					fmt.Fprintln(o.Stdout)
				}
				fmt.Fprintf(o.Stdout, "%s:", hr.Host)
				if hr.Error != "" {
					fmt.Fprintf(o.Stdout, " error: %s", hr.Error)
				}
				fmt.Fprintln(o.Stdout)
			}
			if hr.Error != "" {
				continue
			}
			tw := tabwriter.NewWriter(o.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "  \tCOMMIT\tDEPLOYED\tBY\tBRANCH\tBUILD")
			for _, r := range hr.Releases {
				mark := ""
				if r.Current {
					mark = "*"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", mark, r.Commit, r.DeployedAt, dash(r.DeployedBy), dash(r.Branch), dash(r.BuildURL))
			}
			tw.Flush()
		}
	}
	return out, hostErrors("releases", hosts, errs)
}

// Unlock removes the deploy lock on every host, whoever holds it, and says
// whose it was. For a lock left by a deploy that died.
func Unlock(ctx context.Context, o InfoOptions) error {
	o.setDefaults()
	hosts, err := o.hostList()
	if err != nil {
		return err
	}
	lines := make([]string, len(hosts))
	errs, err := forHosts(ctx, &o.Target, o.Log, func(ctx context.Context, i int, c *conn, f *remote.Facts) error {
		st, err := c.h.ForceUnlock(ctx)
		if err != nil {
			return err
		}
		if st == nil {
			lines[i] = fmt.Sprintf("%s: not locked", hosts[i])
		} else {
			lines[i] = fmt.Sprintf("%s: removed the lock: %s", hosts[i], strings.TrimSuffix((&remote.LockHeldError{Info: st.Info, Age: st.Age}).Error(), "; wait, or run slipway unlock if that deploy is dead"))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i, l := range lines {
		if errs[i] != nil {
			l = fmt.Sprintf("%s: error: %v", hosts[i], errs[i])
		}
		fmt.Fprintln(o.Stdout, l)
	}
	return hostErrors("unlock", hosts, errs)
}

// hostErrors joins per-host errors into one (exit 1: nothing was changed).
func hostErrors(cmd string, hosts []string, errs []error) error {
	var parts []string
	for i, err := range errs {
		if err != nil {
			parts = append(parts, hosts[i]+": "+err.Error())
		}
	}
	if len(parts) == 0 {
		return nil
	}
	err := fmt.Errorf("%s: %s", cmd, strings.Join(parts, "; "))
	for _, e := range errs {
		if errors.Is(e, context.Canceled) {
			return exit.With(exit.Cancelled, err)
		}
	}
	return exit.With(exit.Failed, err)
}
