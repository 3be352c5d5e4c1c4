package pinned

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/slipway-dev/slipway/tools/internal/manifest"
	"github.com/slipway-dev/slipway/tools/internal/progress"
)

// DefaultPath is where push writes the pinned compose file.
const DefaultPath = "slipway-compose.pinned.yml"

// Options for Write.
type Options struct {
	Manifest     *manifest.Manifest // with a digest for every built service
	ManifestPath string             // the manifest's relative paths are taken from its directory
	Out          string             // "" means DefaultPath
	Resolve      Resolver           // digest of an image slipway did not build
	// Interpolated returns the interpolated image reference of a service whose
	// image: holds ${VAR}; called only for those.
	Interpolated func(ctx context.Context, service string) (string, error)
	Log          *progress.Logger
}

// Write loads the manifest's compose model, pins every image, checks that
// every file it references can travel with the release, writes the file
// (rendered for Compose v2; deploy re-renders it for the server with Render)
// and records External and PinnedCompose in the manifest (the caller writes
// the manifest).
func Write(ctx context.Context, o Options) error {
	man := o.Manifest
	if o.Out == "" {
		o.Out = DefaultPath
	}
	if o.Log == nil {
		o.Log = progress.Discard()
	}
	lo := LoadFrom(man, o.ManifestPath)
	m, err := LoadModel(ctx, lo)
	if err != nil {
		return err
	}
	interp := func(svc string) (string, error) {
		if o.Interpolated == nil {
			return "", fmt.Errorf("no interpolated project available")
		}
		return o.Interpolated(ctx, svc)
	}
	ext, err := Pin(ctx, m, man, o.Resolve, interp)
	if err != nil {
		return err
	}
	dir := lo.ProjectDir
	if dir == "" {
		dir = filepath.Dir(lo.Files[0])
	}
	files, err := ReferencedFiles(m, dir)
	if err != nil {
		return fmt.Errorf("the pinned compose file references files that cannot travel with the release: %w", err)
	}
	data, err := Render(m, ComposeV2)
	if err != nil {
		return err
	}
	header := fmt.Sprintf("# Pinned by slipway: project %s, commit %s.\n"+
		"# Every image is pinned to its registry digest. ${VAR} references resolve from the\n"+
		"# release's .env on the server; relative paths are relative to the project directory.\n", man.Project, man.Commit)
	if len(files) > 0 {
		header += "# Files that travel with it: " + strings.Join(files, ", ") + "\n"
	}
	if err := manifest.WriteFileAtomic(o.Out, append([]byte(header), data...), 0o644); err != nil {
		return err
	}
	man.External = ext
	if len(ext) == 0 {
		man.External = nil
	}
	man.PinnedCompose = relTo(filepath.Dir(o.ManifestPath), o.Out)
	o.Log.Printf("pinned compose file written to %s (%d built, %d other image(s) pinned)", o.Out, len(man.Services), len(ext))
	return nil
}

// LoadFrom turns the manifest's compose settings into LoadOptions with
// absolute paths, relative ones taken from the manifest's directory.
func LoadFrom(man *manifest.Manifest, manifestPath string) LoadOptions {
	base, _ := filepath.Abs(filepath.Dir(manifestPath))
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(base, p)
	}
	lo := LoadOptions{ProjectName: man.Project, ProjectDir: abs(man.ProjectDir), Profiles: man.Profiles}
	for _, f := range man.ComposeFiles {
		lo.Files = append(lo.Files, abs(f))
	}
	return lo
}

// relTo returns p relative to dir when p lies below dir, else absolute.
func relTo(dir, p string) string {
	ad, err1 := filepath.Abs(dir)
	ap, err2 := filepath.Abs(p)
	if err1 != nil || err2 != nil {
		return p
	}
	if r, err := filepath.Rel(ad, ap); err == nil && r != ".." && !strings.HasPrefix(r, ".."+string(filepath.Separator)) {
		return r
	}
	return ap
}
