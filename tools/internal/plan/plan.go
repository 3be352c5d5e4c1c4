// Package plan loads a compose project exactly as `docker compose` does and
// computes, from git state, the image references and tags build will produce.
//
// Hostile input is refused with exit code 2 before any remote action: a
// compose file over MaxComposeFileSize (4 MiB), alias cycles and alias
// expansion bombs, unknown top-level keys (the compose schema allows only
// x- extensions), and service names that do not make a valid default image
// name <registry>/<project>-<service>.
package plan

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/gitinfo"
	"github.com/slipway-dev/slipway/tools/internal/manifest"
)

// Options are the load and tagging flags of plan and build.
type Options struct {
	// Load: as docker compose's -f, -p, --project-directory, --env-file, --profile.
	Files       []string
	ProjectName string
	ProjectDir  string
	EnvFiles    []string
	Profiles    []string
	WorkDir     string            // directory relative paths are taken from; default cwd
	Environ     map[string]string // process environment; default os.Environ()

	// Tagging.
	Registry   string
	Tags       []string // Go templates over .Commit .ShortCommit .Branch .BuildNumber .DefaultBranch; empty: DefaultTagTemplate (+ latest on the default branch)
	AllowDirty bool
	Services   []string // --service filter; empty means all buildable services

	// Now is the manifest's creation time; zero means time.Now().
	Now time.Time
}

// Plan is what build will do.
type Plan struct {
	Project  *types.Project     // fully loaded and interpolated, for building
	Manifest *manifest.Manifest // services with image and tags; no IDs or digests yet
	Builds   []Build            // in an order where every dependency comes first
	Git      *gitinfo.Info      // the git state the tags were computed from
	// ProjectFrom says where the project name came from: -p, COMPOSE_PROJECT_NAME,
	// name: in a file, the repository's name, or the project directory.
	ProjectFrom string
}

// Build is one image to build. Two builds may share an Image when their
// build: sections are identical (web and worker run from one image).
type Build struct {
	Service   string
	Image     string   // repository without tag
	Tags      []string // computed tags
	Config    types.BuildConfig
	DependsOn []string // built services that must finish first (depends_on, additional_contexts service:NAME)
}

// Refs returns image:tag for every tag.
func (b Build) Refs() []string {
	refs := make([]string, len(b.Tags))
	for i, t := range b.Tags {
		refs[i] = b.Image + ":" + t
	}
	return refs
}

// Load computes the plan: the compose project, the git state, and for every
// buildable service its image repository and tags. Bad input (compose files,
// flags, a dirty tree without AllowDirty, no git repository) exits 2.
func Load(ctx context.Context, opts Options) (*Plan, error) {
	// git and compose are independent; run git beside the (slower) compose load.
	type gitResult struct {
		info *gitinfo.Info
		err  error
	}
	wd, err := workDir(opts)
	if err != nil {
		return nil, err
	}
	defer relaxGC()()
	warmSchema()
	gitCh := make(chan gitResult, 1)
	gctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		info, err := gitinfo.Read(gctx, wd, environMap(opts.Environ))
		gitCh <- gitResult{info, err}
	}()

	project, src, err := loadCompose(ctx, opts, true)
	if err != nil {
		return nil, err
	}
	g := <-gitCh
	if g.err != nil {
		return nil, g.err
	}
	git := g.info
	if git.Dirty && !opts.AllowDirty {
		return nil, exit.Usagef("working tree has uncommitted changes to tracked files: %s; "+
			"commit them (or stash them) or pass --allow-dirty, which marks every tag -dirty", summarize(git.DirtyFiles, 5))
	}

	names, err := selectServices(project, opts.Services)
	if err != nil {
		return nil, err
	}

	tags, err := RenderTags(opts.Tags, TagData{
		Commit:        git.Commit,
		ShortCommit:   git.ShortCommit,
		Branch:        SanitizeBranch(git.Branch),
		BuildNumber:   git.BuildNumber,
		DefaultBranch: git.DefaultBranch,
	}, git.Dirty)
	if err != nil {
		return nil, exit.With(exit.Usage, err)
	}

	built := make(map[string]bool, len(names))
	for _, n := range names {
		built[n] = true
	}
	seen := map[string]bool{} // paths already found to exist
	builds := make([]Build, 0, len(names))
	images := map[string]string{}
	for _, n := range names {
		svc := project.Services[n]
		repo, err := ImageRepo(project.Name, n, svc.Image, opts.Registry)
		if err != nil {
			return nil, exit.Usagef("%s: %v", strings.Join(project.ComposeFiles, ", "), err)
		}
		// web and worker sharing one image built the same way is a common
		// pattern; two different builds into one repository would overwrite
		// each other's tags.
		if other, ok := images[repo]; ok && !reflect.DeepEqual(*project.Services[other].Build, *svc.Build) {
			return nil, exit.Usagef("services %q and %q build image %s from different build: sections, so one would overwrite the other's tags: give one of them a different image:", other, n, repo)
		}
		images[repo] = n
		// repo:tag needs no further check: ImageRepo validated the repository
		// (length included) and RenderTags every tag.
		if err := checkBuildInputs(project, svc, seen); err != nil {
			return nil, err
		}
		builds = append(builds, Build{
			Service:   n,
			Image:     repo,
			Tags:      append([]string(nil), tags...),
			Config:    *svc.Build,
			DependsOn: buildDeps(svc, built),
		})
	}
	ordered, err := orderBuilds(builds)
	if err != nil {
		return nil, exit.With(exit.Usage, err)
	}

	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	m := &manifest.Manifest{
		SchemaVersion: manifest.SchemaVersion,
		Project:       project.Name,
		ComposeFiles:  src.relAll(src.files),
		ProjectDir:    src.rel(project.WorkingDir),
		EnvFiles:      src.relAll(src.envFiles),
		Profiles:      src.profiles,
		Commit:        git.Commit,
		ShortCommit:   git.ShortCommit,
		Branch:        git.Branch,
		Dirty:         git.Dirty,
		BuildURL:      git.BuildURL,
		BuildNumber:   git.BuildNumber,
		Created:       now.UTC().Format(time.RFC3339),
		Source:        git.Source,
		Services:      make(map[string]manifest.Service, len(ordered)),
	}
	for _, b := range ordered {
		m.Services[b.Service] = manifest.Service{Image: b.Image, Tags: append([]string(nil), b.Tags...)}
	}
	return &Plan{Project: project, Manifest: m, Builds: ordered, Git: git, ProjectFrom: src.nameFrom}, nil
}

