// Rolling's plan: which services change and how, computed from the compose
// config of each release (pure: unit-tested without a server).

package deploy

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/deploy/remote"
)

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
	return mapStrings(v, func(s string) string {
		if s == relDir {
			return releaseMark
		}
		return strings.ReplaceAll(s, relDir+"/", releaseMark+"/")
	})
}

// mapStrings replaces, in place, every string in a JSON-like value by f's.
func mapStrings(v any, f func(string) string) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			v[k] = mapStrings(x, f)
		}
		return v
	case []any:
		for i, x := range v {
			v[i] = mapStrings(x, f)
		}
		return v
	case string:
		return f(v)
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
			if v == releaseMark || strings.HasPrefix(v, releaseMark+":") {
				out = appendOnce(out, ".") // the whole release directory is mounted
			}
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

// sameFiles compares the files at or under p in two releases; p "." is
// the whole release directory but for the files slipway writes per release.
func sameFiles(a, b map[string]string, p string) bool {
	pick := func(m map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range m {
			if p == "." && k != "release.json" && k != "compose.yaml" || k == p || strings.HasPrefix(k, p+"/") {
				out[k] = v
			}
		}
		return out
	}
	return reflect.DeepEqual(pick(a), pick(b))
}
