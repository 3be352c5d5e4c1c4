// Package build builds every buildable service of a plan with BuildKit (the
// engine's or a standalone buildkitd, see package buildkit) or the engine's
// classic builder, in parallel where dependencies allow, and records each
// image ID in the release manifest.
package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"golang.org/x/sync/errgroup"

	"github.com/slipway-dev/slipway/tools/internal/buildkit"
	"github.com/slipway-dev/slipway/tools/internal/engine"
	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/manifest"
	"github.com/slipway-dev/slipway/tools/internal/plan"
	"github.com/slipway-dev/slipway/tools/internal/progress"
	"github.com/slipway-dev/slipway/tools/internal/regauth"
)

// DefaultParallel is --parallel's default.
const DefaultParallel = 2

// Options are the build command's flags.
type Options struct {
	Plan     plan.Options
	Pull     bool
	Parallel int    // builds at a time; 0 means DefaultParallel
	Manifest string // where to write the manifest; "" means manifest.DefaultPath
	Builder  string // --builder: "" (the engine's BuildKit), "classic", tcp://..., unix://...
	// LabelRevision stamps org.opencontainers.image.revision=<commit> (--label-revision).
	LabelRevision bool
	Log           *progress.Logger
	Stdout        io.Writer           // one "service image:tag imageId" line per build; nil discards
	Getenv        func(string) string // credentials lookup; nil means os.Getenv
}

// Run plans, builds every planned image and writes the manifest with each
// service's image ID.
func Run(ctx context.Context, o Options) (*manifest.Manifest, error) {
	if o.Parallel < 0 {
		return nil, exit.Usagef("--parallel must be 1 or more, got %d", o.Parallel)
	}
	if o.Manifest == "" {
		o.Manifest = manifest.DefaultPath
	}
	if o.Log == nil {
		o.Log = progress.Discard()
	}
	p, err := plan.Load(ctx, o.Plan)
	if err != nil {
		return nil, err
	}
	o.Log.Printf("project %s (name from %s)", p.Manifest.Project, p.ProjectFrom)
	for _, w := range p.Warnings {
		o.Log.Warnf("%s", w)
	}
	target, err := buildkit.ParseTarget(o.Builder)
	if err != nil {
		return nil, err
	}
	ids := map[string]string{}
	if len(p.Builds) == 0 {
		// An image-only project: the manifest lists its images; push pins them.
		o.Log.Printf("nothing to build: no service has a build: section; %d image(s) to pin at push: %s",
			len(p.Manifest.External), strings.Join(p.Manifest.ExternalNames(), ", "))
	} else if ids, err = buildAll(ctx, o, p, target); err != nil {
		return nil, err
	}
	m := p.Manifest
	for svc, id := range ids {
		s := m.Services[svc]
		s.ImageID = id
		m.Services[svc] = s
	}
	reportIdentical(o.Log, o.Manifest, m)
	if err := rebase(m, o.Plan.WorkDir, o.Manifest); err != nil {
		return nil, err
	}
	if err := manifest.Write(o.Manifest, m); err != nil {
		return nil, err
	}
	o.Log.Printf("manifest written to %s", o.Manifest)
	if o.Stdout != nil {
		for _, b := range p.Builds {
			fmt.Fprintf(o.Stdout, "%s %s %s\n", b.Service, b.Refs()[0], ids[b.Service])
		}
	}
	return m, nil
}

// rebase makes the manifest's paths (which plan gives relative to the working
// directory) relative to the manifest's own directory, so that later commands
// find the compose files wherever they are run from.
func rebase(m *manifest.Manifest, workDir, manifestPath string) error {
	if workDir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return err
		}
		workDir = wd
	}
	mdir, err := filepath.Abs(filepath.Dir(manifestPath))
	if err != nil {
		return err
	}
	fix := func(p string) string {
		if p == "" {
			return p
		}
		if !filepath.IsAbs(p) {
			p = filepath.Join(workDir, p)
		}
		if r, err := filepath.Rel(mdir, p); err == nil && r != ".." && !strings.HasPrefix(r, ".."+string(filepath.Separator)) {
			return r
		}
		return p
	}
	for i, f := range m.ComposeFiles {
		m.ComposeFiles[i] = fix(f)
	}
	for i, f := range m.EnvFiles {
		m.EnvFiles[i] = fix(f)
	}
	m.ProjectDir = fix(m.ProjectDir)
	return nil
}

