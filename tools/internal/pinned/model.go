// Package pinned writes the deployable compose file: the user's merged compose
// model with every image, built or not, pinned to its registry digest, so a
// deploy or rollback runs exactly the bytes that were tested. ${VAR}
// references stay for the server's .env and relative paths stay relative
// (the files they name travel with the release, see ReferencedFiles).
//
// The model is the raw merged YAML tree (map[string]any), not compose-go's
// typed Project: a typed project cannot hold `ports: ["${PORT}:80"]` or
// `mem_limit: ${MEM}` uninterpolated, and the pinned file must keep them.
package pinned

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/distribution/reference"
	"go.yaml.in/yaml/v4"

	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/manifest"
)

// Model is a compose file as a YAML tree.
type Model = map[string]any

// LoadOptions name the compose project as the manifest records it; paths
// are absolute.
type LoadOptions struct {
	ProjectName string
	Files       []string
	ProjectDir  string // "" means the first file's directory
	Profiles    []string
}

// LoadModel merges the compose files as docker compose does (include,
// extends, overrides), without interpolation and without resolving paths,
// keeps only the services active under the profiles (and drops their
// profiles: key, so the server runs them without --profile), and makes
// absolute paths inside the project directory relative again (compose-go
// resolves included files' paths).
func LoadModel(ctx context.Context, o LoadOptions) (Model, error) {
	if len(o.Files) == 0 {
		return nil, exit.Usagef("no compose files to pin: the manifest lists none")
	}
	dir := o.ProjectDir
	if dir == "" {
		dir = filepath.Dir(o.Files[0])
	}
	var files []types.ConfigFile
	for _, f := range o.Files {
		files = append(files, types.ConfigFile{Filename: f})
	}
	details := types.ConfigDetails{WorkingDir: dir, ConfigFiles: files, Environment: types.Mapping{}}
	m, err := loader.LoadModelWithContext(ctx, details, func(lo *loader.Options) {
		lo.SkipInterpolation = true
		lo.ResolvePaths = false
		lo.SkipNormalization = true
		lo.SkipDefaultValues = true
		lo.SkipResolveEnvironment = true
		lo.SetProjectName(o.ProjectName, true)
	})
	if err != nil {
		return nil, exit.Usagef("loading %s for the pinned compose file: %v", strings.Join(o.Files, ", "), err)
	}
	delete(m, "name")
	delete(m, "version")
	if err := applyProfiles(m, o.Profiles); err != nil {
		return nil, err
	}
	relativize(m, dir)
	settleOptionalEnvFiles(m, dir)
	shortVariableSources(m)
	m["name"] = o.ProjectName
	return m, nil
}

// ReadFile reads a pinned compose file written by Write.
func ReadFile(path string) (Model, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading pinned compose file: %w", err)
	}
	var m Model
	if err := yaml.Unmarshal(data, &m); err != nil {
		return nil, exit.Usagef("pinned compose file %s is not valid YAML: %v", path, err)
	}
	if _, ok := m["services"].(map[string]any); !ok {
		return nil, exit.Usagef("pinned compose file %s has no services", path)
	}
	return m, nil
}

func services(m Model) map[string]any {
	s, _ := m["services"].(map[string]any)
	return s
}

func applyProfiles(m Model, active []string) error {
	on := map[string]bool{}
	for _, p := range active {
		on[p] = true
	}
	svcs := services(m)
	for name, v := range svcs {
		s, _ := v.(map[string]any)
		profs, _ := s["profiles"].([]any)
		if len(profs) == 0 {
			continue
		}
		enabled := on["*"]
		for _, p := range profs {
			if ps, _ := p.(string); on[ps] {
				enabled = true
			}
		}
		if enabled {
			delete(s, "profiles")
		} else {
			delete(svcs, name)
		}
	}
	for name, v := range svcs {
		s, _ := v.(map[string]any)
		deps, _ := s["depends_on"].(map[string]any)
		for d, spec := range deps {
			if _, ok := svcs[d]; ok {
				continue
			}
			if req, _ := spec.(map[string]any)["required"].(bool); !req {
				delete(deps, d)
				continue
			}
			return exit.Usagef("service %s depends on %s, which is not active with profiles %v", name, d, active)
		}
	}
	return nil
}

