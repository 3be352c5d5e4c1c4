package plan

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/exit"
)

func mustLoad(t *testing.T, opts Options) *Plan {
	t.Helper()
	p, err := load(t, opts)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if err := p.Manifest.Validate("plan"); err != nil {
		t.Fatalf("the planned manifest does not validate: %v", err)
	}
	return p
}

func builds(p *Plan) []string {
	var out []string
	for _, b := range p.Builds {
		out = append(out, b.Service)
	}
	return out
}

func build(t *testing.T, p *Plan, name string) Build {
	t.Helper()
	for _, b := range p.Builds {
		if b.Service == name {
			return b
		}
	}
	t.Fatalf("no build for %s in %v", name, builds(p))
	return Build{}
}

// wantUsage checks that err exits 2 and its message holds every part.
func wantUsage(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want exit 2 with %q", parts)
	}
	t.Logf("error: %v", err)
	if exit.Code(err) != exit.Usage {
		t.Errorf("exit code %d, want 2; error: %v", exit.Code(err), err)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not mention %q", err, p)
		}
	}
}

func TestLoadManifest(t *testing.T) {
	dir := repoFrom(t, "basic")
	git(t, dir, "remote", "add", "origin", "https://ci:token@git.example.com/shop.git")
	head := git(t, dir, "rev-parse", "HEAD")
	now := time.Date(2025, 3, 4, 5, 6, 7, 0, time.FixedZone("x", 3600))
	p := mustLoad(t, Options{WorkDir: dir, Now: now, Environ: env("BUILD_NUMBER", "12", "BUILD_URL", "https://ci.example/job/12/")})
	m := p.Manifest
	if m.Project != "shop" {
		t.Errorf("project %q, want shop: the origin remote's repository name", m.Project)
	}
	if !reflect.DeepEqual(m.ComposeFiles, []string{"compose.yaml"}) || m.ProjectDir != "." {
		t.Errorf("compose files %q project dir %q, want [compose.yaml] and .", m.ComposeFiles, m.ProjectDir)
	}
	if m.Commit != head || m.ShortCommit != head[:12] || m.Branch != "main" || m.Dirty {
		t.Errorf("git fields: commit %q short %q branch %q dirty %v", m.Commit, m.ShortCommit, m.Branch, m.Dirty)
	}
	if m.BuildNumber != "12" || m.BuildURL != "https://ci.example/job/12/" {
		t.Errorf("build number %q url %q", m.BuildNumber, m.BuildURL)
	}
	if m.Created != "2025-03-04T04:06:07Z" {
		t.Errorf("created %q, want RFC3339 UTC", m.Created)
	}
	if m.Source != "https://git.example.com/shop.git" {
		t.Errorf("source %q, want the origin URL without credentials", m.Source)
	}
	if got := m.Names(); !reflect.DeepEqual(got, []string{"api", "base", "worker"}) {
		t.Errorf("services %v, want api base worker (db has no build:)", got)
	}
	api := m.Services["api"]
	if api.Image != "reg.example:5000/shop/api" || !reflect.DeepEqual(api.Tags, []string{head, "latest"}) {
		t.Errorf("api: %+v", api)
	}
	if m.Services["base"].Image != m.Project+"-base" {
		t.Errorf("base image %q, want <project>-base", m.Services["base"].Image)
	}
	// Builds: base first (api depends on it, worker uses it as a context).
	if got := builds(p); !reflect.DeepEqual(got, []string{"base", "api", "worker"}) {
		t.Errorf("build order %v", got)
	}
	w := build(t, p, "worker")
	if w.Config.Context != filepath.Join(dir, "api") || w.Config.Dockerfile != "Dockerfile.worker" {
		t.Errorf("worker build config: context %q dockerfile %q", w.Config.Context, w.Config.Dockerfile)
	}
	if !reflect.DeepEqual(w.DependsOn, []string{"base"}) || !reflect.DeepEqual(build(t, p, "api").DependsOn, []string{"base"}) {
		t.Errorf("dependencies: worker %v api %v", w.DependsOn, build(t, p, "api").DependsOn)
	}
	if refs := build(t, p, "api").Refs(); refs[0] != "reg.example:5000/shop/api:"+head {
		t.Errorf("refs %v", refs)
	}
	if p.Project == nil || len(p.Project.Services) != 4 {
		t.Errorf("project should hold all 4 services")
	}
}

