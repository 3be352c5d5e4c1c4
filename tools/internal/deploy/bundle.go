package deploy

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"go.yaml.in/yaml/v4"

	"github.com/slipway-dev/slipway/tools/internal/deploy/remote"
	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/manifest"
	"github.com/slipway-dev/slipway/tools/internal/progress"
	"github.com/slipway-dev/slipway/tools/internal/regauth"
)

// bundle is what every host receives: the pinned compose model, the files it
// references, the runtime .env, and the image list for the pull. It is built
// once on the agent; only the compose file's rendering depends on the host.
type bundle struct {
	m          *manifest.Manifest
	pinnedPath string
	projectDir string
	model      map[string]any
	files      []remote.File // referenced files, relative paths kept
	env        []byte        // --env-file contents (nil: none)
	images     []string      // every image reference the release runs, sorted
	registries []string      // registry hosts of images
	unpinned   []string      // image references without a digest (warned about)
	dynamic    bool          // an image reference uses ${VAR}: let compose pull
}

// maxBundleFile bounds one referenced file: config files, not data.
const maxBundleFile = 64 << 20

// loadBundle reads the manifest's pinned compose file and what it references.
func loadBundle(manifestPath, envFile string, log *progress.Logger) (*bundle, error) {
	m, err := manifest.Read(manifestPath)
	if err != nil {
		return nil, err
	}
	if !m.Pushed() {
		var missing []string
		for _, n := range m.Names() {
			if m.Services[n].Digest == "" {
				missing = append(missing, n)
			}
		}
		return nil, exit.Usagef("manifest %s: services %s have no digest: the release was not pushed; run 'slipway push' first", manifestPath, strings.Join(missing, ", "))
	}
	if m.PinnedCompose == "" {
		return nil, exit.Usagef("manifest %s: pinnedCompose is empty: run 'slipway push', which writes the pinned compose file", manifestPath)
	}
	base := filepath.Dir(manifestPath)
	b := &bundle{m: m, pinnedPath: resolve(base, m.PinnedCompose)}
	b.projectDir = filepath.Dir(b.pinnedPath)
	if m.ProjectDir != "" {
		b.projectDir = resolve(base, m.ProjectDir)
	}
	data, err := os.ReadFile(b.pinnedPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, exit.Usagef("pinned compose file %s (manifest %s, pinnedCompose) not found: run 'slipway push' again, or archive it with the manifest", b.pinnedPath, manifestPath)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the pinned compose file: %w", err)
	}
	if err := yaml.Unmarshal(data, &b.model); err != nil {
		return nil, exit.Usagef("pinned compose file %s is not valid YAML: %v", b.pinnedPath, err)
	}
	if b.model == nil {
		return nil, exit.Usagef("pinned compose file %s is empty", b.pinnedPath)
	}
	if err := b.collectImages(); err != nil {
		return nil, err
	}
	refs, err := referencedFiles(b.model)
	if err != nil {
		return nil, exit.Usagef("pinned compose file %s: %v", b.pinnedPath, err)
	}
	for _, r := range refs {
		if err := b.addReferenced(r, log); err != nil {
			return nil, err
		}
	}
	if envFile != "" {
		data, err := os.ReadFile(envFile)
		if err != nil {
			return nil, exit.Usagef("--env-file %s: %v", envFile, err)
		}
		b.env = data
	}
	return b, nil
}

func resolve(base, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(base, p)
}

// collectImages lists every service's image and the registries to log in to.
func (b *bundle) collectImages() error {
	services, _ := b.model["services"].(map[string]any)
	if len(services) == 0 {
		return exit.Usagef("pinned compose file %s has no services", b.pinnedPath)
	}
	seen := map[string]bool{}
	hosts := map[string]bool{}
	for name, sv := range services {
		svc, _ := sv.(map[string]any)
		img, _ := svc["image"].(string)
		if img == "" {
			return exit.Usagef("pinned compose file %s: service %s has no image (a build: left in?): run 'slipway push' to write the pinned file", b.pinnedPath, name)
		}
		if strings.Contains(img, "$") {
			b.dynamic = true
			continue
		}
		if !strings.Contains(img, "@sha256:") {
			b.unpinned = append(b.unpinned, name+" ("+img+")")
		}
		if !seen[img] {
			seen[img] = true
			b.images = append(b.images, img)
		}
		h, err := regauth.HostOf(img)
		if err != nil {
			return exit.Usagef("pinned compose file %s: service %s: %v", b.pinnedPath, name, err)
		}
		hosts[h] = true
	}
	for _, s := range b.m.Services {
		if h, err := regauth.HostOf(s.Image); err == nil {
			hosts[h] = true
		}
	}
	sort.Strings(b.images)
	sort.Strings(b.unpinned)
	for h := range hosts {
		b.registries = append(b.registries, h)
	}
	sort.Strings(b.registries)
	return nil
}

