package build

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/slipway-dev/slipway/tools/internal/buildkit"
	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/plan"
	"github.com/slipway-dev/slipway/tools/internal/progress"
)

// BuildKit is the part of a BuildKit connection build needs.
type BuildKit interface {
	Build(ctx context.Context, r buildkit.Request) (string, error)
	Target() buildkit.Target
}

// builtIDs looks up the image ID of a service built earlier in this run.
type builtIDs func(svc string) (string, bool)

// buildKitOne builds one service through BuildKit.
func buildKitOne(ctx context.Context, eng Engine, p *plan.Plan, b plan.Build, cfg Config, built builtIDs) (string, error) {
	log := cfg.Log.With(b.Service)
	bc := b.Config
	switch {
	case bc.Privileged:
		return "", exit.Usagef("service %s: build.privileged is not supported: slipway builds without extra entitlements", b.Service)
	case len(bc.Entitlements) > 0:
		return "", exit.Usagef("service %s: build.entitlements is not supported: slipway builds without extra entitlements", b.Service)
	case bc.Network != "" && bc.Network != "default" && bc.Network != "host" && bc.Network != "none":
		return "", exit.Usagef("service %s: build.network %q: BuildKit builds on the default network, host or none only", b.Service, bc.Network)
	}
	platform, err := buildPlatform(p, b, cfg.Getenv)
	if err != nil {
		return "", err
	}
	workDir := ""
	if p.Project != nil {
		workDir = p.Project.WorkingDir
	}
	ctxDir := bc.Context
	if ctxDir == "" {
		ctxDir = "."
	}
	remote := isRemoteContext(ctxDir)
	if !remote && !filepath.IsAbs(ctxDir) {
		ctxDir = filepath.Join(workDir, ctxDir)
	}
	r := buildkit.Request{
		Service:    b.Service,
		Context:    ctxDir,
		Inline:     bc.DockerfileInline,
		Target:     bc.Target,
		Args:       map[string]string{},
		Labels:     labels(p.Manifest, bc.Labels, cfg.LabelRevision),
		Platform:   platform,
		Network:    bc.Network,
		ExtraHosts: bc.ExtraHosts.AsList("="),
		ShmSize:    int64(bc.ShmSize),
		NoCache:    bc.NoCache,
		Tags:       append(b.Refs(), bc.Tags...),
		CacheFrom:  bc.CacheFrom,
		CacheTo:    bc.CacheTo,
		Auth: func(host string) (string, string, error) {
			a, err := cfg.Auth.For(host)
			return a.Username, a.Password, err
		},
	}
	var content []byte
	if bc.DockerfileInline == "" {
		if remote {
			r.Dockerfile = bc.Dockerfile
		} else {
			if r.Dockerfile, err = findDockerfile(b.Service, ctxDir, bc.Dockerfile); err != nil {
				return "", err
			}
			content, _ = os.ReadFile(r.Dockerfile)
		}
	} else {
		content = []byte(bc.DockerfileInline)
	}
	for k, v := range buildArgs(p, bc) {
		r.Args[k] = *v
	}
	for name, u := range bc.Ulimits {
		soft, hard := u.Soft, u.Hard
		if u.Single != 0 {
			soft, hard = u.Single, u.Single
		}
		r.Ulimits = append(r.Ulimits, fmt.Sprintf("%s=%d:%d", name, soft, hard))
	}
	if r.Secrets, err = buildSecrets(p, b, cfg.Getenv); err != nil {
		return "", err
	}
	for _, k := range bc.SSH {
		s := buildkit.SSH{ID: k.ID}
		if k.Path != "" {
			s.Paths = []string{k.Path}
		}
		r.SSH = append(r.SSH, s)
	}
	if r.Contexts, err = namedContexts(p, b, workDir, cfg.BuildKit.Target().Kind == buildkit.Remote, built); err != nil {
		return "", err
	}

	// --pull: the engine pulls the base images first with the credentials it
	// uses today; its BuildKit then finds them in the engine's store. A
	// standalone buildkitd checks the registry itself.
	pull := cfg.Pull || bc.Pull
	if pull && cfg.BuildKit.Target().Kind == buildkit.Remote {
		r.Pull = true
	} else if pull && content != nil {
		refs, err := buildkit.BaseImages(content, r.Args)
		if err != nil {
			return "", exit.Usagef("service %s: %v", b.Service, err)
		}
		for _, ref := range refs {
			a, err := cfg.Auth.ForRef(ref)
			if err != nil {
				return "", fmt.Errorf("service %s: %w", b.Service, err)
			}
			log.Printf("pulling %s", ref)
			if err := eng.Pull(ctx, ref, a, nil); err != nil {
				if ctx.Err() != nil {
					return "", fmt.Errorf("service %s: build cancelled: %w", b.Service, ctx.Err())
				}
				return "", fmt.Errorf("service %s: pulling base image %s: %w", b.Service, ref, err)
			}
		}
	}

	log.Printf("building %s with %s", strings.Join(b.Refs(), ", "), cfg.BuildKit.Target())
	start := time.Now()
	out := newLineLog(log)
	r.Progress = out
	id, err := cfg.BuildKit.Build(ctx, r)
	out.Close()
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("service %s: build cancelled: %w", b.Service, ctx.Err())
		}
		if exit.Code(err) == exit.Usage {
			return "", err
		}
		return "", &Error{Service: b.Service, Output: out.lines, Err: err}
	}
	log.Printf("built %s in %s", shortID(id), progress.Duration(time.Since(start)))
	return id, nil
}

