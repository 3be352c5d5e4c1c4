// Rolling's per-service steps on the server: scale up, gate, join the
// service's name, and the batches they run in.

package deploy

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/deploy/remote"
)

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
	err = d.Host.ScaleService(uctx, ro.target, s.Name, total+n, !hide)
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
