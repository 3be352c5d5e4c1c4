package pinned

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v4"
)

// Target is the tool that will read the rendered file.
type Target int

// Render targets.
const (
	// ComposeV2 is `docker compose` (v2+): the model as loaded, with name:.
	ComposeV2 Target = iota
	// ComposeV1 is docker-compose 1.29: no top-level name: (1.29 rejects it;
	// pass the project with -p), short port and volume syntax, and none of
	// the keys the compose spec gained after 1.29.
	ComposeV1
	// Swarm is `docker stack deploy`: the version "3.8" schema, list-form
	// depends_on, no build, resource limits under deploy.resources.
	Swarm
)

func (t Target) String() string {
	switch t {
	case ComposeV1:
		return "compose-v1"
	case Swarm:
		return "swarm"
	}
	return "compose-v2"
}

// ParseTarget reads "compose-v2", "compose-v1" or "swarm".
func ParseTarget(s string) (Target, error) {
	for _, t := range []Target{ComposeV2, ComposeV1, Swarm} {
		if s == t.String() {
			return t, nil
		}
	}
	return 0, fmt.Errorf("unknown render target %q: want compose-v2, compose-v1 or swarm", s)
}

// Render returns the model as a compose file for target. The model is not
// changed.
func Render(m Model, t Target) ([]byte, error) {
	data, _, err := RenderNotes(m, t)
	return data, err
}

// RenderNotes is Render that also returns what it had to drop or convert for
// the target, one human-readable note each, for the deploy log.
func RenderNotes(m Model, t Target) ([]byte, []string, error) {
	c, ok := deepCopy(m).(map[string]any)
	if !ok {
		return nil, nil, fmt.Errorf("the compose model is not a mapping")
	}
	var notes []string
	note := func(format string, a ...any) { notes = append(notes, fmt.Sprintf(format, a...)) }
	switch t {
	case ComposeV2:
	case ComposeV1:
		delete(c, "name")
		delete(c, "version")
		if err := toV1(c, note); err != nil {
			return nil, notes, err
		}
	case Swarm:
		delete(c, "name")
		if err := toSwarm(c, note); err != nil {
			return nil, notes, err
		}
		c["version"] = "3.8"
	default:
		return nil, nil, fmt.Errorf("unknown render target %d", t)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(ordered(c)); err != nil {
		return nil, notes, fmt.Errorf("rendering compose file: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, notes, fmt.Errorf("rendering compose file: %w", err)
	}
	return buf.Bytes(), notes, nil
}

// topOrder puts the keys a reader looks for first.
var topOrder = []string{"version", "name", "services", "networks", "volumes", "configs", "secrets"}

// ordered turns the top level into a yaml.Node so version/name/services come
// first; nested maps marshal with sorted keys, which is stable.
func ordered(m map[string]any) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode}
	add := func(k string) {
		var v yaml.Node
		if err := v.Encode(m[k]); err != nil {
			v = yaml.Node{Kind: yaml.ScalarNode, Value: fmt.Sprint(m[k])}
		}
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: k}, &v)
	}
	seen := map[string]bool{}
	for _, k := range topOrder {
		if _, ok := m[k]; ok {
			add(k)
			seen[k] = true
		}
	}
	for _, k := range sortedKeys(m) {
		if !seen[k] {
			add(k)
		}
	}
	return n
}

func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		c := make(map[string]any, len(x))
		for k, e := range x {
			c[k] = deepCopy(e)
		}
		return c
	case []any:
		c := make([]any, len(x))
		for i, e := range x {
			c[i] = deepCopy(e)
		}
		return c
	}
	return v
}

// Keys the compose spec gained after docker-compose 1.29 (or that mean
// nothing outside Compose v2), dropped for v1 with a note.
var v1Unknown = []string{"develop", "label_file", "models", "provider", "post_start", "pre_stop", "use_api_socket", "gpus", "attach", "annotations"}

func toV1(c map[string]any, note func(string, ...any)) error {
	for _, k := range []string{"include", "models"} {
		if _, ok := c[k]; ok {
			delete(c, k)
			note("top-level %s: dropped (docker-compose 1.29 does not know it)", k)
		}
	}
	for _, name := range sortedKeys(services(c)) {
		s, _ := services(c)[name].(map[string]any)
		for _, k := range v1Unknown {
			if _, ok := s[k]; ok {
				delete(s, k)
				note("service %s: %s dropped (docker-compose 1.29 does not know it)", name, k)
			}
		}
		if err := commonService(name, s, note); err != nil {
			return err
		}
		if deps, ok := s["depends_on"].(map[string]any); ok {
			s["depends_on"] = v1DependsOn(deps)
		}
	}
	stripSourceKeys(c, note, "docker-compose 1.29")
	return nil
}