// buildPlatform is the one platform to build for: build.platforms (one), else
// the service's platform:, else DOCKER_DEFAULT_PLATFORM, else the builder's.
func buildPlatform(p *plan.Plan, b plan.Build, getenv func(string) string) (string, error) {
	var svcPlatform string
	if p.Project != nil {
		if s, ok := p.Project.Services[b.Service]; ok {
			svcPlatform = s.Platform
		}
	}
	if svcPlatform == "" && getenv != nil {
		svcPlatform = getenv("DOCKER_DEFAULT_PLATFORM")
	}
	list := b.Config.Platforms
	switch {
	case len(list) == 0:
		return svcPlatform, nil
	case svcPlatform != "":
		for _, pl := range list {
			if pl == svcPlatform {
				return svcPlatform, nil
			}
		}
		return "", exit.Usagef("service %s: platform %s is not in build.platforms %v; add it there", b.Service, svcPlatform, list)
	case len(list) == 1:
		return list[0], nil
	}
	return "", exit.Usagef("service %s: build.platforms lists %d platforms, but the engine's image store holds one per tag; list one, or set the service's platform: to the one to build", b.Service, len(list))
}

// buildSecrets reads each build secret's value (a file, or a variable from
// the project's environment or the process's) for the session to serve.
func buildSecrets(p *plan.Plan, b plan.Build, getenv func(string) string) (map[string][]byte, error) {
	if len(b.Config.Secrets) == 0 {
		return nil, nil
	}
	out := map[string][]byte{}
	for _, s := range b.Config.Secrets {
		var def types.SecretConfig
		ok := false
		if p.Project != nil {
			def, ok = p.Project.Secrets[s.Source]
		}
		if !ok {
			return nil, exit.Usagef("service %s: build.secrets: secret %q is not defined in the top-level secrets:", b.Service, s.Source)
		}
		id := s.Source
		if s.Target != "" {
			id = s.Target
		}
		switch {
		case def.File != "":
			v, err := os.ReadFile(def.File)
			if err != nil {
				return nil, exit.Usagef("service %s: build.secrets: secret %q: %v", b.Service, s.Source, err)
			}
			out[id] = v
		case def.Environment != "":
			v, found := "", false
			if p.Project != nil {
				v, found = p.Project.Environment[def.Environment]
			}
			if !found && getenv != nil {
				v = getenv(def.Environment)
				found = v != ""
			}
			if !found {
				return nil, exit.Usagef("service %s: build.secrets: secret %q reads $%s, which is not set", b.Service, s.Source, def.Environment)
			}
			out[id] = []byte(v)
		default:
			return nil, exit.Usagef("service %s: build.secrets: secret %q has neither file: nor environment:", b.Service, s.Source)
		}
	}
	return out, nil
}

// namedContexts maps additional_contexts for the frontend: service:NAME
// becomes that service's image built in this run, relative paths are made
// absolute, anything else (docker-image://, URLs, target:) goes as written.
func namedContexts(p *plan.Plan, b plan.Build, workDir string, remote bool, built builtIDs) (map[string]string, error) {
	if len(b.Config.AdditionalContexts) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for name, v := range b.Config.AdditionalContexts {
		switch {
		case strings.HasPrefix(v, "service:"):
			svc := strings.TrimPrefix(v, "service:")
			if remote {
				return nil, exit.Usagef("service %s: build.additional_contexts %s: %s names an image built here, which a standalone buildkitd cannot read; build with --builder buildkit", b.Service, name, v)
			}
			if _, ok := built(svc); !ok {
				for _, o := range p.Builds {
					if o.Service == svc {
						return nil, fmt.Errorf("service %s: build.additional_contexts %s: service %s was not built before it", b.Service, name, svc)
					}
				}
				return nil, exit.Usagef("service %s: build.additional_contexts %s: service %s is not built in this run (add it, or drop --service)", b.Service, name, svc)
			}
			// By name: the engine's BuildKit finds its own images by
			// reference (an ID would be looked up on Docker Hub).
			for _, o := range p.Builds {
				if o.Service == svc {
					out[name] = "docker-image://" + o.Refs()[0]
				}
			}
		case strings.Contains(v, "://") || strings.HasPrefix(v, "target:") || isRemoteContext(v):
			out[name] = v
		default:
			if !filepath.IsAbs(v) {
				v = filepath.Join(workDir, v)
			}
			out[name] = v
		}
	}
	return out, nil
}

// lineLog passes BuildKit's plain progress to the service's log line by line
// and keeps the last lines for the error message of a failed build.
type lineLog struct {
	log   *progress.Logger
	buf   []byte
	lines []string
}

func newLineLog(log *progress.Logger) *lineLog { return &lineLog{log: log} }

func (l *lineLog) Write(b []byte) (int, error) {
	l.buf = append(l.buf, b...)
	for {
		i := strings.IndexByte(string(l.buf), '\n')
		if i < 0 {
			return len(b), nil
		}
		l.line(strings.TrimRight(string(l.buf[:i]), "\r"))
		l.buf = l.buf[i+1:]
	}
}

func (l *lineLog) line(s string) {
	if s == "" {
		return
	}
	l.log.Printf("%s", s)
	l.lines = append(l.lines, s)
	if len(l.lines) > keepLines {
		l.lines = l.lines[len(l.lines)-keepLines:]
	}
}

// Close flushes a last unterminated line.
func (l *lineLog) Close() {
	if len(l.buf) > 0 {
		l.line(string(l.buf))
		l.buf = nil
	}
}
