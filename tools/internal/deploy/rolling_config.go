// Rolling's reading of a service's settings: update_config, order, ports,
// dependency order, and the value conversions they need.

package deploy

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/deploy/remote"
	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/progress"
)

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