// v3.8 service keys (docker/cli's config_schema_v3.8.json).
var swarmKeys = map[string]bool{
	"cap_add": true, "cap_drop": true, "cgroup_parent": true, "command": true, "configs": true,
	"container_name": true, "credential_spec": true, "depends_on": true, "deploy": true, "devices": true,
	"dns": true, "dns_search": true, "domainname": true, "entrypoint": true, "env_file": true,
	"environment": true, "expose": true, "external_links": true, "extra_hosts": true, "healthcheck": true,
	"hostname": true, "image": true, "init": true, "ipc": true, "isolation": true, "labels": true,
	"links": true, "logging": true, "mac_address": true, "network_mode": true, "networks": true,
	"pid": true, "ports": true, "privileged": true, "read_only": true, "restart": true, "secrets": true,
	"security_opt": true, "shm_size": true, "stdin_open": true, "stop_grace_period": true,
	"stop_signal": true, "sysctls": true, "tmpfs": true, "tty": true, "ulimits": true, "user": true,
	"userns_mode": true, "volumes": true, "working_dir": true,
}

func toSwarm(c map[string]any, note func(string, ...any)) error {
	for _, k := range sortedKeys(c) {
		switch {
		case k == "services" || k == "networks" || k == "volumes" || k == "configs" || k == "secrets" || strings.HasPrefix(k, "x-"):
		default:
			delete(c, k)
			note("top-level %s: dropped (not in the version 3.8 schema)", k)
		}
	}
	for _, name := range sortedKeys(services(c)) {
		s, _ := services(c)[name].(map[string]any)
		limits := map[string]any{}
		for _, pair := range [][2]string{{"mem_limit", "memory"}, {"cpus", "cpus"}} {
			if v, ok := s[pair[0]]; ok {
				limits[pair[1]] = fmt.Sprint(v)
				delete(s, pair[0])
			}
		}
		if len(limits) > 0 {
			dep, _ := s["deploy"].(map[string]any)
			if dep == nil {
				dep = map[string]any{}
				s["deploy"] = dep
			}
			res, _ := dep["resources"].(map[string]any)
			if res == nil {
				res = map[string]any{}
				dep["resources"] = res
			}
			if _, set := res["limits"]; !set {
				res["limits"] = limits
				note("service %s: mem_limit/cpus moved to deploy.resources.limits", name)
			}
		}
		for _, k := range sortedKeys(s) {
			if !swarmKeys[k] && !strings.HasPrefix(k, "x-") {
				delete(s, k)
				note("service %s: %s dropped (docker stack deploy does not support it)", name, k)
			}
		}
		if err := commonService(name, s, note); err != nil {
			return err
		}
		if deps, ok := s["depends_on"].(map[string]any); ok {
			s["depends_on"] = sortedKeys(deps)
		}
		if hc, ok := s["healthcheck"].(map[string]any); ok {
			delete(hc, "start_interval")
		}
		if dep, ok := s["deploy"].(map[string]any); ok {
			if r, ok := dep["replicas"]; ok {
				dep["replicas"] = intIfNumeric(r)
			}
		}
	}
	stripSourceKeys(c, note, "docker stack deploy")
	return nil
}

