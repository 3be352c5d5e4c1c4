package testrun

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/composecli"
	"github.com/slipway-dev/slipway/tools/internal/engine"
	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/manifest"
	"github.com/slipway-dev/slipway/tools/internal/progress"
	"github.com/slipway-dev/slipway/tools/internal/testenv"
)

// The fixture: a static Go binary (testdata/fixture) in a FROM scratch image,
// built once per test binary. It plays the app the manifest built, and, built
// by compose from testdata/stack/tests, the test-only services.
const fixtureRepo = "slipway-testrun-app"

var fixture struct {
	once    sync.Once
	dir     string // holds the binary "fixture"
	imageID string
	err     error
}

func TestMain(m *testing.M) {
	// The stack tests mostly wait on containers: run more of them at once
	// than the default of one per CPU, unless -parallel says otherwise.
	flag.Parse()
	if f := flag.Lookup("test.parallel"); f != nil && f.Value.String() == fmt.Sprint(runtime.GOMAXPROCS(0)) {
		_ = f.Value.Set("4")
	}
	code := m.Run()
	if fixture.imageID != "" {
		_ = exec.Command("docker", "rmi", fixtureRepo+":fixture").Run()
	}
	if fixture.dir != "" {
		os.RemoveAll(fixture.dir)
	}
	os.Exit(code)
}

// requireStack ends the test unless the engine and a Compose CLI are there
// (failing in CI), and returns the fixture binary's directory and image ID.
func requireStack(t *testing.T) (binDir, imageID string) {
	t.Helper()
	testenv.RequireDocker(t)
	if _, err := composecli.Detect(context.Background()); err != nil {
		if testenv.Required() {
			t.Fatalf("compose CLI: %v", err)
		}
		t.Skipf("compose CLI: %v", err)
	}
	fixture.once.Do(func() {
		dir, err := os.MkdirTemp("", "slipway-testrun-fixture-")
		if err != nil {
			fixture.err = err
			return
		}
		fixture.dir = dir
		build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, "fixture"), "./testdata/fixture")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			fixture.err = fmt.Errorf("building the fixture: %v\n%s", err, out)
			return
		}
		df := "FROM scratch\nCOPY fixture /fixture\nENTRYPOINT [\"/fixture\"]\n"
		if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
			fixture.err = err
			return
		}
		img := exec.Command("docker", "build", "-q", "-t", fixtureRepo+":fixture", dir)
		img.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
		out, err := img.Output()
		if err != nil {
			fixture.err = fmt.Errorf("building the fixture image: %v\n%s", err, out)
			return
		}
		id, err := exec.Command("docker", "image", "inspect", "-f", "{{.Id}}", fixtureRepo+":fixture").Output()
		if err != nil {
			fixture.err = fmt.Errorf("inspecting the fixture image: %v", err)
			return
		}
		fixture.imageID = strings.TrimSpace(string(id))
	})
	if fixture.err != nil {
		t.Fatal(fixture.err)
	}
	return fixture.dir, fixture.imageID
}

// newStack copies testdata/stack into a temporary directory with the fixture
// binary and a manifest whose app image is the fixture image.
func newStack(t *testing.T) string {
	t.Helper()
	binDir, imageID := requireStack(t)
	dir := t.TempDir()
	copyTree(t, filepath.Join("testdata", "stack"), dir)
	bin, err := os.ReadFile(filepath.Join(binDir, "fixture"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tests", "fixture"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	m := &manifest.Manifest{
		Project: "fx", ComposeFiles: []string{"compose.yaml"},
		Commit: strings.Repeat("ab", 20), ShortCommit: strings.Repeat("ab", 6), Branch: "main",
		Services: map[string]manifest.Service{
			"app": {Image: fixtureRepo, Tags: []string{"fixture"}, ImageID: imageID},
		},
	}
	if err := manifest.Write(filepath.Join(dir, manifest.DefaultPath), m); err != nil {
		t.Fatal(err)
	}
	return dir
}

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, info.Mode())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// logBuffer collects the run's log and mirrors it to the test log.
type logBuffer struct {
	t   *testing.T
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		l.t.Log(line)
	}
	return len(p), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

type runResult struct {
	sum  *Summary
	err  error
	log  string
	dir  string
	file *Summary // summary.json as written
}