func TestRegistryAndTags(t *testing.T) {
	dir := repoFrom(t, "basic")
	git(t, dir, "checkout", "-q", "-b", "feature/Login")
	p := mustLoad(t, Options{WorkDir: dir, Registry: "10.213.0.1:5443/team", Tags: []string{"{{.ShortCommit}}", "{{.Branch}}"}})
	base := p.Manifest.Services["base"]
	head := git(t, dir, "rev-parse", "HEAD")
	if base.Image != "10.213.0.1:5443/team/"+p.Manifest.Project+"-base" {
		t.Errorf("image %q", base.Image)
	}
	if !reflect.DeepEqual(base.Tags, []string{head[:12], "feature-Login"}) {
		t.Errorf("tags %q", base.Tags)
	}
	if p.Manifest.Branch != "feature/Login" {
		t.Errorf("manifest branch %q, want the branch as git names it", p.Manifest.Branch)
	}
	// Not the default branch: no latest by default.
	p = mustLoad(t, Options{WorkDir: dir})
	if tags := p.Manifest.Services["base"].Tags; !reflect.DeepEqual(tags, []string{head}) {
		t.Errorf("default tags off the default branch %q, want only the commit", tags)
	}
}

func TestDirtyTree(t *testing.T) {
	dir := repoFrom(t, "basic")
	// Untracked files (slipway's own outputs, for one) are not dirt.
	writeFile(t, filepath.Join(dir, "slipway-release.json"), "{}")
	mustLoad(t, Options{WorkDir: dir})

	writeFile(t, filepath.Join(dir, "api", "Dockerfile"), "FROM scratch\nLABEL changed=1\n")
	_, err := load(t, Options{WorkDir: dir})
	wantUsage(t, err, "working tree has uncommitted changes to tracked files", "api/Dockerfile", "--allow-dirty")

	p := mustLoad(t, Options{WorkDir: dir, AllowDirty: true})
	if !p.Manifest.Dirty {
		t.Error("manifest not marked dirty")
	}
	for _, s := range p.Manifest.Services {
		for _, tag := range s.Tags {
			if !strings.HasSuffix(tag, "-dirty") {
				t.Errorf("tag %q lacks -dirty", tag)
			}
		}
	}
}

func TestMultipleFilesMerge(t *testing.T) {
	dir := repoFrom(t, "merge")
	p := mustLoad(t, Options{WorkDir: dir, Files: []string{"compose.yaml", "compose.prod.yaml"}})
	if got := p.Manifest.ComposeFiles; !reflect.DeepEqual(got, []string{"compose.yaml", "compose.prod.yaml"}) {
		t.Errorf("compose files %q, want both in order", got)
	}
	if img := p.Manifest.Services["api"].Image; img != "reg.example:5000/shop/api" {
		t.Errorf("api image %q, want the later file's", img)
	}
	api := p.Project.Services["api"]
	if *api.Environment["A"] != "1" || *api.Environment["B"] != "2" {
		t.Errorf("environment not merged: %v", api.Environment)
	}
	if len(api.Ports) != 2 {
		t.Errorf("ports not merged: %v", api.Ports)
	}
	if got := builds(p); !reflect.DeepEqual(got, []string{"api", "worker"}) {
		t.Errorf("builds %v", got)
	}
	// Order matters: the last file wins.
	p = mustLoad(t, Options{WorkDir: dir, Files: []string{"compose.prod.yaml", "compose.yaml"}})
	if img := p.Manifest.Services["api"].Image; img != "shop/api" {
		t.Errorf("api image %q with the files swapped, want shop/api", img)
	}
}

