package plan

import (
	"fmt"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
)

// buildDeps returns, for a service, the built services it needs first:
// depends_on entries and additional_contexts of the form service:NAME, limited
// to names in built. Sorted, without duplicates.
func buildDeps(svc types.ServiceConfig, built map[string]bool) []string {
	set := map[string]bool{}
	for name := range svc.DependsOn {
		if built[name] && name != svc.Name {
			set[name] = true
		}
	}
	for _, name := range contextServices(svc) {
		if built[name] {
			set[name] = true
		}
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// contextServices returns the services named by additional_contexts
// "service:NAME": images that must exist before this one can build.
func contextServices(svc types.ServiceConfig) []string {
	if svc.Build == nil {
		return nil
	}
	var out []string
	for _, v := range svc.Build.AdditionalContexts {
		if name, ok := strings.CutPrefix(v, types.ServicePrefix); ok && name != "" {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// orderBuilds sorts builds so every dependency comes first; among builds that
// are ready together, by name (a stable, readable order). A cycle is an error
// naming it.
func orderBuilds(builds []Build) ([]Build, error) {
	byName := make(map[string]Build, len(builds))
	indeg := make(map[string]int, len(builds))
	dependents := map[string][]string{}
	for _, b := range builds {
		byName[b.Service] = b
		indeg[b.Service] = len(b.DependsOn)
		for _, d := range b.DependsOn {
			dependents[d] = append(dependents[d], b.Service)
		}
	}
	var ready []string
	for _, b := range builds {
		if indeg[b.Service] == 0 {
			ready = append(ready, b.Service)
		}
	}
	sort.Strings(ready)
	out := make([]Build, 0, len(builds))
	for len(ready) > 0 {
		n := ready[0]
		ready = ready[1:]
		out = append(out, byName[n])
		var next []string
		for _, m := range dependents[n] {
			indeg[m]--
			if indeg[m] == 0 {
				next = append(next, m)
			}
		}
		if len(next) > 0 {
			ready = append(ready, next...)
			sort.Strings(ready)
		}
	}
	if len(out) == len(builds) {
		return out, nil
	}
	return nil, fmt.Errorf("built services depend on each other in a cycle: %s; "+
		"remove one depends_on or additional_contexts service: entry", findCycle(byName, indeg))
}

// findCycle returns one cycle among the services left with dependencies.
func findCycle(byName map[string]Build, indeg map[string]int) string {
	var left []string
	for n, d := range indeg {
		if d > 0 {
			left = append(left, n)
		}
	}
	sort.Strings(left)
	if len(left) == 0 {
		return "(unknown)"
	}
	// Walk dependencies that are still blocked until a name repeats.
	pos := map[string]int{}
	var path []string
	n := left[0]
	for {
		if i, ok := pos[n]; ok {
			return strings.Join(append(path[i:], n), " -> ")
		}
		pos[n] = len(path)
		path = append(path, n)
		next := ""
		for _, d := range byName[n].DependsOn {
			if indeg[d] > 0 {
				next = d
				break
			}
		}
		if next == "" {
			return strings.Join(left, ", ")
		}
		n = next
	}
}