// runStack runs the stack in dir with extra environment, then checks that
// nothing of the run is left on the engine.
func runStack(t *testing.T, dir string, env []string, mutate func(*Options)) runResult {
	t.Helper()
	lb := &logBuffer{t: t}
	opts := Options{
		WorkDir:   dir,
		Manifest:  manifest.DefaultPath,
		Environ:   append(os.Environ(), env...),
		Log:       progress.New(lb),
		Timeout:   2 * time.Minute,
		StopGrace: 2 * time.Second,
	}
	if mutate != nil {
		mutate(&opts)
	}
	sum, err := Run(context.Background(), opts)
	res := runResult{sum: sum, err: err, log: lb.String(), dir: dir}
	if sum != nil {
		assertNothingLeft(t, sum.Project)
		rd := opts.ResultsDir
		if rd == "" {
			rd = DefaultResultsDir
		}
		if data, err := os.ReadFile(filepath.Join(dir, rd, "summary.json")); err == nil {
			res.file = &Summary{}
			if err := json.Unmarshal(data, res.file); err != nil {
				t.Fatalf("summary.json: %v", err)
			}
		}
	}
	return res
}

func assertNothingLeft(t *testing.T, project string) {
	t.Helper()
	eng, err := engine.New(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	left, err := eng.ListProject(context.Background(), project)
	if err != nil {
		t.Fatal(err)
	}
	if !left.Empty() {
		t.Errorf("project %s left %s", project, left)
	}
	for _, svc := range []string{"tests", "migrate"} {
		if id, _ := eng.ImageIDIfPresent(context.Background(), sanitize(project)+"-"+svc); id != "" {
			t.Errorf("run-local image %s-%s left behind", project, svc)
		}
	}
}

func wantCode(t *testing.T, err error, code int) {
	t.Helper()
	if got := exit.Code(err); got != code {
		t.Fatalf("exit code %d, want %d (err: %v)", got, code, err)
	}
}

func TestRunPasses(t *testing.T) {
	t.Parallel()
	r := runStack(t, newStack(t), nil, nil)
	if r.err != nil {
		t.Fatalf("run failed: %v\n%s", r.err, r.log)
	}
	s := r.file
	if s == nil {
		t.Fatal("no summary.json")
	}
	if s.Result != ResultPassed || s.ExitCode != 0 || len(s.Failed) != 0 {
		t.Errorf("summary: result %s, exit %d, failed %v", s.Result, s.ExitCode, s.Failed)
	}
	if !strings.HasPrefix(s.Project, "fx-test-") {
		t.Errorf("project %q, want fx-test-...", s.Project)
	}
	tests, app, migrate := s.Services["tests"], s.Services["app"], s.Services["migrate"]
	if tests == nil || app == nil || migrate == nil {
		t.Fatalf("services in summary: %v", s.Services)
	}
	if tests.Outcome != OutcomePassed || tests.ExitCode == nil || *tests.ExitCode != 0 || tests.Role != "test" {
		t.Errorf("tests: %+v", tests)
	}
	// The manifest's image, by ID, not a build of app/Dockerfile (which fails).
	_, imageID := requireStack(t)
	if app.Image != imageID || app.ManifestService != "app" || app.Outcome != OutcomeOK || app.Health != "healthy" {
		t.Errorf("app: %+v, want image %s", app, imageID)
	}
	if migrate.ExitCode == nil || *migrate.ExitCode != 0 || migrate.Outcome != OutcomeOK || migrate.Image != imageID {
		t.Errorf("migrate: %+v", migrate)
	}
	junit, err := os.ReadFile(filepath.Join(r.dir, "test-results", "tests", "out", "junit.xml"))
	if err != nil {
		t.Fatalf("junit not copied: %v", err)
	}
	if !strings.Contains(string(junit), `failures="0"`) {
		t.Errorf("junit: %s", junit)
	}
	if want := []string{"tests/out/junit.xml"}; fmt.Sprint(tests.Results) != fmt.Sprint(want) {
		t.Errorf("results %v, want %v", tests.Results, want)
	}
	// A results path that does not exist is a warning, not a failure.
	if fmt.Sprint(tests.MissingResults) != "[/does/not/exist]" || !strings.Contains(r.log, "/does/not/exist does not exist") {
		t.Errorf("missing results %v; log:\n%s", tests.MissingResults, r.log)
	}
	for _, svc := range []string{"app", "migrate", "tests"} {
		if _, err := os.Stat(filepath.Join(r.dir, "test-results", "logs", svc+".log")); err != nil {
			t.Errorf("log of %s: %v", svc, err)
		}
	}
	log, _ := os.ReadFile(filepath.Join(r.dir, "test-results", "logs", "tests.log"))
	if !strings.Contains(string(log), "GET http://app.internal:8080/health: ok") {
		t.Errorf("tests did not reach app through its alias on the second network; log:\n%s", log)
	}
	// The named volume was created (and assertNothingLeft saw it removed).
	if !strings.Contains(r.log, s.Project+"_data") {
		t.Errorf("named volume %s_data never created; log:\n%s", s.Project, r.log)
	}
	if !strings.Contains(r.log, `container_name "fixture-app" dropped`) || !strings.Contains(r.log, "host port 18099") {
		t.Errorf("no warning about dropped container_name/port; log:\n%s", r.log)
	}
}

func TestRunTestFails(t *testing.T) {
	t.Parallel()
	r := runStack(t, newStack(t), []string{"TESTS_EXIT=4"}, nil)
	wantCode(t, r.err, exit.TestsFailed)
	if !strings.Contains(r.err.Error(), "tests failed: tests exited with code 4") {
		t.Errorf("error: %v", r.err)
	}
	s := r.file
	if s == nil || s.Result != ResultFailed || s.ExitCode != exit.TestsFailed || fmt.Sprint(s.Failed) != "[tests]" {
		t.Fatalf("summary: %+v", s)
	}
	tests := s.Services["tests"]
	if tests.ExitCode == nil || *tests.ExitCode != 4 || tests.Outcome != OutcomeFailed || tests.State != "exited" {
		t.Errorf("tests: %+v", tests)
	}
	if s.Services["app"].Outcome != OutcomeOK {
		t.Errorf("app: %+v", s.Services["app"])
	}
	junit, err := os.ReadFile(filepath.Join(r.dir, "test-results", "tests", "out", "junit.xml"))
	if err != nil || !strings.Contains(string(junit), `failures="1"`) {
		t.Errorf("failing junit not copied: %v %s", err, junit)
	}
	if !strings.Contains(r.log, "last ") || !strings.Contains(r.log, "[tests] wrote /out/junit.xml; exiting 4") {
		t.Errorf("no tail of the failing service; log:\n%s", r.log)
	}
}

func TestRunDependencyNeverHealthy(t *testing.T) {
	t.Parallel()
	r := runStack(t, newStack(t), []string{"APP_READY_AFTER=-1s"}, func(o *Options) { o.Timeout = 30 * time.Second })
	wantCode(t, r.err, exit.TestsFailed)
	if !strings.Contains(r.err.Error(), "dependency app never became healthy") {
		t.Errorf("error does not name app: %v", r.err)
	}
	s := r.file
	if s == nil || s.Result != ResultTimeout {
		t.Fatalf("summary: %+v", s)
	}
	if got := s.Services["app"].Outcome; got != OutcomeNotHealthy {
		t.Errorf("app outcome %s, want %s", got, OutcomeNotHealthy)
	}
	if got := s.Services["tests"].Outcome; got != OutcomeNotStarted {
		t.Errorf("tests outcome %s, want %s", got, OutcomeNotStarted)
	}
	if !strings.Contains(r.log, "[app] fixture: will never be ready") {
		t.Errorf("no tail of app's log; log:\n%s", r.log)
	}
}

func TestRunDependencyUnhealthy(t *testing.T) {
	t.Parallel()
	r := runStack(t, newStack(t), []string{"APP_READY_AFTER=-1s", "APP_HEALTH_RETRIES=2"}, nil)
	wantCode(t, r.err, exit.TestsFailed)
	if !strings.Contains(r.err.Error(), "dependency app is unhealthy") || !strings.Contains(r.err.Error(), "not ready") {
		t.Errorf("error does not name app and its health output: %v", r.err)
	}
	if r.file == nil || r.file.Services["app"].Outcome != OutcomeUnhealthy || fmt.Sprint(r.file.Failed) != "[app]" {
		t.Errorf("summary: %+v", r.file)
	}
}

func TestRunDependencyCrashesMidRun(t *testing.T) {
	t.Parallel()
	r := runStack(t, newStack(t), []string{"APP_CRASH_AFTER_REQUEST=1s", "TESTS_SLEEP=5m"}, nil)
	wantCode(t, r.err, exit.TestsFailed)
	if !strings.Contains(r.err.Error(), "dependency app exited with code 3 while the tests were running") {
		t.Errorf("error does not name app: %v", r.err)
	}
	s := r.file
	if s == nil || s.Result != ResultFailed {
		t.Fatalf("summary: %+v", s)
	}
	app, tests := s.Services["app"], s.Services["tests"]
	if app.Outcome != OutcomeCrashed || app.ExitCode == nil || *app.ExitCode != 3 {
		t.Errorf("app: %+v", app)
	}
	if tests.Outcome != OutcomeStopped || tests.ExitCode == nil {
		t.Errorf("tests: %+v", tests)
	}
}

func TestRunCompletedSuccessfullyFails(t *testing.T) {
	t.Parallel()
	r := runStack(t, newStack(t), []string{"MIGRATE_EXIT=5"}, nil)
	wantCode(t, r.err, exit.TestsFailed)
	if !strings.Contains(r.err.Error(), "dependency migrate exited with code 5") {
		t.Errorf("error does not name migrate: %v", r.err)
	}
	if r.file == nil || r.file.Services["migrate"].Outcome != OutcomeFailed || r.file.Services["tests"].Outcome != OutcomeNotStarted {
		t.Errorf("summary: %+v", r.file)
	}
}

func TestRunTimeout(t *testing.T) {
	t.Parallel()
	r := runStack(t, newStack(t), []string{"TESTS_SLEEP=5m"}, func(o *Options) { o.Timeout = 30 * time.Second })
	wantCode(t, r.err, exit.TestsFailed)
	if !strings.Contains(r.err.Error(), "timed out after 30s: test services still running: tests") {
		t.Errorf("error: %v", r.err)
	}
	s := r.file
	if s == nil || s.Result != ResultTimeout || s.ExitCode != exit.TestsFailed || fmt.Sprint(s.Failed) != "[tests]" {
		t.Fatalf("summary: %+v", s)
	}
	if tests := s.Services["tests"]; tests.Outcome != OutcomeTimeout || tests.ExitCode == nil {
		t.Errorf("tests: %+v", tests)
	}
}

func TestRunConcurrentRunsDoNotCollide(t *testing.T) {
	t.Parallel()
	dir := newStack(t)
	var wg sync.WaitGroup
	results := make([]runResult, 2)
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			// Same directory, same project, same fixed port and container_name.
			results[i] = runStack(t, dir, []string{"BUILD_TAG=jenkins-fx-7"}, func(o *Options) {
				o.ResultsDir = fmt.Sprintf("results-%d", i)
			})
		}(i)
	}
	wg.Wait()
	for i, r := range results {
		if r.err != nil {
			t.Errorf("run %d: %v\n%s", i, r.err, r.log)
		}
	}
	if results[0].sum != nil && results[1].sum != nil {
		a, b := results[0].sum.Project, results[1].sum.Project
		if a == b || !strings.HasPrefix(a, "fx-test-jenkins-fx-7-") {
			t.Errorf("project names %q and %q", a, b)
		}
	}
}