func TestComposeFileEnv(t *testing.T) {
	dir := repoFrom(t, "merge")
	p := mustLoad(t, Options{WorkDir: dir, Environ: env("COMPOSE_FILE", "compose.yaml:compose.prod.yaml")})
	if img := p.Manifest.Services["api"].Image; img != "reg.example:5000/shop/api" {
		t.Errorf("COMPOSE_FILE not merged: api image %q", img)
	}
	p = mustLoad(t, Options{WorkDir: dir, Environ: env("COMPOSE_FILE", "compose.yaml,compose.prod.yaml", "COMPOSE_PATH_SEPARATOR", ",")})
	if len(p.Manifest.ComposeFiles) != 2 {
		t.Errorf("COMPOSE_PATH_SEPARATOR ignored: %q", p.Manifest.ComposeFiles)
	}
	// -f wins over COMPOSE_FILE.
	p = mustLoad(t, Options{WorkDir: dir, Files: []string{"compose.yaml"}, Environ: env("COMPOSE_FILE", "compose.prod.yaml")})
	if img := p.Manifest.Services["api"].Image; img != "shop/api" {
		t.Errorf("-f did not win over COMPOSE_FILE: %q", img)
	}
	_, err := load(t, Options{WorkDir: dir, Environ: env("COMPOSE_FILE", "nope.yaml")})
	wantUsage(t, err, "nope.yaml", "COMPOSE_FILE")
}

func TestDefaultDiscovery(t *testing.T) {
	dir := repoFrom(t, "discover")
	p := mustLoad(t, Options{WorkDir: dir})
	if got := p.Manifest.ComposeFiles; !reflect.DeepEqual(got, []string{"docker-compose.yml", "docker-compose.override.yml"}) {
		t.Errorf("discovered %q, want the file and its override", got)
	}
	if got := builds(p); !reflect.DeepEqual(got, []string{"app", "tools"}) {
		t.Errorf("builds %v", got)
	}
	// From a subdirectory, compose searches the parents; the project is
	// still named after (and rooted in) the directory of the file.
	sub := filepath.Join(dir, "sub", "deeper")
	p2 := mustLoad(t, Options{WorkDir: sub})
	if p2.Manifest.Project != p.Manifest.Project {
		t.Errorf("project from a subdirectory %q, want %q", p2.Manifest.Project, p.Manifest.Project)
	}
	if got := p2.Manifest.ComposeFiles[0]; got != filepath.Join(dir, "docker-compose.yml") {
		t.Errorf("compose file outside the working directory %q, want it absolute", got)
	}
	if build(t, p2, "app").Config.Context != filepath.Join(dir, "app") {
		t.Errorf("context %q", build(t, p2, "app").Config.Context)
	}
}

func TestNoComposeFile(t *testing.T) {
	dir := repoFrom(t, "")
	_, err := load(t, Options{WorkDir: dir})
	wantUsage(t, err, "no compose file found", "compose.yaml", "docker-compose.yml", dir, "-f")

	_, err = load(t, Options{WorkDir: dir, Files: []string{"missing.yml"}})
	wantUsage(t, err, filepath.Join(dir, "missing.yml"), "no such file")

	_, err = load(t, Options{WorkDir: dir, Files: []string{"."}})
	wantUsage(t, err, "is a directory")
}

