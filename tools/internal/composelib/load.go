// Package composelib drives Docker Compose's own code (docker/compose as a Go
// library) against any Docker API client, so that a server converged through
// it needs its Docker Engine and nothing else: no Compose, no docker CLI.
// It is the one package that imports Compose, so a Compose upgrade is a
// change here.
package composelib

import (
	"bytes"
	"context"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/docker/compose/v5/pkg/api"
)

// Release is a release directory as Compose sees it: the files live on the
// server, their contents are here.
type Release struct {
	Project string // the compose project name
	Dir     string // the release directory on the server: Compose's working directory
	Compose []byte // Dir/compose.yaml
	DotEnv  []byte // Dir/.env, nil when there is none
}

// ReadFiles returns the contents of files on the server by absolute path;
// a file that does not exist is missing from the map.
type ReadFiles func(ctx context.Context, paths []string) (map[string][]byte, error)

// Load reads a release as `docker compose --project-directory Dir -f
// Dir/compose.yaml` would on the server: .env interpolates, relative paths
// resolve against Dir, env_file contents come from the server through read.
// Unlike the CLI it does not read the SSH user's shell environment: a
// release's variables are its .env.
func Load(ctx context.Context, r Release, read ReadFiles) (*types.Project, error) {
	file := path.Join(r.Dir, "compose.yaml")
	env := map[string]string{}
	if r.DotEnv != nil {
		var err error
		if env, err = dotenv.ParseWithLookup(bytes.NewReader(r.DotEnv), nil); err != nil {
			return nil, fmt.Errorf("%s: %w", path.Join(r.Dir, ".env"), err)
		}
	}
	details := types.ConfigDetails{
		WorkingDir:  r.Dir,
		ConfigFiles: []types.ConfigFile{{Filename: file, Content: topVersion.ReplaceAll(r.Compose, nil)}},
		Environment: env,
	}
	p, err := loader.LoadWithContext(ctx, details, func(o *loader.Options) {
		o.SetProjectName(r.Project, true)
		o.ResolvePaths = true
		// env_file and label_file live on the server: resolved below.
		o.SkipResolveEnvironment = true
		o.SkipResolveLabels = true
		o.ResourceLoaders = nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if err := resolveFiles(ctx, p, read); err != nil {
		return nil, err
	}
	labelServices(p)
	return p, nil
}

// topVersion is a top-level version: key, which docker stack needs in
// slipway's swarm releases and Compose's loader warns about on stderr.
var topVersion = regexp.MustCompile(`(?m)^version:[^\n]*\n`)

// resolveFiles does what compose-go's environment resolution does, with the
// env_file and label_file contents read from the server in one go.
func resolveFiles(ctx context.Context, p *types.Project, read ReadFiles) error {
	seen := map[string]bool{}
	var paths []string
	for _, s := range p.Services {
		for _, f := range s.EnvFiles {
			if !seen[f.Path] {
				seen[f.Path] = true
				paths = append(paths, f.Path)
			}
		}
		for _, f := range s.LabelFiles {
			if !seen[f] {
				seen[f] = true
				paths = append(paths, f)
			}
		}
	}
	if len(paths) == 0 {
		return nil
	}
	sort.Strings(paths)
	files, err := read(ctx, paths)
	if err != nil {
		return fmt.Errorf("reading the env_file and label_file files: %w", err)
	}
	for name, s := range p.Services {
		if err := resolveEnv(&s, p.Environment, files); err != nil {
			return fmt.Errorf("service %q: %w", name, err)
		}
		for _, lf := range s.LabelFiles {
			data, ok := files[lf]
			if !ok {
				return fmt.Errorf("service %q: label_file %s not found", name, lf)
			}
			labels := types.Mapping{}
			if err := dotenv.ParseWithFormat(bytes.NewReader(data), lf, labels, nil, ""); err != nil {
				return fmt.Errorf("service %q: %w", name, err)
			}
			if s.Labels == nil {
				s.Labels = types.Labels{}
			}
			for k, v := range labels {
				if _, set := s.Labels[k]; !set { // labels win over label_file
					s.Labels[k] = v
				}
			}
		}
		s.LabelFiles = nil
		p.Services[name] = s
	}
	return nil
}

// resolveEnv is compose-go's resolveEnvironment over file contents:
// environment entries without a value come from the project's variables,
// env_file values are next, explicit environment entries win.
func resolveEnv(s *types.ServiceConfig, projectEnv types.Mapping, files map[string][]byte) error {
	s.Environment = s.Environment.Resolve(projectEnv.Resolve)
	environment := s.Environment.ToMapping()
	lookup := func(k string) (string, bool) {
		if v, ok := projectEnv.Resolve(k); ok {
			return v, true
		}
		if v, ok := s.Environment[k]; ok && v != nil {
			return *v, true
		}
		return "", false
	}
	for _, f := range s.EnvFiles {
		data, ok := files[f.Path]
		if !ok {
			if f.Required {
				return fmt.Errorf("env file %s not found on the server", f.Path)
			}
			continue
		}
		if err := dotenv.ParseWithFormat(bytes.NewReader(data), f.Path, environment, lookup, f.Format); err != nil {
			return err
		}
	}
	s.Environment = environment.ToMappingWithEquals().OverrideBy(s.Environment)
	s.EnvFiles = nil
	return nil
}

// labelServices sets the labels by which Compose finds a project's
// containers again, as its own loader does (so a project converged here and
// one converged by `docker compose` on the server are the same project).
func labelServices(p *types.Project) {
	for name, s := range p.Services {
		s.CustomLabels = map[string]string{
			api.ProjectLabel:     p.Name,
			api.ServiceLabel:     name,
			api.VersionLabel:     api.ComposeVersion,
			api.WorkingDirLabel:  p.WorkingDir,
			api.ConfigFilesLabel: strings.Join(p.ComposeFiles, ","),
			api.OneoffLabel:      "False",
		}
		p.Services[name] = s
	}
}
