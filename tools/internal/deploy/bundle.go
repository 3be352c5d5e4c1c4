package deploy

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/slipway-dev/slipway/tools/internal/deploy/remote"
	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/manifest"
	"github.com/slipway-dev/slipway/tools/internal/pinned"
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
	checkout   bool          // the project directory (.) is mounted: files holds the tracked files under checkoutDir
	env        []byte        // --env-file contents (nil: none)
	images     []string      // every image reference the release runs, sorted
	registries []string      // registry hosts of images
	unpinned   []string      // image references without a digest (warned about)
	dynamic    bool          // an image reference uses ${VAR}: let compose pull

	mu    sync.Mutex
	notes map[remote.ComposeKind][]string // rendering notes, logged once per flavour
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
		if len(missing) == 0 {
			return nil, exit.Usagef("manifest %s: an image-only release whose images are not pinned yet: run 'slipway push' first (it pins them)", manifestPath)
		}
		return nil, exit.Usagef("manifest %s: services %s have no digest: the release was not pushed; run 'slipway push' first", manifestPath, strings.Join(missing, ", "))
	}
	if m.PinnedCompose == "" {
		return nil, exit.Usagef("manifest %s: pinnedCompose is empty: run 'slipway push', which writes the pinned compose file", manifestPath)
	}
	base := filepath.Dir(manifestPath)
	b := &bundle{m: m, pinnedPath: resolve(base, m.PinnedCompose), notes: map[remote.ComposeKind][]string{}}
	// Relative paths in the pinned file are relative to the compose project
	// directory, as push resolved them (pinned.LoadFrom).
	lo := pinned.LoadFrom(m, manifestPath)
	switch {
	case lo.ProjectDir != "":
		b.projectDir = lo.ProjectDir
	case len(lo.Files) > 0:
		b.projectDir = filepath.Dir(lo.Files[0])
	default:
		b.projectDir = filepath.Dir(b.pinnedPath)
	}
	if _, err := os.Stat(b.pinnedPath); errors.Is(err, fs.ErrNotExist) {
		return nil, exit.Usagef("pinned compose file %s (manifest %s, pinnedCompose) not found: run 'slipway push' again, or archive it with the manifest", b.pinnedPath, manifestPath)
	}
	model, err := pinned.ReadFile(b.pinnedPath)
	if err != nil {
		return nil, err
	}
	b.model = model
	if err := b.collectImages(); err != nil {
		return nil, err
	}
	refs, err := pinned.ReferencedFiles(b.model, b.projectDir)
	if err != nil {
		return nil, exit.With(exit.Usage, fmt.Errorf("pinned compose file %s: %w", b.pinnedPath, err))
	}
	for _, r := range refs {
		if err := b.addReferenced(r, log); err != nil {
			return nil, err
		}
	}
	if envFile != "" {
		if st, err := os.Stat(envFile); err == nil && st.Size() > maxEnvFileSize {
			return nil, exit.Usagef("--env-file %s is %d bytes, over slipway's limit of %d bytes (1 MiB); "+
				"an env file holds variables, not data: ship large values as files the service mounts", envFile, st.Size(), maxEnvFileSize)
		}
		data, err := os.ReadFile(envFile)
		if err != nil {
			return nil, exit.Usagef("--env-file %s: %v", envFile, err)
		}
		b.env = data
	}
	return b, nil
}

// maxEnvFileSize bounds the runtime .env (--env-file) written on every
// server; the same limit as the compose loader's (plan.MaxEnvFileSize).
const maxEnvFileSize = 1 << 20

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

// envHosts are the registries slipway pushed the built images to (for an
// image-only release: its images' registries outside Docker Hub): the only
// ones SLIPWAY_REGISTRY_USER/PASSWORD are sent to.
func (b *bundle) envHosts() []string {
	var hosts []string
	for _, img := range b.m.CredentialImages() {
		if h, err := regauth.HostOf(img); err == nil {
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
	if rel == "." {
		return b.addCheckout(log)
	}
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

// renderCompose renders the model for the server's Compose (pinned.Render:
// v1 gets no top-level name:, short syntax, no post-1.29 keys). What had to
// be dropped is logged once per flavour.
func (b *bundle) renderCompose(model map[string]any, kind remote.ComposeKind, log *progress.Logger) ([]byte, error) {
	t := pinned.ComposeV2
	if kind == remote.ComposeV1 {
		t = pinned.ComposeV1
	}
	data, notes, err := pinned.RenderNotes(model, t)
	if err != nil {
		return nil, exit.With(exit.Usage, fmt.Errorf("rendering %s for Compose %s: %w", b.pinnedPath, kind, err))
	}
	b.mu.Lock()
	_, said := b.notes[kind]
	b.notes[kind] = notes
	b.mu.Unlock()
	if !said {
		for _, n := range notes {
			log.Printf("compose %s: %s", kind, n)
		}
	}
	return data, nil
}