func TestEnvFiles(t *testing.T) {
	dir := repoFrom(t, "envfiles")
	// .env in the project directory.
	p := mustLoad(t, Options{WorkDir: dir})
	if img := p.Manifest.Services["app"].Image; img != "dotenv.example:5000/app" {
		t.Errorf(".env not used: image %q", img)
	}
	if got := p.Manifest.EnvFiles; !reflect.DeepEqual(got, []string{".env"}) {
		t.Errorf("env files %q, want [.env]", got)
	}
	if v := p.Project.Services["app"].Build.Args["VERSION"]; v == nil || *v != "1.2.3" {
		t.Errorf("build arg VERSION %v, want 1.2.3 from .env", v)
	}
	// The process environment wins over .env.
	p = mustLoad(t, Options{WorkDir: dir, Environ: env("REGISTRY", "osenv.example")})
	if img := p.Manifest.Services["app"].Image; img != "osenv.example/app" {
		t.Errorf("environment did not win over .env: %q", img)
	}
	// --env-file replaces .env.
	p = mustLoad(t, Options{WorkDir: dir, EnvFiles: []string{"prod.env"}})
	if img := p.Manifest.Services["app"].Image; img != "prod.example:5000/app" {
		t.Errorf("--env-file not used: %q", img)
	}
	if v := p.Project.Services["app"].Build.Args["VERSION"]; v == nil || *v != "0.0.0" {
		t.Errorf("with --env-file, .env still read: VERSION %v", v)
	}
	if got := p.Manifest.EnvFiles; !reflect.DeepEqual(got, []string{"prod.env"}) {
		t.Errorf("env files %q", got)
	}
	_, err := load(t, Options{WorkDir: dir, EnvFiles: []string{"missing.env"}})
	wantUsage(t, err, "missing.env", "--env-file")

	// COMPOSE_DISABLE_ENV_FILE turns the default .env off.
	p = mustLoad(t, Options{WorkDir: dir, Environ: env("COMPOSE_DISABLE_ENV_FILE", "1")})
	if img := p.Manifest.Services["app"].Image; img != "local.example/app" {
		t.Errorf("COMPOSE_DISABLE_ENV_FILE ignored: %q", img)
	}
}

func TestProjectName(t *testing.T) {
	dir := repoFrom(t, "envfiles")
	if p := mustLoad(t, Options{WorkDir: dir, Environ: env("COMPOSE_PROJECT_NAME", "fromenv")}); p.Manifest.Project != "fromenv" {
		t.Errorf("COMPOSE_PROJECT_NAME ignored: %q", p.Manifest.Project)
	}
	if p := mustLoad(t, Options{WorkDir: dir, ProjectName: "flag", Environ: env("COMPOSE_PROJECT_NAME", "fromenv")}); p.Manifest.Project != "flag" {
		t.Errorf("-p did not win: %q", p.Manifest.Project)
	}
	writeFile(t, filepath.Join(dir, ".env"), "COMPOSE_PROJECT_NAME=dotenvname\n")
	if p := mustLoad(t, Options{WorkDir: dir, AllowDirty: true}); p.Manifest.Project != "dotenvname" {
		t.Errorf("COMPOSE_PROJECT_NAME from .env ignored: %q", p.Manifest.Project)
	}
	_, err := load(t, Options{WorkDir: dir, ProjectName: "Bad Name", AllowDirty: true})
	wantUsage(t, err, "-p/--project-name", "invalid project name")
	_, err = load(t, Options{WorkDir: dir, AllowDirty: true, Environ: env("COMPOSE_PROJECT_NAME", "Bad.Name")})
	wantUsage(t, err, "COMPOSE_PROJECT_NAME", "invalid project name")

	// name: in the files, interpolated and normalised; the last file's wins.
	writeFile(t, filepath.Join(dir, ".env"), "APP=Shop\n")
	writeFile(t, filepath.Join(dir, "compose.yaml"), "name: ${APP}-One\n"+readFile(t, filepath.Join(dir, "compose.yaml")))
	writeFile(t, filepath.Join(dir, "two.yaml"), "# second\nname: two\n")
	if p := mustLoad(t, Options{WorkDir: dir, AllowDirty: true}); p.Manifest.Project != "shop-one" {
		t.Errorf("name: from the file: %q, want shop-one", p.Manifest.Project)
	}
	if p := mustLoad(t, Options{WorkDir: dir, AllowDirty: true, Files: []string{"compose.yaml", "two.yaml"}}); p.Manifest.Project != "two" {
		t.Errorf("name: from the last file: %q, want two", p.Manifest.Project)
	}
	if p := mustLoad(t, Options{WorkDir: dir, AllowDirty: true, Environ: env("COMPOSE_PROJECT_NAME", "envwins")}); p.Manifest.Project != "envwins" {
		t.Errorf("COMPOSE_PROJECT_NAME did not win over name: %q", p.Manifest.Project)
	}
	writeFile(t, filepath.Join(dir, "compose.yaml"), strings.Replace(readFile(t, filepath.Join(dir, "compose.yaml")), "${APP}-One", "${NONAME:?set NONAME}", 1))
	_, err = load(t, Options{WorkDir: dir, AllowDirty: true})
	wantUsage(t, err, "NONAME", "name:")
}