// shortVariableSources writes a mount whose source is a variable
// (${MEDIA_PATH}:/media, ${LOG_DIR:-./logs}:/logs) back in short syntax.
// Without interpolation the loader cannot tell a path from a volume name and
// makes it type: volume; Compose v2 would then refuse an undefined named
// volume. In short syntax the server's compose decides after interpolating,
// as it does for the user's own file.
func shortVariableSources(m Model) {
	for _, v := range services(m) {
		s, _ := v.(map[string]any)
		vols, _ := s["volumes"].([]any)
		for i, vol := range vols {
			vm, ok := vol.(map[string]any)
			if !ok {
				continue
			}
			src, _ := vm["source"].(string)
			if t, _ := vm["type"].(string); t != "volume" || !strings.Contains(src, "$") {
				continue
			}
			if short, ok := shortVolume(vm); ok {
				vols[i] = short
			}
		}
	}
}

// settleOptionalEnvFiles decides `required: false` env files now: one that
// exists travels with the release and becomes required; one that does not is
// dropped. Compose v1 and docker stack deploy know no optional env files.
func settleOptionalEnvFiles(m Model, dir string) {
	for _, v := range services(m) {
		s, _ := v.(map[string]any)
		list, ok := s["env_file"].([]any)
		if !ok {
			continue
		}
		kept := list[:0]
		for _, e := range list {
			em, ok := e.(map[string]any)
			if req, isBool := em["required"].(bool); ok && isBool && !req {
				p, _ := em["path"].(string)
				full := p
				if !filepath.IsAbs(full) {
					full = filepath.Join(dir, p)
				}
				if _, err := os.Stat(full); err != nil {
					continue
				}
				em["required"] = true
			}
			kept = append(kept, e)
		}
		if len(kept) == 0 {
			delete(s, "env_file")
		} else {
			s["env_file"] = kept
		}
	}
}

// relativize rewrites absolute paths that lie inside dir as ./relative.
func relativize(m Model, dir string) {
	rel := func(p string) string {
		if !filepath.IsAbs(p) {
			return p
		}
		r, err := filepath.Rel(dir, p)
		if err != nil || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) {
			return p
		}
		if r == "." {
			return "."
		}
		return "./" + filepath.ToSlash(r)
	}
	forEachPath(m, func(_ string, kind pathKind, get func() string, set func(string)) {
		set(rel(get()))
	})
}

type pathKind int

const (
	kindBind pathKind = iota
	kindEnvFile
	kindLabelFile
	kindConfigFile
	kindSecretFile
)

