package plan

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	composecli "github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/consts"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/template"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v4"

	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/gitinfo"
)

// sources records what a load used, for the manifest and for errors.
type sources struct {
	workDir  string
	environ  map[string]string
	files    []string // absolute compose files, in merge order
	envFiles []string // absolute env files actually read
	profiles []string // active profiles (--profile, else COMPOSE_PROFILES)
	nameFrom string   // where the project name came from, for plan and build's log
}

// rel returns p relative to the working directory when it lies below it.
func (s *sources) rel(p string) string {
	if r, err := filepath.Rel(s.workDir, p); err == nil && r != ".." && !strings.HasPrefix(r, ".."+string(filepath.Separator)) {
		return r
	}
	return p
}

func (s *sources) relAll(ps []string) []string {
	if len(ps) == 0 {
		return nil
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = s.rel(p)
	}
	return out
}

// environMap returns opts.Environ, else the process environment.
func environMap(env map[string]string) map[string]string {
	if env != nil {
		return env
	}
	m := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			m[k] = v
		}
	}
	return m
}

func workDir(opts Options) (string, error) {
	wd := opts.WorkDir
	if wd == "" {
		var err error
		if wd, err = os.Getwd(); err != nil {
			return "", fmt.Errorf("finding the current directory: %w", err)
		}
	}
	return filepath.Abs(wd)
}

// loadCompose loads the project the way `docker compose` does (the option
// order mirrors docker/compose's ProjectOptions.toProjectOptions), except that
// relative paths are taken from opts.WorkDir rather than the process's cwd.
func loadCompose(ctx context.Context, opts Options, interpolate bool) (*types.Project, *sources, error) {
	wd, err := workDir(opts)
	if err != nil {
		return nil, nil, err
	}
	src := &sources{workDir: wd, environ: environMap(opts.Environ)}
	abs := func(p string) string {
		if p == "-" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(wd, p)
	}

	var files []string
	for _, f := range opts.Files {
		if f == "" {
			return nil, nil, exit.Usagef("-f/--file is empty: pass the path of a compose file")
		}
		if f == "-" {
			return nil, nil, exit.Usagef("-f - (compose file on stdin) is not supported: slipway reads the files again later; pass a path")
		}
		p := abs(f)
		if err := checkFile(p); err != nil {
			return nil, nil, exit.Usagef("compose file %s (-f %s): %v", p, f, err)
		}
		files = append(files, p)
	}
	var envFiles []string
	for _, f := range opts.EnvFiles {
		p := abs(f)
		if err := checkFile(p); err != nil {
			return nil, nil, exit.Usagef("env file %s (--env-file %s): %v", p, f, err)
		}
		envFiles = append(envFiles, p)
	}
	projectDir := ""
	if opts.ProjectDir != "" {
		projectDir = abs(opts.ProjectDir)
		if st, err := os.Stat(projectDir); err != nil || !st.IsDir() {
			return nil, nil, exit.Usagef("--project-directory %s is not a directory", projectDir)
		}
	}
	// Where .env and compose files are searched before a compose file is known:
	// the project directory, else the working directory (docker compose: cwd).
	searchDir := projectDir
	if searchDir == "" {
		searchDir = wd
	}

	env := make([]string, 0, len(src.environ)+1)
	for k, v := range src.environ {
		env = append(env, k+"="+v)
	}
	env = append(env, "PWD="+wd)
	// compose-go consults the process for this one; slipway takes opts.Environ.
	dotEnv := true
	if v, ok := src.environ[consts.ComposeDisableDefaultEnvFile]; ok && len(envFiles) == 0 {
		if b, err := strconv.ParseBool(v); err == nil && b {
			dotEnv = false
		}
	}
	envSteps := func() []composecli.ProjectOptionsFn {
		if !dotEnv {
			return nil
		}
		return []composecli.ProjectOptionsFn{composecli.WithEnvFiles(envFiles...), limitEnvFileSize, wrapStep("reading env file", composecli.WithDotEnv)}
	}

	var fns []composecli.ProjectOptionsFn
	fns = append(fns,
		setWorkingDir(searchDir),
		composecli.WithEnv(env),
	)
	fns = append(fns, envSteps()...) // .env can set COMPOSE_FILE, COMPOSE_PROJECT_NAME, COMPOSE_PROFILES
	fns = append(fns,
		withConfigFileEnv(wd),
		composecli.WithDefaultConfigPath,
		requireConfig(searchDir),
		limitFileSize,
		setWorkingDir(projectDir), // "" lets compose-go use the first file's directory
	)
	fns = append(fns, envSteps()...) // the project directory's .env, now that it is known
	fns = append(fns,
		composecli.WithDefaultProfiles(opts.Profiles...),
		func(o *composecli.ProjectOptions) error {
			src.files = append([]string(nil), o.ConfigPaths...)
			src.envFiles = append([]string(nil), o.EnvFiles...)
			src.profiles = activeProfiles(opts.Profiles, o.Environment[consts.ComposeProfiles])
			return nil
		},
	)
	// The name is settled here, with compose's precedence, and handed to the
	// loader as explicit: compose-go would otherwise parse every file twice
	// more just to look for a name: key.
	fns = append(fns, func(o *composecli.ProjectOptions) error {
		name, from := opts.ProjectName, "-p/--project-name"
		if name == "" {
			var err error
			if name, from, err = projectNameOf(ctx, o); err != nil {
				return err
			}
		}
		if err := composecli.WithName(name)(o); err != nil {
			return exit.Usagef("%s: %v", from, err)
		}
		src.nameFrom = from
		return nil
	})
	if interpolate {
		fns = append(fns, composecli.WithResolvedPaths(true))
	} else {
		fns = append(fns,
			composecli.WithInterpolation(false),
			composecli.WithResolvedPaths(false),
			composecli.WithoutEnvironmentResolution,
			composecli.WithoutLabelsResolution,
			// The name needs the environment (COMPOSE_PROJECT_NAME, name:
			// ${VAR}); nothing else may: normalisation copies variables into
			// `environment: [VAR]` and build args, and the agent's values must
			// not land in the deployable file.
			dropEnvironment,
		)
	}

	po, err := composecli.NewProjectOptions(files, fns...)
	if err != nil {
		return nil, src, usageErr(ctx, "", err)
	}
	for _, f := range po.ConfigPaths {
		if err := precheckComposeFile(f); err != nil {
			return nil, src, err
		}
	}
	project, err := loadProjectSafely(ctx, po)
	if err != nil {
		return nil, src, usageErr(ctx, strings.Join(src.files, ", "), err)
	}
	return project, src, nil
}