func TestInterpolation(t *testing.T) {
	dir := repoFrom(t, "required")
	_, err := load(t, Options{WorkDir: dir})
	wantUsage(t, err, "REGISTRY", "set REGISTRY to your registry host", filepath.Join(dir, "compose.yaml"))

	p := mustLoad(t, Options{WorkDir: dir, Environ: env("REGISTRY", "reg.example")})
	if img := p.Manifest.Services["app"].Image; img != "reg.example/app" {
		t.Errorf("image %q", img)
	}
	// Defaults apply when unset.
	p = mustLoad(t, Options{WorkDir: repoFrom(t, "envfiles"), Environ: env("COMPOSE_DISABLE_ENV_FILE", "true")})
	if v := p.Project.Services["app"].Build.Args["VERSION"]; v == nil || *v != "0.0.0" {
		t.Errorf("${VERSION:-0.0.0} gave %v", v)
	}
}

func TestProfiles(t *testing.T) {
	dir := repoFrom(t, "profiles")
	p := mustLoad(t, Options{WorkDir: dir})
	if got := builds(p); !reflect.DeepEqual(got, []string{"app"}) {
		t.Errorf("without a profile: %v", got)
	}
	p = mustLoad(t, Options{WorkDir: dir, Profiles: []string{"debug"}})
	if got := builds(p); !reflect.DeepEqual(got, []string{"app", "debug"}) {
		t.Errorf("with --profile debug: %v", got)
	}
	if !reflect.DeepEqual(p.Manifest.Profiles, []string{"debug"}) {
		t.Errorf("manifest profiles %q", p.Manifest.Profiles)
	}
	p = mustLoad(t, Options{WorkDir: dir, Environ: env("COMPOSE_PROFILES", "debug, other")})
	if got := builds(p); !reflect.DeepEqual(got, []string{"app", "debug"}) {
		t.Errorf("with COMPOSE_PROFILES: %v", got)
	}
	if !reflect.DeepEqual(p.Manifest.Profiles, []string{"debug", "other"}) {
		t.Errorf("manifest profiles from COMPOSE_PROFILES %q", p.Manifest.Profiles)
	}
	_, err := load(t, Options{WorkDir: dir, Services: []string{"debug"}})
	wantUsage(t, err, "--service debug", "--profile debug")
}

func TestExtends(t *testing.T) {
	dir := repoFrom(t, "extends")
	p := mustLoad(t, Options{WorkDir: dir})
	api := build(t, p, "api")
	if api.Config.Context != filepath.Join(dir, "common", "ctx") {
		t.Errorf("extended context %q, want it relative to the extended file", api.Config.Context)
	}
	if a := api.Config.Args["FLAVOUR"]; a == nil || *a != "base" {
		t.Errorf("extended args %v", api.Config.Args)
	}
	local := build(t, p, "local")
	if local.Config.Dockerfile != "Dockerfile.local" || local.Config.Context != api.Config.Context {
		t.Errorf("local: context %q dockerfile %q", local.Config.Context, local.Config.Dockerfile)
	}
	if r := p.Project.Services["local"].Environment["ROLE"]; r == nil || *r != "api" {
		t.Errorf("same-file extends lost environment: %v", p.Project.Services["local"].Environment)
	}
}