// forEachPath visits every host path the model names: bind-mount sources,
// env_file and label_file entries, configs/secrets file:. where says which.
func forEachPath(m Model, fn func(where string, kind pathKind, get func() string, set func(string))) {
	names := sortedKeys(services(m))
	for _, name := range names {
		s, _ := services(m)[name].(map[string]any)
		vols, _ := s["volumes"].([]any)
		for i, v := range vols {
			switch vol := v.(type) {
			case map[string]any:
				if t, _ := vol["type"].(string); t == "bind" {
					if src, ok := vol["source"].(string); ok {
						fn(fmt.Sprintf("service %s volume %s", name, src), kindBind,
							func() string { return src }, func(n string) { vol["source"] = n })
					}
				}
			case string:
				src, rest, ok := strings.Cut(vol, ":")
				if ok && (strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") || strings.HasPrefix(src, "~")) {
					fn(fmt.Sprintf("service %s volume %s", name, src), kindBind,
						func() string { return src }, func(n string) { vols[i] = n + ":" + rest })
				}
			}
		}
		switch ef := s["env_file"].(type) {
		case string:
			fn(fmt.Sprintf("service %s env_file %s", name, ef), kindEnvFile,
				func() string { return ef }, func(n string) { s["env_file"] = n })
		case []any:
			for i, e := range ef {
				switch x := e.(type) {
				case string:
					fn(fmt.Sprintf("service %s env_file %s", name, x), kindEnvFile,
						func() string { return x }, func(n string) { ef[i] = n })
				case map[string]any:
					if p, ok := x["path"].(string); ok {
						fn(fmt.Sprintf("service %s env_file %s", name, p), kindEnvFile,
							func() string { return p }, func(n string) { x["path"] = n })
					}
				}
			}
		}
		if lf, ok := s["label_file"].([]any); ok {
			for i, e := range lf {
				if p, ok := e.(string); ok {
					fn(fmt.Sprintf("service %s label_file %s", name, p), kindLabelFile,
						func() string { return p }, func(n string) { lf[i] = n })
				}
			}
		}
	}
	for _, top := range []string{"configs", "secrets"} {
		defs, _ := m[top].(map[string]any)
		kind := kindConfigFile
		if top == "secrets" {
			kind = kindSecretFile
		}
		for _, name := range sortedKeys(defs) {
			d, _ := defs[name].(map[string]any)
			if f, ok := d["file"].(string); ok {
				fn(fmt.Sprintf("%s.%s.file %s", top, name, f), kind,
					func() string { return f }, func(n string) { d["file"] = n })
			}
		}
	}
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// IncompleteError says the release does not cover every service with a
// build: section (build --service), so no deployable file can be pinned.
type IncompleteError struct{ Services []string }

func (e *IncompleteError) Error() string {
	return fmt.Sprintf("services %s have a build: section but are not in this release (built with --service?); "+
		"a deployable compose file needs every service built and pushed", strings.Join(e.Services, ", "))
}

// Resolver returns the registry digest (sha256:...) an image reference
// points to now.
type Resolver func(ctx context.Context, ref string) (string, error)

// Pin replaces each built service's build: with image: <repo>@<digest> from
// the manifest, and pins every other service's image through resolve.
// interpolated gives, for a service whose image: holds ${VAR}, the
// interpolated reference (those must be resolved on the agent to be pinned).
// It returns the images slipway did not build, with their digests.
func Pin(ctx context.Context, m Model, man *manifest.Manifest, resolve Resolver, interpolated func(service string) (string, error)) (map[string]manifest.Service, error) {
	external := map[string]manifest.Service{}
	svcs := services(m)
	if len(svcs) == 0 {
		return nil, exit.Usagef("the compose model has no services")
	}
	var unbuilt []string
	for _, name := range sortedKeys(svcs) {
		s, _ := svcs[name].(map[string]any)
		if _, built := man.Services[name]; !built && s != nil && s["build"] != nil {
			unbuilt = append(unbuilt, name)
		}
	}
	if len(unbuilt) > 0 {
		return nil, &IncompleteError{Services: unbuilt}
	}
	for _, name := range sortedKeys(svcs) {
		s, _ := svcs[name].(map[string]any)
		if s == nil {
			continue
		}
		delete(s, "develop") // watch mode: meaningless on a server
		if built, ok := man.Services[name]; ok {
			if built.Digest == "" {
				return nil, fmt.Errorf("service %s has no digest in the manifest: push it first", name)
			}
			s["image"] = built.Image + "@" + built.Digest
			delete(s, "build")
			if pp, _ := s["pull_policy"].(string); pp == "build" || pp == "never" {
				delete(s, "pull_policy")
			}
			continue
		}
		img, _ := s["image"].(string)
		if img == "" {
			return nil, exit.Usagef("service %s has neither image: nor build:", name)
		}
		ref := img
		if strings.Contains(img, "$") {
			r, err := interpolated(name)
			if err != nil {
				return nil, fmt.Errorf("service %s: interpolating image %q: %w", name, img, err)
			}
			ref = r
		}
		named, err := reference.ParseNormalizedNamed(ref)
		if err != nil {
			return nil, exit.Usagef("service %s: image %q: %v", name, ref, err)
		}
		repo := reference.FamiliarName(named)
		if reference.Domain(named) != "docker.io" {
			repo = named.Name()
		}
		ext := manifest.Service{Image: repo}
		if t, ok := named.(reference.Tagged); ok {
			ext.Tags = []string{t.Tag()}
		}
		if c, ok := named.(reference.Canonical); ok {
			ext.Digest = c.Digest().String()
		} else {
			d, err := resolve(ctx, reference.TagNameOnly(named).String())
			if err != nil {
				return nil, fmt.Errorf("service %s: resolving image %s to a digest: %w", name, ref, err)
			}
			ext.Digest = d
		}
		s["image"] = repo + "@" + ext.Digest
		external[name] = ext
	}
	return external, nil
}