// TestAbort runs the real binary and sends it SIGTERM, as a Jenkins abort does.
func TestAbort(t *testing.T) {
	t.Parallel()
	dir := newStack(t)
	bin := filepath.Join(t.TempDir(), "slipway")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/slipway-dev/slipway/tools/cmd/slipway").CombinedOutput(); err != nil {
		t.Fatalf("building slipway: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "test")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TESTS_SLEEP=5m")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	nameRE := regexp.MustCompile(`test stack (\S+):`)
	project := ""
	sc := bufio.NewScanner(stderr)
	var out strings.Builder
	signalled := false
	for sc.Scan() {
		line := sc.Text()
		out.WriteString(line + "\n")
		t.Log(line)
		if m := nameRE.FindStringSubmatch(line); m != nil {
			project = m[1]
		}
		if !signalled && strings.Contains(line, "started test service tests") {
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			signalled = true
		}
	}
	_, _ = io.Copy(io.Discard, stderr)
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exit.Cancelled {
		t.Fatalf("exit: %v, want code %d\n%s", err, exit.Cancelled, out.String())
	}
	if project == "" || !signalled {
		t.Fatalf("never saw the stack start:\n%s", out.String())
	}
	assertNothingLeft(t, project)
	data, err := os.ReadFile(filepath.Join(dir, "test-results", "summary.json"))
	var s Summary
	if err != nil || json.Unmarshal(data, &s) != nil || s.Result != ResultCancelled || s.ExitCode != exit.Cancelled || s.Project != project {
		t.Errorf("summary.json after abort: %v %s", err, data)
	}
	if !strings.Contains(out.String(), "cancelled") {
		t.Errorf("no word of the cancellation:\n%s", out.String())
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	dir := newStack(t)
	cases := []struct {
		name string
		env  []string
		opts func(*Options)
		want string
	}{
		{"no test file", nil, func(o *Options) { o.WorkDir = t.TempDir() }, "no test compose file: looked for docker-compose.test.yml, docker-compose.test.yaml"},
		{"missing -f", nil, func(o *Options) { o.Files = []string{"nope.yml"} }, "test compose file nope.yml (-f) not found"},
		{"unknown service", nil, func(o *Options) { o.Services = []string{"nope"} }, "--service nope: no such service in the test stack (services: app, migrate, tests)"},
		{"bad results path", nil, func(o *Options) { o.ResultsPaths = []string{"tests:relative"} }, `--results-path "tests:relative"`},
		{"results path of unknown service", nil, func(o *Options) { o.ResultsPaths = []string{"nope:/out"} }, "no service nope"},
		{"missing manifest", nil, func(o *Options) { o.Manifest = "nope.json" }, "nope.json not found: run 'slipway build' first"},
		{"negative timeout", nil, func(o *Options) { o.Timeout = -time.Second }, "--timeout"},
	}
	for _, c := range cases {
		_, err := Run(context.Background(), func() Options {
			o := Options{WorkDir: dir, Manifest: manifest.DefaultPath, Environ: append(os.Environ(), c.env...), Log: progress.Discard()}
			c.opts(&o)
			return o
		}())
		if exit.Code(err) != exit.Usage || err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v (exit %d), want exit 2 with %q", c.name, err, exit.Code(err), c.want)
		}
	}
}