func TestInclude(t *testing.T) {
	dir := repoFrom(t, "include")
	p := mustLoad(t, Options{WorkDir: dir})
	if got := builds(p); !reflect.DeepEqual(got, []string{"worker", "web"}) {
		t.Errorf("build order %v, want worker (included, depended on) first", got)
	}
	if c := build(t, p, "worker").Config.Context; c != filepath.Join(dir, "sub", "worker") {
		t.Errorf("included context %q, want it relative to the included file", c)
	}
	if img := p.Manifest.Services["worker"].Image; img != "shop/worker" {
		t.Errorf("included image %q", img)
	}
	p = mustLoad(t, Options{WorkDir: dir, Environ: env("WORKER_IMAGE", "reg.example/w:1")})
	if img := p.Manifest.Services["worker"].Image; img != "reg.example/w" {
		t.Errorf("interpolation in an included file: %q", img)
	}
}

func TestAnchors(t *testing.T) {
	dir := repoFrom(t, "anchors")
	p := mustLoad(t, Options{WorkDir: dir})
	a, b := build(t, p, "a"), build(t, p, "b")
	if a.Config.Context != filepath.Join(dir, "app") || b.Config.Context != a.Config.Context {
		t.Errorf("contexts %q %q", a.Config.Context, b.Config.Context)
	}
	if a.Config.Dockerfile != "Dockerfile" || b.Config.Dockerfile != "Dockerfile.b" {
		t.Errorf("dockerfiles %q %q", a.Config.Dockerfile, b.Config.Dockerfile)
	}
	if v := b.Config.Args["A"]; v == nil || *v != "1" {
		t.Errorf("merged anchor args %v", b.Config.Args)
	}
	if p.Project.Services["b"].Restart != "always" {
		t.Errorf("merge key lost restart")
	}
}

func TestOrderAndServiceFilter(t *testing.T) {
	dir := repoFrom(t, "order")
	p := mustLoad(t, Options{WorkDir: dir})
	if got := builds(p); !reflect.DeepEqual(got, []string{"admin", "base", "api", "web"}) {
		t.Errorf("order %v", got)
	}
	if d := build(t, p, "web").DependsOn; !reflect.DeepEqual(d, []string{"api"}) {
		t.Errorf("web depends on %v, want [api] (db is not built)", d)
	}
	// --service api brings base along: api is built FROM it.
	p = mustLoad(t, Options{WorkDir: dir, Services: []string{"api"}})
	if got := builds(p); !reflect.DeepEqual(got, []string{"base", "api"}) {
		t.Errorf("--service api: %v", got)
	}
	// --service web alone: depends_on is a run-time relation, not a build input.
	p = mustLoad(t, Options{WorkDir: dir, Services: []string{"web"}})
	if got := builds(p); !reflect.DeepEqual(got, []string{"web"}) {
		t.Errorf("--service web: %v", got)
	}
	if len(build(t, p, "web").DependsOn) != 0 {
		t.Errorf("web depends on services not in the plan: %v", build(t, p, "web").DependsOn)
	}
	names := p.Manifest.Names()
	sort.Strings(names)
	if !reflect.DeepEqual(names, []string{"web"}) {
		t.Errorf("manifest services %v", names)
	}

	_, err := load(t, Options{WorkDir: dir, Services: []string{"nope"}})
	wantUsage(t, err, "--service nope", "no such service", "admin, api, base, web")
	_, err = load(t, Options{WorkDir: dir, Services: []string{"db"}})
	wantUsage(t, err, `service "db" has no build: section`, "admin, api, base, web")
}

