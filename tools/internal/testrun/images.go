package testrun

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/slipway-dev/slipway/tools/internal/engine"
	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/manifest"
)

// imageSource says where a service's image comes from.
type imageSource struct {
	Service      string
	FromManifest string // the manifest service it runs, if any
	Ref          string // what the rendered file names: an image ID, name:tag or name@digest
	Built        string // for test-only builds: the run-local tag compose builds
	Original     string // the image the test file named, if any
}

// imageEnv returns SLIPWAY_IMAGE_<SERVICE>=<ref> for every manifest service,
// so a test file can name a built image as ${SLIPWAY_IMAGE_API}.
func imageEnv(m *manifest.Manifest) []string {
	if m == nil {
		return nil
	}
	var env []string
	for _, name := range m.Names() {
		env = append(env, "SLIPWAY_IMAGE_"+envName(name)+"="+m.Services[name].Ref())
	}
	return env
}

// checkImageVars fails when a test file uses SLIPWAY_IMAGE_<NAME> for a
// service the manifest does not have.
func checkImageVars(files []string, m *manifest.Manifest, manifestPath string) error {
	refs, err := imageVarRefs(files)
	if err != nil {
		return err
	}
	known := map[string]bool{}
	if m != nil {
		for name := range m.Services {
			known[envName(name)] = true
		}
	}
	var missing []string
	for v, f := range refs {
		if !known[v] {
			missing = append(missing, fmt.Sprintf("SLIPWAY_IMAGE_%s (in %s)", v, filepath.Base(f)))
		}
	}
	if len(missing) == 0 {
		return nil
	}
	sort.Strings(missing)
	if m == nil {
		return exit.Usagef("the test stack uses %s but no manifest was given: pass --manifest PATH", strings.Join(missing, ", "))
	}
	return exit.Usagef("manifest %s has no image for %s (it has: %s): build that service with 'slipway build' first",
		manifestPath, strings.Join(missing, ", "), strings.Join(m.Names(), ", "))
}

// repository strips a tag or digest from an image reference.
func repository(ref string) string {
	if i := strings.Index(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	return ref
}

// manifestBuilt returns the services the manifest's own compose files build,
// so a test file that builds one of them itself (instead of running the
// manifest's image) is caught. Best effort: unreadable files give nil.
func manifestBuilt(ctx context.Context, m *manifest.Manifest, manifestPath string) map[string]bool {
	if m == nil || len(m.ComposeFiles) == 0 {
		return nil
	}
	base := filepath.Dir(manifestPath)
	if m.ProjectDir != "" {
		if filepath.IsAbs(m.ProjectDir) {
			base = m.ProjectDir
		} else {
			base = filepath.Join(base, m.ProjectDir)
		}
	}
	var files []string
	for _, f := range m.ComposeFiles {
		if !filepath.IsAbs(f) {
			f = filepath.Join(base, f)
		}
		if _, err := os.Stat(f); err != nil {
			return nil
		}
		files = append(files, f)
	}
	po, err := cli.NewProjectOptions(files, cli.WithName(m.Project), cli.WithInterpolation(false),
		cli.WithLoadOptions(func(o *loader.Options) { o.SkipValidation = true; o.SkipConsistencyCheck = true }))
	if err != nil {
		return nil
	}
	model, err := po.LoadModel(ctx)
	if err != nil {
		return nil
	}
	services, _ := model["services"].(map[string]any)
	built := map[string]bool{}
	for name, s := range services {
		if sm, ok := s.(map[string]any); ok && sm["build"] != nil {
			built[name] = true
		}
	}
	return built
}

// resolveImages decides, for every service of the run, which image it runs.
// Services the manifest built run exactly that image (by ID when the engine
// has it); other services with a build: section are test-only and built by
// compose under a run-local tag.
func resolveImages(ctx context.Context, eng *engine.Client, p *types.Project, needed []string,
	m *manifest.Manifest, manifestPath string) (map[string]imageSource, error) {
	byRepo := map[string]string{}
	if m != nil {
		for name, s := range m.Services {
			byRepo[s.Image] = name
		}
	}
	var projectBuilt map[string]bool
	out := map[string]imageSource{}
	for _, name := range needed {
		s, _ := p.GetService(name)
		src := imageSource{Service: name, Original: s.Image}
		from := ""
		if m != nil {
			if _, ok := m.Services[name]; ok {
				from = name
			} else if s.Image != "" {
				from = byRepo[repository(s.Image)]
			}
		}
		switch {
		case from != "":
			ref, err := manifestImage(ctx, eng, m, manifestPath, from, name)
			if err != nil {
				return nil, err
			}
			src.FromManifest, src.Ref = from, ref
		case s.Build != nil:
			if m != nil {
				if projectBuilt == nil {
					projectBuilt = manifestBuilt(ctx, m, manifestPath)
					if projectBuilt == nil {
						projectBuilt = map[string]bool{}
					}
				}
				if projectBuilt[name] {
					return nil, exit.Usagef("manifest %s has no image for service %s, which the test stack needs and %s builds: "+
						"run 'slipway build' for it (without a --service filter that leaves it out)",
						manifestPath, name, strings.Join(m.ComposeFiles, ", "))
				}
			}
			src.Built = sanitize(p.Name) + "-" + sanitize(name)
			src.Ref = src.Built
		default:
			src.Ref = s.Image
		}
		out[name] = src
	}
	return out, nil
}

// manifestImage returns the reference that runs exactly the image the
// manifest recorded for service from.
func manifestImage(ctx context.Context, eng *engine.Client, m *manifest.Manifest, manifestPath, from, service string) (string, error) {
	ms := m.Services[from]
	if ms.ImageID != "" {
		id, err := eng.ImageIDIfPresent(ctx, ms.ImageID)
		if err != nil {
			return "", err
		}
		if id != "" {
			// The ID, not the tag: a concurrent build retagging the name
			// cannot swap the bytes under the test.
			return id, nil
		}
	}
	for _, ref := range []string{ms.Pinned(), ms.Ref()} {
		if ref == "" {
			continue
		}
		id, err := eng.ImageIDIfPresent(ctx, ref)
		if err != nil {
			return "", err
		}
		if id != "" {
			if ms.ImageID != "" && id != ms.ImageID {
				return "", exit.Usagef("service %s: image %s is %s on this engine, but manifest %s recorded %s: rebuild with 'slipway build'",
					service, ref, id, manifestPath, ms.ImageID)
			}
			return ref, nil
		}
	}
	if ms.Pinned() != "" {
		return ms.Pinned(), nil // pushed: compose pulls it by digest
	}
	return "", exit.Usagef("service %s: image %s from manifest %s is not on this engine and has no digest to pull: "+
		"run 'slipway build' on this agent, or 'slipway push' and test with the pushed manifest", service, ms.Ref(), manifestPath)
}