// checkFile says why p cannot be read as a file, or nil.
func checkFile(p string) error {
	st, err := os.Stat(p)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return errors.New("no such file")
	case err != nil:
		return err
	case st.IsDir():
		return errors.New("is a directory, not a file")
	}
	return nil
}

func activeProfiles(flag []string, env string) []string {
	if len(flag) > 0 {
		return append([]string(nil), flag...)
	}
	var out []string
	for _, p := range strings.Split(env, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func setWorkingDir(dir string) composecli.ProjectOptionsFn {
	return func(o *composecli.ProjectOptions) error {
		o.WorkingDir = dir
		return nil
	}
}

func wrapStep(what string, fn composecli.ProjectOptionsFn) composecli.ProjectOptionsFn {
	return func(o *composecli.ProjectOptions) error {
		if err := fn(o); err != nil {
			return exit.Usagef("%s: %v", what, err)
		}
		return nil
	}
}

// withConfigFileEnv is compose-go's WithConfigFileEnv with relative entries
// taken from wd instead of the process's cwd.
func withConfigFileEnv(wd string) composecli.ProjectOptionsFn {
	return func(o *composecli.ProjectOptions) error {
		if len(o.ConfigPaths) > 0 {
			return nil
		}
		f, ok := o.Environment[consts.ComposeFilePath]
		if !ok || f == "" {
			return nil
		}
		sep := o.Environment[consts.ComposePathSeparator]
		if sep == "" {
			sep = string(os.PathListSeparator)
		}
		for _, entry := range strings.Split(f, sep) {
			if entry == "" {
				continue
			}
			p := entry
			if !filepath.IsAbs(p) {
				p = filepath.Join(wd, p)
			}
			if err := checkFile(p); err != nil {
				return exit.Usagef("compose file %s (from COMPOSE_FILE=%s): %v", p, f, err)
			}
			o.ConfigPaths = append(o.ConfigPaths, p)
		}
		return nil
	}
}

// requireConfig turns "no file found" into an error naming what was searched.
func requireConfig(searchDir string) composecli.ProjectOptionsFn {
	return func(o *composecli.ProjectOptions) error {
		if len(o.ConfigPaths) > 0 {
			return nil
		}
		return exit.Usagef("no compose file found: looked for %s in %s and its parent directories; "+
			"pass -f FILE, set COMPOSE_FILE, or run slipway in the project's directory",
			strings.Join(composecli.DefaultFileNames, ", "), searchDir)
	}
}

// dropEnvironment empties the loader's environment (see loadCompose); the
// name was settled before.
func dropEnvironment(o *composecli.ProjectOptions) error {
	o.Environment = types.Mapping{}
	return nil
}

// topLevelName finds a name: key at the start of a line; files without one
// (most) need no YAML parse to learn that they set no name.
var topLevelName = regexp.MustCompile(`(?m)^["']?name["']?[ \t]*:`)

// simpleName is a top-level name: whose value needs no YAML parser: a plain
// scalar of name characters, maybe followed by a comment.
var simpleName = regexp.MustCompile(`(?m)^name[ \t]*:[ \t]*([A-Za-z0-9_.-]+)[ \t]*(?:#.*)?\r?$`)

// simpleNameOf reads name: without parsing a single-document file that
// has exactly one top-level name: line of the simple form; a full parse of a
// large file costs more than the rest of the name lookup together.
func simpleNameOf(data []byte) (string, bool) {
	if bytes.HasPrefix(data, []byte("---")) || bytes.Contains(data, []byte("\n---")) {
		return "", false
	}
	if len(topLevelName.FindAllIndex(data, 2)) != 1 {
		return "", false
	}
	m := simpleName.FindSubmatch(data)
	if m == nil {
		return "", false
	}
	return string(m[1]), true
}

// projectNameOf mirrors compose's precedence for a name not given with -p:
// COMPOSE_PROJECT_NAME, then the last name: in the files (interpolated and
// normalised), then, where compose takes the project directory's name,
// slipway's stable default (see defaultProjectName). It returns where the
// name came from, for errors and the log.
func projectNameOf(ctx context.Context, o *composecli.ProjectOptions) (name, from string, err error) {
	if n := o.Environment[consts.ComposeProjectName]; n != "" {
		return n, "COMPOSE_PROJECT_NAME", nil
	}
	var fromYAML, file string
	for _, f := range o.ConfigPaths {
		data, err := os.ReadFile(f)
		if err != nil {
			return "", "", exit.Usagef("reading compose file %s: %v", f, err)
		}
		flow := len(bytes.TrimSpace(data)) > 0 && bytes.TrimSpace(data)[0] == '{'
		if !flow && !topLevelName.Match(data) {
			continue
		}
		if n, ok := simpleNameOf(data); ok && !flow {
			fromYAML, file = n, f
			continue
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var doc struct {
				Name string `yaml:"name"`
			}
			if err := dec.Decode(&doc); err != nil {
				break // EOF, or a syntax error the loader reports with its line
			}
			if doc.Name != "" {
				fromYAML, file = doc.Name, f
			}
		}
	}
	if fromYAML != "" {
		n, err := template.Substitute(fromYAML, template.Mapping(func(k string) (string, bool) {
			v, ok := o.Environment[k]
			return v, ok
		}))
		if err != nil {
			return "", "", exit.Usagef("compose file %s: name: %q: %v", file, fromYAML, err)
		}
		if n = loader.NormalizeProjectName(n); n != "" {
			return n, "name: in " + file, nil
		}
	}
	dir := o.WorkingDir
	if dir == "" && len(o.ConfigPaths) > 0 {
		dir = filepath.Dir(o.ConfigPaths[0])
	}
	name, from = defaultProjectName(ctx, dir, o.Environment)
	return name, from, nil
}

// defaultProjectName is the name of a project nothing names. Where the
// project directory is the root of a git checkout, its folder is the CI's
// workspace (shop_main, shop_PR-1, shop_main@2), not the app: the
// repository's name is used instead, from the origin remote, else Jenkins'
// GIT_URL, so every job, branch and agent of one app deploys one project
// and pushes to one set of image repositories. Otherwise (a subdirectory of
// the checkout, no git, no remote) it is compose's rule: the directory's
// name. Both are normalised as compose normalises project names.
func defaultProjectName(ctx context.Context, dir string, env map[string]string) (name, from string) {
	if id := gitinfo.RepoIdentity(ctx, dir, env); id.Name != "" {
		if n := loader.NormalizeProjectName(id.Name); n != "" {
			return n, "repository name from " + id.From + ", as " + dir + " is the checkout's root"
		}
	}
	return loader.NormalizeProjectName(filepath.Base(dir)), "project directory " + dir
}

// usageErr makes a load error exit 2 and names the compose files when the
// message does not already name one.
func usageErr(ctx context.Context, files string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var e *exit.Error
	if errors.As(err, &e) {
		return err
	}
	var list []string
	if files != "" {
		list = strings.Split(files, ", ")
	}
	msg := withLocation(err.Error(), list)
	if files != "" && !mentionsAny(msg, list) {
		return exit.With(exit.Usage, fmt.Errorf("loading compose file %s: %w", files, withMsg{msg, err}))
	}
	return exit.With(exit.Usage, fmt.Errorf("loading compose project: %w", withMsg{msg, err}))
}

func mentionsAny(msg string, files []string) bool {
	for _, f := range files {
		if f != "" && strings.Contains(msg, f) {
			return true
		}
	}
	return false
}

// withMsg replaces an error's text but keeps it for errors.Is/As.
type withMsg struct {
	msg string
	err error
}

func (e withMsg) Error() string { return e.msg }
func (e withMsg) Unwrap() error { return e.err }

// loadProjectSafely turns a panic inside compose-go (a loader bug on some
// input) into a bad-input error instead of a crash with a stack trace.
func loadProjectSafely(ctx context.Context, po *composecli.ProjectOptions) (p *types.Project, err error) {
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("the compose loader failed on this input (%v); check the file with 'docker compose config'", r)
		}
	}()
	return po.LoadProject(ctx)
}