func TestBadInput(t *testing.T) {
	dir := repoFrom(t, "bad")
	f := func(name string) string { return filepath.Join(dir, name) }
	for _, tc := range []struct {
		file  string
		parts []string
	}{
		{"syntax.yaml", []string{f("syntax.yaml"), "line 3"}},
		{"schema.yaml", []string{f("schema.yaml"), "ports", "line 4"}},
		{"nocontext.yaml", []string{`service "api"`, "build context", f("missing")}},
		{"nodockerfile.yaml", []string{`service "api"`, "Dockerfile", f("Dockerfile.nope")}},
		{"cycle.yaml", []string{"cycle", "a -> b -> a"}},
		{"nobuild.yaml", []string{"no service", "build: section", f("nobuild.yaml")}},
		{"upper.yaml", []string{`service "api"`, "Shop/API:1.0", "lowercase"}},
		{"aliascycle.yaml", []string{f("aliascycle.yaml"), "line 4", "*api", "cycle"}},
		{"clash.yaml", []string{`"a" and "b"`, "shop/app", "different build: sections"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			_, err := load(t, Options{WorkDir: dir, Files: []string{tc.file}})
			wantUsage(t, err, tc.parts...)
		})
	}
}

func TestNotAGitRepository(t *testing.T) {
	dir := t.TempDir()
	copyTree(t, filepath.Join("testdata", "basic"), dir)
	t.Setenv("GIT_CEILING_DIRECTORIES", filepath.Dir(dir))
	_, err := load(t, Options{WorkDir: dir})
	wantUsage(t, err, "not inside a git repository", "git init")
}

func TestDetachedJenkinsCheckout(t *testing.T) {
	dir := repoFrom(t, "basic")
	head := git(t, dir, "rev-parse", "HEAD")
	git(t, dir, "checkout", "-q", "--detach")
	p := mustLoad(t, Options{WorkDir: dir, Environ: env("GIT_COMMIT", head, "BRANCH_NAME", "main", "BUILD_NUMBER", "5"),
		Tags: []string{"{{.Commit}}", "{{.Branch}}-{{.BuildNumber}}", "{{if eq .Branch .DefaultBranch}}latest{{end}}"}})
	if tags := p.Manifest.Services["api"].Tags; !reflect.DeepEqual(tags, []string{head, "main-5", "latest"}) {
		t.Errorf("tags %q", tags)
	}
	// Detached without CI variables: .Branch is empty, and saying so is the error.
	_, err := load(t, Options{WorkDir: dir, Tags: []string{"{{.Branch}}"}})
	wantUsage(t, err, ".Branch", "detached")
}

func TestLoadProjectUninterpolated(t *testing.T) {
	dir := repoFrom(t, "envfiles")
	writeFile(t, filepath.Join(dir, "app.env"), "FROM_FILE=1\n")
	writeFile(t, filepath.Join(dir, "compose.override.yaml"), "services:\n  app:\n    env_file: app.env\n")
	opts := Options{WorkDir: dir, Environ: env("FROM_AGENT", "agent-secret", "REGISTRY", "agent.example")}

	p, err := LoadProject(context.Background(), opts, false)
	if err != nil {
		t.Fatal(err)
	}
	app := p.Services["app"]
	if app.Image != "${REGISTRY:-local.example}/app:${TAG:-ignored}" {
		t.Errorf("image %q, want ${VAR} kept as written", app.Image)
	}
	if app.Build.Context != "." {
		t.Errorf("context %q, want the relative path as written", app.Build.Context)
	}
	if v, ok := app.Environment["FROM_AGENT"]; !ok || v != nil {
		t.Errorf("environment FROM_AGENT = %v, want it left for the server (no value)", v)
	}
	if len(app.EnvFiles) != 1 || app.EnvFiles[0].Path != "app.env" {
		t.Errorf("env_file %+v, want app.env kept, relative", app.EnvFiles)
	}
	if _, ok := app.Environment["FROM_FILE"]; ok {
		t.Error("env_file was inlined into environment")
	}
	if a := app.Build.Args["VERSION"]; a == nil || *a != "${VERSION:-0.0.0}" {
		t.Errorf("build arg %v", a)
	}
	if p.Name != filepath.Base(dir) && p.Name != strings.ToLower(filepath.Base(dir)) {
		t.Errorf("name %q", p.Name)
	}
	y, err := p.MarshalYAML()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(y), "agent-secret") || strings.Contains(string(y), "agent.example") {
		t.Errorf("the agent's environment leaked into the model:\n%s", y)
	}

	// The interpolated load of the same options resolves everything.
	p, err = LoadProject(context.Background(), opts, true)
	if err != nil {
		t.Fatal(err)
	}
	if p.Services["app"].Image != "agent.example/app:ignored" || !filepath.IsAbs(p.Services["app"].Build.Context) {
		t.Errorf("interpolated: image %q context %q", p.Services["app"].Image, p.Services["app"].Build.Context)
	}
}