// envHosts are the registries slipway pushed the built images to: the only
// ones SLIPWAY_REGISTRY_USER/PASSWORD are sent to.
func (b *bundle) envHosts() []string {
	var hosts []string
	for _, s := range b.m.Services {
		if h, err := regauth.HostOf(s.Image); err == nil {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

// pullImages is the list for remote.Pull: empty means "compose pull" (some
// image reference is only known after the server's interpolation).
func (b *bundle) pullImages() []string {
	if b.dynamic {
		return nil
	}
	return b.images
}

// addReferenced adds one referenced path (a file or a whole directory).
func (b *bundle) addReferenced(rel string, log *progress.Logger) error {
	abs := filepath.Join(b.projectDir, filepath.FromSlash(rel))
	st, err := os.Stat(abs)
	if errors.Is(err, fs.ErrNotExist) {
		log.Warnf("%s (referenced by the compose file) does not exist in %s: not uploaded; the server must provide it", rel, b.projectDir)
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", abs, err)
	}
	if !st.IsDir() {
		return b.addFile(rel, abs, st)
	}
	return filepath.WalkDir(abs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("reading %s: %w", p, err)
		}
		if d.IsDir() {
			return nil
		}
		st, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("reading %s: %w", p, err)
		}
		if !st.Mode().IsRegular() {
			log.Warnf("%s is not a regular file: not uploaded", p)
			return nil
		}
		r, _ := filepath.Rel(b.projectDir, p)
		return b.addFile(filepath.ToSlash(r), p, st)
	})
}

func (b *bundle) addFile(rel, abs string, st fs.FileInfo) error {
	for _, f := range b.files {
		if f.Path == rel {
			return nil
		}
	}
	if st.Size() > maxBundleFile {
		return exit.Usagef("%s is %d bytes: too big to travel with a release (limit %d); keep data out of bind mounts", abs, st.Size(), maxBundleFile)
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		return fmt.Errorf("reading %s: %w", abs, err)
	}
	mode := st.Mode().Perm() | 0o600 // the deploy user must read what it uploaded
	b.files = append(b.files, remote.File{Path: rel, Mode: mode, Data: data})
	return nil
}

// referencedFiles lists the relative host paths the model references:
// bind-mount sources, env_file, configs and secrets files. Absolute paths are
// the server's own and stay as they are; paths leaving the project directory
// cannot travel with the release.
func referencedFiles(model map[string]any) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	add := func(where, p string) error {
		if p == "" || strings.HasPrefix(p, "/") || strings.HasPrefix(p, "~") || strings.Contains(p, "$") {
			return nil
		}
		clean := path.Clean(filepath.ToSlash(p))
		if clean == "." {
			return fmt.Errorf("%s: %q is the whole project directory, which cannot travel with a release; mount a subdirectory", where, p)
		}
		if clean == ".." || strings.HasPrefix(clean, "../") {
			return fmt.Errorf("%s: %q lies outside the project directory and cannot travel with the release; move it inside or use an absolute path on the server", where, p)
		}
		if !seen[clean] {
			seen[clean] = true
			out = append(out, clean)
		}
		return nil
	}
	services, _ := model["services"].(map[string]any)
	names := sortedKeys(services)
	for _, name := range names {
		svc, _ := services[name].(map[string]any)
		vols, _ := svc["volumes"].([]any)
		for _, v := range vols {
			where := "services." + name + ".volumes"
			switch v := v.(type) {
			case string:
				src, _, ok := strings.Cut(v, ":")
				if ok && (strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") || strings.HasPrefix(src, "~")) {
					if err := add(where, src); err != nil {
						return nil, err
					}
				}
			case map[string]any:
				if t, _ := v["type"].(string); t == "bind" {
					src, _ := v["source"].(string)
					if err := add(where, src); err != nil {
						return nil, err
					}
				}
			}
		}
		where := "services." + name + ".env_file"
		switch e := svc["env_file"].(type) {
		case string:
			if err := add(where, e); err != nil {
				return nil, err
			}
		case []any:
			for _, x := range e {
				p, _ := x.(string)
				if m, ok := x.(map[string]any); ok {
					p, _ = m["path"].(string)
				}
				if err := add(where, p); err != nil {
					return nil, err
				}
			}
		}
	}
	for _, top := range []string{"configs", "secrets"} {
		items, _ := model[top].(map[string]any)
		for _, name := range sortedKeys(items) {
			it, _ := items[name].(map[string]any)
			if f, _ := it["file"].(string); f != "" {
				if err := add(top+"."+name+".file", f); err != nil {
					return nil, err
				}
			}
		}
	}
	return out, nil
}

func sortedKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// renderCompose writes the model for the server's Compose. v1 (1.29) rejects
// a top-level name: (the project name travels with -p anyway) and the
// depends_on "required" key.
func (b *bundle) renderCompose(kind remote.ComposeKind) ([]byte, error) {
	m := make(map[string]any, len(b.model))
	for k, v := range b.model {
		m[k] = v
	}
	if kind == remote.ComposeV1 {
		delete(m, "name")
		if services, ok := m["services"].(map[string]any); ok {
			ns := make(map[string]any, len(services))
			for name, sv := range services {
				svc, ok := sv.(map[string]any)
				if !ok {
					ns[name] = sv
					continue
				}
				deps, ok := svc["depends_on"].(map[string]any)
				if !ok {
					ns[name] = svc
					continue
				}
				c := make(map[string]any, len(svc))
				for k, v := range svc {
					c[k] = v
				}
				nd := make(map[string]any, len(deps))
				for dn, dv := range deps {
					if dm, ok := dv.(map[string]any); ok {
						x := make(map[string]any, len(dm))
						for k, v := range dm {
							if k != "required" && k != "restart" {
								x[k] = v
							}
						}
						nd[dn] = x
					} else {
						nd[dn] = dv
					}
				}
				c["depends_on"] = nd
				ns[name] = c
			}
			m["services"] = ns
		}
	} else if _, ok := m["name"]; !ok {
		m["name"] = b.m.Project
	}
	out, err := yaml.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("rendering the compose file: %w", err)
	}
	return out, nil
}