func TestManifestMissingImage(t *testing.T) {
	t.Parallel()
	dir := newStack(t)
	// A manifest that did not build app, which the project's compose.yaml builds.
	m, err := manifest.Read(filepath.Join(dir, manifest.DefaultPath))
	if err != nil {
		t.Fatal(err)
	}
	m.Services = map[string]manifest.Service{"other": {Image: "slipway-testrun-other", Tags: []string{"x"}}}
	if err := manifest.Write(filepath.Join(dir, manifest.DefaultPath), m); err != nil {
		t.Fatal(err)
	}
	_, err = Run(context.Background(), Options{WorkDir: dir, Manifest: manifest.DefaultPath, Log: progress.Discard()})
	wantCode(t, err, exit.Usage)
	if !strings.Contains(err.Error(), "has no image for service app") {
		t.Errorf("error: %v", err)
	}

	// A test file naming an image variable of a service the manifest lacks.
	file := filepath.Join(dir, "vars.test.yml")
	if err := os.WriteFile(file, []byte("services:\n  tests:\n    image: ${SLIPWAY_IMAGE_WORKER}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Run(context.Background(), Options{WorkDir: dir, Files: []string{file}, Manifest: manifest.DefaultPath, Log: progress.Discard()})
	wantCode(t, err, exit.Usage)
	if !strings.Contains(err.Error(), "no image for SLIPWAY_IMAGE_WORKER") {
		t.Errorf("error: %v", err)
	}

	// The manifest's image is gone from the engine and was never pushed.
	m.Services = map[string]manifest.Service{"app": {Image: "slipway-testrun-gone", Tags: []string{"x"}}}
	if err := manifest.Write(filepath.Join(dir, manifest.DefaultPath), m); err != nil {
		t.Fatal(err)
	}
	_, err = Run(context.Background(), Options{WorkDir: dir, Manifest: manifest.DefaultPath, Log: progress.Discard()})
	wantCode(t, err, exit.Usage)
	if !strings.Contains(err.Error(), "slipway-testrun-gone:x from manifest") {
		t.Errorf("error: %v", err)
	}
}
