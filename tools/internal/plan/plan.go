// Package plan loads a compose project exactly as `docker compose` does and
// computes, from git state, the image references and tags build will produce.
package plan

import (
	"context"
	"errors"

	"github.com/compose-spec/compose-go/v2/types"

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
	Tags       []string // Go templates over .Commit .ShortCommit .Branch .BuildNumber
	AllowDirty bool
	Services   []string // --service filter; empty means all buildable services
}

// Plan is what build will do.
type Plan struct {
	Project  *types.Project     // fully loaded and interpolated, for building
	Manifest *manifest.Manifest // services with image and tags; no IDs or digests yet
	Builds   []Build            // in an order where every dependency comes first
}

// Build is one image to build.
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

// Load computes the plan. Not yet implemented.
func Load(ctx context.Context, opts Options) (*Plan, error) {
	return nil, errors.New("plan.Load: not implemented yet")
}

// LoadProject loads the compose model with the same discovery and merging as
// Load. With interpolate false, ${VAR} references and relative paths are kept
// as written (the pinned compose file needs that). Not yet implemented.
func LoadProject(ctx context.Context, opts Options, interpolate bool) (*types.Project, error) {
	return nil, errors.New("plan.LoadProject: not implemented yet")
}