// Engine is the part of the Docker engine build needs.
type Engine interface {
	Build(ctx context.Context, o engine.BuildOptions, fn func(engine.Message)) (string, error)
	Pull(ctx context.Context, ref string, auth regauth.Auth, fn func(engine.Message)) error
}

// Config tunes Images.
type Config struct {
	Pull     bool
	Parallel int
	Log      *progress.Logger
	Auth     *regauth.Store // nil: no credentials
	BuildKit BuildKit       // nil: the classic builder
	Getenv   func(string) string
	Now      func() time.Time
	// LabelRevision stamps the commit as org.opencontainers.image.revision.
	LabelRevision bool
}

// Images builds p.Builds, at most cfg.Parallel at a time, each only after the
// builds it depends on, and returns the image ID per service. The first
// failure cancels the others; its error names the service and carries the
// failing step's output.
func Images(ctx context.Context, eng Engine, p *plan.Plan, cfg Config) (map[string]string, error) {
	if cfg.Parallel <= 0 {
		cfg.Parallel = DefaultParallel
	}
	if cfg.Log == nil {
		cfg.Log = progress.Discard()
	}
	if cfg.Auth == nil {
		cfg.Auth = regauth.New(regauth.Options{Getenv: func(string) string { return "" }})
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if p.Manifest.Created == "" {
		p.Manifest.Created = cfg.Now().UTC().Format(time.RFC3339)
	}
	done := make(map[string]chan struct{}, len(p.Builds))
	for _, b := range p.Builds {
		for _, d := range b.DependsOn {
			if _, ok := done[d]; !ok && planned(p, d) {
				return nil, fmt.Errorf("plan: %s depends on %s, which is not built before it (dependency cycle?)", b.Service, d)
			}
		}
		done[b.Service] = make(chan struct{})
	}

	var (
		mu  sync.Mutex
		ids = map[string]string{}
		sem = make(chan struct{}, cfg.Parallel)
	)
	g, gctx := errgroup.WithContext(ctx)
	start := time.Now()
	for _, b := range p.Builds {
		g.Go(func() error {
			for _, d := range b.DependsOn {
				ch, ok := done[d]
				if !ok {
					continue // not part of this run (--service); its image must exist already
				}
				select {
				case <-ch:
				case <-gctx.Done():
					return gctx.Err()
				}
			}
			select {
			case sem <- struct{}{}:
			case <-gctx.Done():
				return gctx.Err()
			}
			defer func() { <-sem }()
			var (
				id  string
				err error
			)
			if cfg.BuildKit != nil {
				id, err = buildKitOne(gctx, eng, p, b, cfg, func(svc string) (string, bool) {
					mu.Lock()
					defer mu.Unlock()
					id, ok := ids[svc]
					return id, ok
				})
			} else {
				id, err = buildOne(gctx, eng, p, b, cfg)
			}
			if err != nil {
				return err
			}
			mu.Lock()
			ids[b.Service] = id
			mu.Unlock()
			close(done[b.Service])
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("build cancelled: %w", ctx.Err())
		}
		return nil, err
	}
	cfg.Log.Printf("%d image(s) built in %s", len(ids), progress.Duration(time.Since(start)))
	return ids, nil
}

func planned(p *plan.Plan, svc string) bool {
	for _, b := range p.Builds {
		if b.Service == svc {
			return true
		}
	}
	return false
}

// Error is a failed build: which service, at which step, with that step's output.
type Error struct {
	Service string
	Step    string   // "Step 3/5 : RUN make", when the engine got that far
	Output  []string // the step's last lines of output
	Err     error
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "building service %s failed", e.Service)
	if e.Step != "" {
		fmt.Fprintf(&b, " at %q", e.Step)
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	if len(e.Output) > 0 {
		b.WriteString("\noutput of the failing step:")
		for _, l := range e.Output {
			b.WriteString("\n  | " + l)
		}
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// unsupported lists build: keys the classic builder cannot honour; docker
// compose refuses them too rather than building something different.
func unsupported(bc types.BuildConfig) string {
	switch {
	case len(bc.AdditionalContexts) > 0:
		return "build.additional_contexts (use FROM <image of the other service> instead)"
	case len(bc.SSH) > 0:
		return "build.ssh"
	case len(bc.Secrets) > 0:
		return "build.secrets"
	case bc.Privileged:
		return "build.privileged"
	case len(bc.Entitlements) > 0:
		return "build.entitlements"
	case len(bc.Platforms) > 1:
		return "several build.platforms"
	}
	return ""
}

func buildOne(ctx context.Context, eng Engine, p *plan.Plan, b plan.Build, cfg Config) (string, error) {
	log := cfg.Log.With(b.Service)
	bc := b.Config
	if what := unsupported(bc); what != "" {
		return "", exit.Usagef("service %s: %s needs BuildKit, which this engine's classic builder does not offer", b.Service, what)
	}
	ctxDir := bc.Context
	if ctxDir == "" {
		ctxDir = "."
	}
	if !isRemoteContext(ctxDir) && !filepath.IsAbs(ctxDir) && p.Project != nil {
		ctxDir = filepath.Join(p.Project.WorkingDir, ctxDir)
	}
	lbls := labels(p.Manifest, bc.Labels, cfg.LabelRevision)
	prep, err := prepareContext(b.Service, ctxDir, bc.Dockerfile, bc.DockerfileInline, bc.Target, lbls)
	if err != nil {
		return "", err
	}
	if prep.LabelsBaked {
		lbls = nil
	}
	if prep.Tar != nil {
		defer prep.Tar.Close()
	}

	refs := b.Refs()
	tags := append([]string(nil), refs...)
	tags = append(tags, bc.Tags...)
	opts := engine.BuildOptions{
		Context:       prep.Tar,
		RemoteContext: prep.Remote,
		Dockerfile:    prep.Dockerfile,
		Tags:          tags,
		Args:          buildArgs(p, bc),
		Target:        bc.Target,
		Labels:        lbls,
		ExtraHosts:    bc.ExtraHosts.AsList(":"),
		Network:       bc.Network,
		ShmSize:       int64(bc.ShmSize),
		Pull:          cfg.Pull || bc.Pull,
		NoCache:       bc.NoCache,
		Isolation:     bc.Isolation,
	}
	if len(bc.Platforms) == 1 {
		opts.Platform = bc.Platforms[0]
	}
	for name, u := range bc.Ulimits {
		soft, hard := int64(u.Soft), int64(u.Hard)
		if u.Single != 0 {
			soft, hard = int64(u.Single), int64(u.Single)
		}
		opts.Ulimits = append(opts.Ulimits, engine.Ulimit{Name: name, Soft: soft, Hard: hard})
	}
	if len(bc.CacheTo) > 0 {
		log.Warnf("build.cache_to is ignored: the classic builder cannot export a cache")
	}

	// Credentials for every registry the build may pull from: the FROM
	// images, cache_from images and the image's own registry.
	hosts := map[string]bool{}
	addHost := func(ref string) {
		if h, err := regauth.HostOf(ref); err == nil {
			hosts[h] = true
		}
	}
	addHost(b.Image)
	fromArgs := map[string]string{}
	for k, v := range opts.Args {
		fromArgs[k] = *v
	}
	refs0, _ := buildkit.BaseImages(prep.Content, fromArgs) // the build reports a bad Dockerfile
	for _, ref := range refs0 {
		addHost(ref)
	}
	for _, c := range bc.CacheFrom {
		ref, ok := cacheRef(c)
		if !ok {
			log.Warnf("cache_from %q ignored: the classic builder only uses images (type=registry)", c)
			continue
		}
		addHost(ref)
		opts.CacheFrom = append(opts.CacheFrom, ref)
	}
	for _, h := range sortedKeys(hosts) {
		a, err := cfg.Auth.For(h)
		if err != nil {
			return "", fmt.Errorf("service %s: %w", b.Service, err)
		}
		opts.Auth = append(opts.Auth, a)
	}
	// The classic builder uses cache_from images only when they are local.
	for _, ref := range opts.CacheFrom {
		a, _ := cfg.Auth.ForRef(ref)
		if err := eng.Pull(ctx, ref, a, nil); err != nil {
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			log.Printf("cache image %s not pulled (%v); building without it", ref, firstLine(err))
		}
	}

	log.Printf("building %s", strings.Join(refs, ", "))
	start := time.Now()
	out := newStepLog(log)
	id, err := eng.Build(ctx, opts, out.handle)
	out.close()
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("service %s: build cancelled: %w", b.Service, ctx.Err())
		}
		var se *engine.StreamError
		if errors.As(err, &se) {
			return "", &Error{Service: b.Service, Step: out.step, Output: out.lines, Err: err}
		}
		return "", &Error{Service: b.Service, Err: fmt.Errorf("%w (is the engine still running? see 'docker info')", err)}
	}
	log.Printf("built %s in %s", shortID(id), progress.Duration(time.Since(start)))
	return id, nil
}

// buildArgs resolves args written without a value from the project
// environment, as docker compose does, and drops those still unset.
func buildArgs(p *plan.Plan, bc types.BuildConfig) map[string]*string {
	args := map[string]*string{}
	for k, v := range bc.Args {
		if v == nil && p.Project != nil {
			if val, ok := p.Project.Environment[k]; ok {
				v = &val
			}
		}
		if v != nil {
			args[k] = v
		}
	}
	return args
}

// cacheRef reads a cache_from entry: a plain image, or BuildKit's
// "type=registry,ref=IMAGE" form.
func cacheRef(s string) (string, bool) {
	if !strings.Contains(s, "=") {
		return s, true
	}
	var typ, ref string
	for _, kv := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(kv, "=")
		switch strings.TrimSpace(k) {
		case "type":
			typ = v
		case "ref":
			ref = v
		}
	}
	if (typ == "" || typ == "registry") && ref != "" {
		return ref, true
	}
	return "", false
}

func imageHosts(p *plan.Plan) []string {
	var hosts []string
	for _, b := range p.Builds {
		if h, err := regauth.HostOf(b.Image); err == nil {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func shortID(id string) string {
	s := strings.TrimPrefix(id, "sha256:")
	if len(s) > 12 {
		s = s[:12]
	}
	return s
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// stepLog streams build output line by line with the service prefix and
// keeps the current step's output, for the error message when it fails.
type stepLog struct {
	log   *progress.Logger
	buf   []byte
	step  string
	lines []string
}

const keepLines = 40

func newStepLog(log *progress.Logger) *stepLog { return &stepLog{log: log} }

func (s *stepLog) handle(m engine.Message) {
	switch {
	case m.Stream != "":
		s.buf = append(s.buf, m.Stream...)
		for {
			i := strings.IndexByte(string(s.buf), '\n')
			if i < 0 {
				break
			}
			s.line(strings.TrimRight(string(s.buf[:i]), "\r"))
			s.buf = s.buf[i+1:]
		}
	case m.Status != "" && m.Progress == "":
		// Pull progress from FROM / --pull: only the milestones, not the bars.
		switch m.Status {
		case "Waiting", "Preparing", "Pulling fs layer", "Verifying Checksum", "Download complete", "Downloading", "Extracting":
			return
		}
		if m.ID != "" {
			s.log.Printf("%s: %s", m.ID, m.Status)
		} else {
			s.log.Printf("%s", m.Status)
		}
	}
}

// ansi matches the colour codes the engine wraps a step's stderr in.
var ansi = regexp.MustCompile(`\x1b\[[0-9;]*[A-Za-z]`)

func (s *stepLog) line(l string) {
	l = ansi.ReplaceAllString(l, "")
	s.log.Printf("%s", l)
	if strings.HasPrefix(l, "Step ") {
		s.step, s.lines = l, nil
		return
	}
	if strings.HasPrefix(l, " ---> ") || strings.HasPrefix(l, "Removing intermediate container") {
		return
	}
	s.lines = append(s.lines, l)
	if len(s.lines) > keepLines {
		s.lines = s.lines[len(s.lines)-keepLines:]
	}
}

func (s *stepLog) close() {
	if len(s.buf) > 0 {
		s.line(string(s.buf))
		s.buf = nil
	}
}

// buildAll builds the plan's images on the engine, through the chosen
// builder, and returns their IDs by service.
func buildAll(ctx context.Context, o Options, p *plan.Plan, target buildkit.Target) (map[string]string, error) {
	eng, err := engine.New(ctx)
	if err != nil {
		return nil, err
	}
	defer eng.Close()
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	cfg := Config{Pull: o.Pull, Parallel: o.Parallel, Log: o.Log, Getenv: getenv, LabelRevision: o.LabelRevision,
		Auth: regauth.New(regauth.Options{Getenv: o.Getenv, EnvHosts: imageHosts(p)})}
	if target.Kind == buildkit.Engine && !eng.HasBuildKit(ctx) {
		o.Log.Warnf("the engine (API %s) has no BuildKit; building with its classic builder", eng.APIVersion(ctx))
		target.Kind = buildkit.Classic
	}
	if target.Kind != buildkit.Classic {
		bk, err := buildkit.Connect(ctx, target, eng)
		if err != nil {
			return nil, err
		}
		defer bk.Close()
		cfg.BuildKit = bk
	}
	return Images(ctx, eng, p, cfg)
}