// commonService converts what both v1 and swarm need in short or older form.
func commonService(name string, s map[string]any, note func(string, ...any)) error {
	if ports, ok := s["ports"].([]any); ok {
		for i, p := range ports {
			if pm, ok := p.(map[string]any); ok {
				short, ok := shortPort(pm)
				if !ok {
					return fmt.Errorf("service %s: port %v cannot be written in the short syntax older tools need", name, pm)
				}
				ports[i] = short
			}
		}
	}
	if vols, ok := s["volumes"].([]any); ok {
		for i, v := range vols {
			if vm, ok := v.(map[string]any); ok {
				if short, ok := shortVolume(vm); ok {
					vols[i] = short
				} else {
					if b, ok := vm["bind"].(map[string]any); ok {
						delete(b, "create_host_path")
						delete(b, "selinux")
						if len(b) == 0 {
							delete(vm, "bind")
						}
					}
					if v, ok := vm["volume"].(map[string]any); ok {
						delete(v, "subpath")
						if len(v) == 0 {
							delete(vm, "volume")
						}
					}
				}
			}
		}
	}
	if ef, ok := s["env_file"].([]any); ok {
		for i, e := range ef {
			if em, ok := e.(map[string]any); ok {
				ef[i] = em["path"]
				if req, ok := em["required"].(bool); ok && !req {
					note("service %s: env_file %v is optional in the compose file but required by the target's compose", name, em["path"])
				}
			}
		}
	}
	if hc, ok := s["healthcheck"].(map[string]any); ok {
		delete(hc, "start_interval")
	}
	return nil
}

// shortPort writes a long-syntax port as [ip:]published:target/proto.
func shortPort(p map[string]any) (string, bool) {
	target := fmt.Sprint(p["target"])
	if p["target"] == nil {
		return "", false
	}
	if mode, _ := p["mode"].(string); mode != "" && mode != "ingress" {
		return "", false
	}
	delete(p, "name")
	s := target
	if pub := p["published"]; pub != nil && fmt.Sprint(pub) != "" {
		s = fmt.Sprint(pub) + ":" + target
		if ip, _ := p["host_ip"].(string); ip != "" {
			if strings.Contains(ip, ":") {
				ip = "[" + ip + "]"
			}
			s = ip + ":" + s
		}
	}
	if proto, _ := p["protocol"].(string); proto != "" && proto != "tcp" {
		s += "/" + proto
	}
	return s, true
}

// shortVolume writes a bind or volume mount with no options beyond
// read_only as source:target[:ro].
func shortVolume(v map[string]any) (string, bool) {
	typ, _ := v["type"].(string)
	src, _ := v["source"].(string)
	target, _ := v["target"].(string)
	if (typ != "bind" && typ != "volume") || target == "" {
		return "", false
	}
	for k, val := range v {
		switch k {
		case "type", "source", "target", "read_only":
		case "bind":
			b, _ := val.(map[string]any)
			for bk := range b {
				if bk != "create_host_path" {
					return "", false
				}
			}
		case "volume":
			vv, _ := val.(map[string]any)
			if len(vv) > 0 {
				return "", false
			}
		default:
			return "", false
		}
	}
	if src == "" {
		if typ == "bind" {
			return "", false
		}
		return target, true // anonymous volume
	}
	if typ == "bind" && !strings.HasPrefix(src, ".") && !strings.HasPrefix(src, "/") && !strings.HasPrefix(src, "~") && !strings.HasPrefix(src, "$") {
		src = "./" + src // without ./ the short syntax means a named volume
	}
	s := src + ":" + target
	if ro, _ := v["read_only"].(bool); ro {
		s += ":ro"
	}
	return s, true
}

func v1DependsOn(deps map[string]any) any {
	allStarted := true
	out := map[string]any{}
	for d, spec := range deps {
		cond := "service_started"
		if sm, ok := spec.(map[string]any); ok {
			if c, ok := sm["condition"].(string); ok && c != "" {
				cond = c
			}
		}
		if cond != "service_started" {
			allStarted = false
		}
		out[d] = map[string]any{"condition": cond}
	}
	if allStarted {
		names := make([]string, 0, len(deps))
		for d := range deps {
			names = append(names, d)
		}
		sort.Strings(names)
		return names
	}
	return out
}

// stripSourceKeys drops configs/secrets sources older tools cannot read
// (environment:, content:) and fails if a definition is left without a source.
func stripSourceKeys(c map[string]any, note func(string, ...any), tool string) {
	for _, top := range []string{"configs", "secrets"} {
		defs, _ := c[top].(map[string]any)
		for _, name := range sortedKeys(defs) {
			d, _ := defs[name].(map[string]any)
			for _, k := range []string{"environment", "content"} {
				if _, ok := d[k]; ok {
					note("%s.%s: %s: source is not supported by %s", top, name, k, tool)
				}
			}
		}
	}
}

func intIfNumeric(v any) any {
	if s, ok := v.(string); ok {
		if n, err := strconv.Atoi(s); err == nil {
			return n
		}
	}
	return v
}
