package testrun

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/slipway-dev/slipway/tools/internal/exit"
)

// extension is the service-level extension slipway reads:
//
//	x-slipway:
//	  test: true                 # this service is a test service
//	  results: [/out/junit.xml]  # paths copied out after the run
const extension = "x-slipway"

// findFiles resolves -f against dir, or discovers the default test file.
func findFiles(dir string, files []string) ([]string, error) {
	if len(files) == 0 {
		for _, name := range DefaultFiles {
			p := filepath.Join(dir, name)
			if st, err := os.Stat(p); err == nil && !st.IsDir() {
				return []string{p}, nil
			}
		}
		return nil, exit.Usagef("no test compose file: looked for %s in %s; pass -f FILE",
			strings.Join(DefaultFiles, ", "), dir)
	}
	out := make([]string, 0, len(files))
	for _, f := range files {
		p := f
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		st, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, exit.Usagef("test compose file %s (-f) not found in %s", f, dir)
		}
		if err != nil {
			return nil, exit.Usagef("test compose file %s (-f): %v", f, err)
		}
		if st.IsDir() {
			return nil, exit.Usagef("test compose file %s (-f) is a directory; pass the file", f)
		}
		out = append(out, p)
	}
	return out, nil
}

// loadProject loads the test stack as Compose would, under the run's name.
func loadProject(ctx context.Context, files []string, name string, environ []string) (*types.Project, error) {
	po, err := cli.NewProjectOptions(files,
		cli.WithName(name),
		cli.WithEnv(environ),
		cli.WithDotEnv,
	)
	if err != nil {
		return nil, exit.Usagef("test compose files %s: %v", strings.Join(files, ", "), err)
	}
	p, err := po.LoadProject(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, exit.Usagef("loading test compose files %s: %v", strings.Join(files, ", "), err)
	}
	return p, nil
}

// settings is a service's x-slipway extension.
type settings struct {
	Test    bool
	Results []string
}

func serviceSettings(s types.ServiceConfig) (settings, error) {
	var out settings
	raw, ok := s.Extensions[extension]
	if !ok || raw == nil {
		return out, nil
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return out, exit.Usagef("service %s: %s must be a mapping (test: true, results: [PATH...]), not %T", s.Name, extension, raw)
	}
	for k, v := range m {
		switch k {
		case "test":
			b, ok := v.(bool)
			if !ok {
				return out, exit.Usagef("service %s: %s.test must be true or false, not %v", s.Name, extension, v)
			}
			out.Test = b
		case "results":
			switch r := v.(type) {
			case string:
				out.Results = []string{r}
			case []any:
				for _, e := range r {
					p, ok := e.(string)
					if !ok || p == "" {
						return out, exit.Usagef("service %s: %s.results must list paths, found %v", s.Name, extension, e)
					}
					out.Results = append(out.Results, p)
				}
			default:
				return out, exit.Usagef("service %s: %s.results must be a path or a list of paths, not %v", s.Name, extension, v)
			}
			for _, p := range out.Results {
				if !strings.HasPrefix(p, "/") {
					return out, exit.Usagef("service %s: %s.results path %q must be absolute (a path inside the container)", s.Name, extension, p)
				}
			}
		default:
			return out, exit.Usagef("service %s: unknown key %s.%s (known: test, results)", s.Name, extension, k)
		}
	}
	return out, nil
}