func TestLoadProjectUninterpolatedName(t *testing.T) {
	dir := repoFrom(t, "required")
	writeFile(t, filepath.Join(dir, "compose.yaml"), "name: ${APP:-fallback}\n"+readFile(t, filepath.Join(dir, "compose.yaml")))
	p, err := LoadProject(context.Background(), Options{WorkDir: dir, Environ: env("APP", "Named")}, false)
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "named" {
		t.Errorf("name %q, want name: interpolated and normalised", p.Name)
	}
	// ${VAR:?} is the server's business when nothing is interpolated.
	if p.Services["app"].Image != "${REGISTRY:?set REGISTRY to your registry host}/app" {
		t.Errorf("image %q", p.Services["app"].Image)
	}
	p, err = LoadProject(context.Background(), Options{WorkDir: dir, Environ: env("COMPOSE_PROJECT_NAME", "envname")}, false)
	if err != nil || p.Name != "envname" {
		t.Errorf("name %q, %v; want COMPOSE_PROJECT_NAME", p.Name, err)
	}
}

func TestLoadProjectUninterpolatedExtendsInclude(t *testing.T) {
	for _, tc := range []struct{ fixture, service, context string }{
		{"extends", "api", "common/ctx"},
		{"include", "worker", "sub/worker"},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			dir := repoFrom(t, tc.fixture)
			p, err := LoadProject(context.Background(), Options{WorkDir: dir}, false)
			if err != nil {
				t.Fatal(err)
			}
			svc, ok := p.Services[tc.service]
			if !ok {
				t.Fatalf("no service %s in %v", tc.service, p.ServiceNames())
			}
			if got := filepath.Clean(svc.Build.Context); got != tc.context {
				t.Errorf("context %q, want %q relative to the project directory", svc.Build.Context, tc.context)
			}
		})
	}
	dir := repoFrom(t, "include")
	p, err := LoadProject(context.Background(), Options{WorkDir: dir}, false)
	if err != nil {
		t.Fatal(err)
	}
	if img := p.Services["worker"].Image; img != "${WORKER_IMAGE:-shop/worker}" {
		t.Errorf("included image %q, want ${VAR} kept", img)
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSharedImage(t *testing.T) {
	dir := repoFrom(t, "bad")
	p := mustLoad(t, Options{WorkDir: dir, Files: []string{"shared.yaml"}})
	if w, k := p.Manifest.Services["web"], p.Manifest.Services["worker"]; w.Image != "shop/app" || k.Image != "shop/app" {
		t.Errorf("images %q %q, want both shop/app", w.Image, k.Image)
	}
}

func TestRemoteContextNotChecked(t *testing.T) {
	dir := repoFrom(t, "bad")
	p := mustLoad(t, Options{WorkDir: dir, Files: []string{"remote.yaml"}})
	if c := build(t, p, "a").Config.Context; c != "https://git.example.com/shop/a.git#main" {
		t.Errorf("remote context %q", c)
	}
}