// LoadProject loads the compose model with the same discovery and merging as
// Load. With interpolate false, ${VAR} references and relative paths are kept
// as written (the pinned compose file needs that): the loader then sees no
// environment at all beyond what names the project, env_file and label_file
// stay unresolved, and nothing from the agent's environment lands in the model.
func LoadProject(ctx context.Context, opts Options, interpolate bool) (*types.Project, error) {
	defer relaxGC()()
	p, _, err := loadCompose(ctx, opts, interpolate)
	return p, err
}

// selectServices returns the buildable services to build, sorted: all of
// them, or those named (plus the services their additional_contexts need).
func selectServices(project *types.Project, want []string) ([]string, error) {
	buildable := project.ServicesWithBuild()
	sort.Strings(buildable)
	if len(buildable) == 0 {
		return nil, exit.Usagef("no service in %s has a build: section, so there is nothing to build%s",
			strings.Join(project.ComposeFiles, ", "), disabledHint(project))
	}
	if len(want) == 0 {
		return buildable, nil
	}
	isBuildable := map[string]bool{}
	for _, n := range buildable {
		isBuildable[n] = true
	}
	selected := map[string]bool{}
	var queue []string
	for _, n := range want {
		if isBuildable[n] {
			if !selected[n] {
				selected[n] = true
				queue = append(queue, n)
			}
			continue
		}
		if _, ok := project.Services[n]; ok {
			return nil, exit.Usagef("--service %s: service %q has no build: section, slipway builds only %s", n, n, strings.Join(buildable, ", "))
		}
		if d, ok := project.DisabledServices[n]; ok {
			return nil, exit.Usagef("--service %s: service %q is not active: it needs --profile %s", n, n, strings.Join(d.Profiles, " or --profile "))
		}
		return nil, exit.Usagef("--service %s: no such service; the buildable services are %s", n, strings.Join(buildable, ", "))
	}
	// A selected image built FROM another (additional_contexts service:NAME)
	// cannot build without it.
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, d := range contextServices(project.Services[n]) {
			if isBuildable[d] && !selected[d] {
				selected[d] = true
				queue = append(queue, d)
			}
		}
	}
	out := make([]string, 0, len(selected))
	for n := range selected {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

func disabledHint(project *types.Project) string {
	var names []string
	for n, s := range project.DisabledServices {
		if s.Build != nil {
			names = append(names, fmt.Sprintf("%s (profiles: %s)", n, strings.Join(s.Profiles, ", ")))
		}
	}
	if len(names) == 0 {
		return ""
	}
	sort.Strings(names)
	return "; services with build: sections that need a --profile: " + strings.Join(names, ", ")
}

// checkBuildInputs fails before the engine is touched when a local build
// context or Dockerfile is missing.
func checkBuildInputs(project *types.Project, svc types.ServiceConfig, seen map[string]bool) error {
	b := svc.Build
	ctxDir := b.Context
	if ctxDir == "" {
		ctxDir = "."
	}
	if isRemoteContext(ctxDir) {
		return nil
	}
	if !filepath.IsAbs(ctxDir) {
		ctxDir = filepath.Join(project.WorkingDir, ctxDir)
	}
	if !seen[ctxDir] {
		if st, err := os.Stat(ctxDir); err != nil || !st.IsDir() {
			return exit.Usagef("service %q: build context %s is not a directory; fix build.context (or build:) in %s",
				svc.Name, ctxDir, strings.Join(project.ComposeFiles, ", "))
		}
		seen[ctxDir] = true
	}
	if b.DockerfileInline != "" {
		return nil
	}
	df := b.Dockerfile
	if df == "" {
		df = "Dockerfile"
	}
	if !filepath.IsAbs(df) {
		df = filepath.Join(ctxDir, df)
	}
	if seen[df] {
		return nil
	}
	if st, err := os.Stat(df); err != nil || st.IsDir() {
		return exit.Usagef("service %q: Dockerfile %s does not exist; add it or fix build.dockerfile in %s",
			svc.Name, df, strings.Join(project.ComposeFiles, ", "))
	}
	seen[df] = true
	return nil
}

// isRemoteContext reports a build context the engine fetches itself (the
// same test as compose-go's path resolver).
func isRemoteContext(c string) bool {
	if strings.Contains(c, "://") {
		return true
	}
	for _, p := range []string{"http://", "https://", "git://", "git@", "github.com/", "ssh://"} {
		if strings.HasPrefix(c, p) {
			return true
		}
	}
	return false
}

func summarize(lines []string, n int) string {
	out := make([]string, 0, n+1)
	for i, l := range lines {
		if i == n {
			out = append(out, fmt.Sprintf("and %d more", len(lines)-n))
			break
		}
		out = append(out, strings.TrimSpace(l))
	}
	return strings.Join(out, ", ")
}