// SelectTests picks the test services: the --service names when given; else
// the services marked x-slipway.test; else those with x-slipway.results; else
// the services no other service depends on.
func SelectTests(p *types.Project, want []string) ([]string, error) {
	if len(want) > 0 {
		var out []string
		seen := map[string]bool{}
		for _, n := range want {
			if _, err := p.GetService(n); err != nil {
				if _, derr := p.GetDisabledService(n); derr != nil {
					return nil, exit.Usagef("--service %s: no such service in the test stack (services: %s)",
						n, strings.Join(allNames(p), ", "))
				}
			}
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
		return out, nil
	}
	var marked, withResults []string
	dependedOn := map[string]bool{}
	for name, s := range p.Services {
		st, err := serviceSettings(s)
		if err != nil {
			return nil, err
		}
		if st.Test {
			marked = append(marked, name)
		}
		if len(st.Results) > 0 {
			withResults = append(withResults, name)
		}
		for dep := range s.DependsOn {
			dependedOn[dep] = true
		}
	}
	var sinks []string
	for name := range p.Services {
		if !dependedOn[name] {
			sinks = append(sinks, name)
		}
	}
	for _, set := range [][]string{marked, withResults, sinks} {
		if len(set) > 0 {
			sort.Strings(set)
			return set, nil
		}
	}
	return nil, exit.Usagef("no test service in %s: the file has no enabled service; add one, or name it with --service",
		strings.Join(p.ComposeFiles, ", "))
}

func allNames(p *types.Project) []string {
	names := append(p.ServiceNames(), p.DisabledServiceNames()...)
	sort.Strings(names)
	return names
}

// closure returns the tests and everything they depend on, transitively.
func closure(p *types.Project, tests []string) ([]string, error) {
	seen := map[string]bool{}
	var visit func(name, from string) error
	visit = func(name, from string) error {
		if seen[name] {
			return nil
		}
		s, err := p.GetService(name)
		if err != nil {
			if from != "" {
				return exit.Usagef("service %s depends on %s, which is not an enabled service of the test stack", from, name)
			}
			return exit.Usagef("service %s is not enabled in the test stack", name)
		}
		seen[name] = true
		for dep, d := range s.DependsOn {
			if _, err := p.GetService(dep); err != nil && !d.Required {
				continue // optional dependency that is not there
			}
			if err := visit(dep, name); err != nil {
				return err
			}
		}
		return nil
	}
	for _, t := range tests {
		if err := visit(t, ""); err != nil {
			return nil, err
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

// resultsPaths combines --results-path flags with x-slipway.results: a flag
// without SERVICE applies to every test service; flags for a service replace
// its x-slipway.results.
func resultsPaths(p *types.Project, tests []string, flags []string) (map[string][]string, error) {
	out := map[string][]string{}
	fromFlags := map[string][]string{}
	for _, f := range flags {
		svc, path := "", f
		if i := strings.Index(f, ":"); i >= 0 && !strings.HasPrefix(f, "/") {
			svc, path = f[:i], f[i+1:]
		}
		if path == "" || !strings.HasPrefix(path, "/") {
			return nil, exit.Usagef("--results-path %q: want [SERVICE:]PATH with an absolute PATH inside the container, e.g. tests:/app/test-results", f)
		}
		if svc == "" {
			for _, t := range tests {
				fromFlags[t] = append(fromFlags[t], path)
			}
			continue
		}
		if _, err := p.GetService(svc); err != nil {
			return nil, exit.Usagef("--results-path %q: no service %s in the test stack (services: %s)", f, svc, strings.Join(allNames(p), ", "))
		}
		fromFlags[svc] = append(fromFlags[svc], path)
	}
	for name, s := range p.Services {
		st, err := serviceSettings(s)
		if err != nil {
			return nil, err
		}
		if paths, ok := fromFlags[name]; ok {
			out[name] = dedupe(paths)
		} else if len(st.Results) > 0 {
			out[name] = dedupe(st.Results)
		}
	}
	return out, nil
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

var (
	badNameChars = regexp.MustCompile(`[^a-z0-9_-]+`)
	dashes       = regexp.MustCompile(`-{2,}`)
)

// sanitize makes s a valid compose project name part: lowercase letters,
// digits, '-' and '_', starting with a letter or digit.
func sanitize(s string) string {
	s = badNameChars.ReplaceAllString(strings.ToLower(s), "-")
	s = dashes.ReplaceAllString(s, "-")
	return strings.Trim(s, "-_")
}

// RunName is the compose project name of one run: <base>-test-<BUILD_TAG>-<random>.
// The random part is always there: parallel stages of one Jenkins build share
// BUILD_TAG, and two runs must never share a project.
func RunName(base, buildTag string) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return runName(base, buildTag, hex.EncodeToString(b))
}

func runName(base, buildTag, random string) string {
	base = sanitize(base)
	if base == "" {
		base = "slipway"
	}
	if len(base) > 24 {
		base = strings.TrimRight(base[:24], "-_")
	}
	name := base + "-test-"
	if tag := sanitize(buildTag); tag != "" {
		if len(tag) > 28 {
			// Keep the end: BUILD_TAG is jenkins-<job>-<number>, the number matters.
			tag = strings.TrimLeft(tag[len(tag)-28:], "-_")
		}
		name += tag + "-"
	}
	return name + random
}

// envName turns a service name into the suffix of SLIPWAY_IMAGE_<NAME>.
func envName(service string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(service) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

var imageVarRE = regexp.MustCompile(`\$\{?SLIPWAY_IMAGE_([A-Za-z0-9_]+)`)

// imageVarRefs returns the SLIPWAY_IMAGE_<NAME> variables the files use.
func imageVarRefs(files []string) (map[string]string, error) {
	refs := map[string]string{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", f, err)
		}
		for _, m := range imageVarRE.FindAllStringSubmatch(string(data), -1) {
			refs[m[1]] = f
		}
	}
	return refs, nil
}
