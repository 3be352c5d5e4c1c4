package testrun

// `slipway test` run as users run it, with Compose v2: the binary
// test/scripts/services.sh builds (env.json "ComposeV2"), named by
// SLIPWAY_COMPOSE or installed as the `docker compose` plugin. The fixture
// stack passes, fails, and is torn down when the run is cancelled.

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/manifest"
	"github.com/slipway-dev/slipway/tools/internal/testenv"
)

// buildSlipway builds the slipway command into the test's temporary directory
// (the go build cache makes all but the first a link).
func buildSlipway(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "slipway")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/slipway-dev/slipway/tools/cmd/slipway").CombinedOutput(); err != nil {
		t.Fatalf("building slipway: %v\n%s", err, out)
	}
	return bin
}

type v2Run struct {
	code    int
	out     string
	project string
	sum     Summary
	dir     string
}

// junit is a copied results file of the run ("" if none).
func (r v2Run) junit(rel string) string {
	data, _ := os.ReadFile(filepath.Join(r.dir, "test-results", filepath.FromSlash(rel)))
	return string(data)
}

var stackNameRE = regexp.MustCompile(`test stack (\S+):`)

// slipwayTestV2 runs `slipway test` in dir (newStack: the fixture stack)
// with env added to the environment; onLine sees each stderr line and the
// running command.
func slipwayTestV2(t *testing.T, dir string, env []string, onLine func(line string, cmd *exec.Cmd)) v2Run {
	t.Helper()
	cmd := exec.Command(buildSlipway(t), "test", "--timeout", "3m")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = io.Discard
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Liveness only: a run of the fixture stack takes seconds.
	timer := time.AfterFunc(8*time.Minute, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()
	r := v2Run{dir: dir}
	var out strings.Builder
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		line := sc.Text()
		out.WriteString(line + "\n")
		t.Log(line)
		if m := stackNameRE.FindStringSubmatch(line); m != nil && r.project == "" {
			r.project = m[1]
		}
		if onLine != nil {
			onLine(line, cmd)
		}
	}
	_, _ = io.Copy(io.Discard, stderr)
	err = cmd.Wait()
	r.out = out.String()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("slipway test: %v\n%s", err, r.out)
	}
	if r.project == "" {
		t.Fatalf("slipway test never named its stack (exit %d):\n%s", r.code, r.out)
	}
	// Teardown: nothing of the run is left on the engine, whatever the outcome.
	assertNothingLeft(t, r.project)
	data, err := os.ReadFile(filepath.Join(dir, "test-results", "summary.json"))
	if err != nil {
		t.Fatalf("summary.json: %v\n%s", err, r.out)
	}
	if err := json.Unmarshal(data, &r.sum); err != nil {
		t.Fatalf("summary.json: %v", err)
	}
	if r.sum.Project != r.project {
		t.Errorf("summary.json project %q, log said %q", r.sum.Project, r.project)
	}
	return r
}

func TestComposeV2SlipwayTestPasses(t *testing.T) {
	t.Parallel()
	_, bin := testenv.RequireComposeV2(t)
	for _, mode := range []struct{ name, compose string }{
		{"SLIPWAY_COMPOSE", bin + " " + testenv.ComposeV2Version},
		{"plugin", "docker compose " + testenv.ComposeV2Version},
	} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			env := []string{"SLIPWAY_COMPOSE=" + bin, "DOCKER_CONFIG=" + t.TempDir()}
			if mode.name == "plugin" {
				env = []string{"SLIPWAY_COMPOSE=", "DOCKER_CONFIG=" + testenv.ComposePluginConfig(t, bin)}
			}
			r := slipwayTestV2(t, newStack(t), env, nil)
			if r.code != 0 {
				t.Fatalf("exit %d, want 0:\n%s", r.code, r.out)
			}
			s := r.sum
			if s.Compose != mode.compose {
				t.Errorf("summary compose %q, want %q", s.Compose, mode.compose)
			}
			if s.Result != ResultPassed || s.ExitCode != 0 || len(s.Failed) != 0 {
				t.Errorf("summary: result %s, exit %d, failed %v", s.Result, s.ExitCode, s.Failed)
			}
			tests, app, migrate := s.Services["tests"], s.Services["app"], s.Services["migrate"]
			if tests == nil || app == nil || migrate == nil {
				t.Fatalf("services in summary: %v", s.Services)
			}
			_, imageID := requireStack(t)
			if tests.Outcome != OutcomePassed || tests.ExitCode == nil || *tests.ExitCode != 0 {
				t.Errorf("tests: %+v", tests)
			}
			// app runs the manifest's image, by ID (its build: would fail), and was healthy.
			if app.Image != imageID || app.Health != "healthy" || migrate.Image != imageID || migrate.Outcome != OutcomeOK {
				t.Errorf("app %+v, migrate %+v, want image %s", app, migrate, imageID)
			}
			if junit := r.junit("tests/out/junit.xml"); !strings.Contains(junit, `failures="0"`) {
				t.Errorf("junit.xml of the passing run not copied: %q", junit)
			}
		})
	}
}

func TestComposeV2SlipwayTestFails(t *testing.T) {
	t.Parallel()
	_, bin := testenv.RequireComposeV2(t)
	r := slipwayTestV2(t, newStack(t), []string{"SLIPWAY_COMPOSE=" + bin, "TESTS_EXIT=4"}, nil)
	if r.code != exit.TestsFailed {
		t.Fatalf("exit %d, want %d:\n%s", r.code, exit.TestsFailed, r.out)
	}
	s := r.sum
	if s.Compose != bin+" "+testenv.ComposeV2Version || s.Result != ResultFailed || s.ExitCode != exit.TestsFailed || fmt.Sprint(s.Failed) != "[tests]" {
		t.Errorf("summary: compose %q, result %s, exit %d, failed %v", s.Compose, s.Result, s.ExitCode, s.Failed)
	}
	if tests := s.Services["tests"]; tests == nil || tests.ExitCode == nil || *tests.ExitCode != 4 || tests.Outcome != OutcomeFailed {
		t.Errorf("tests: %+v", tests)
	}
	if junit := r.junit("tests/out/junit.xml"); !strings.Contains(r.out, "tests exited with code 4") || !strings.Contains(junit, `failures="1"`) {
		t.Errorf("no word of the failure or no failing junit.xml (%q):\n%s", junit, r.out)
	}
}

// A cancelled run (SIGTERM, as Jenkins aborts) still takes the v2 stack down.
func TestComposeV2SlipwayTestCancelledTearsDown(t *testing.T) {
	t.Parallel()
	_, bin := testenv.RequireComposeV2(t)
	signalled := false
	r := slipwayTestV2(t, newStack(t), []string{"SLIPWAY_COMPOSE=" + bin, "TESTS_SLEEP=5m"}, func(line string, cmd *exec.Cmd) {
		if !signalled && strings.Contains(line, "started test service tests") {
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Error(err)
			}
			signalled = true
		}
	})
	if !signalled {
		t.Fatalf("the tests service never started:\n%s", r.out)
	}
	if r.code != exit.Cancelled || r.sum.Result != ResultCancelled {
		t.Errorf("exit %d, result %s; want %d, cancelled:\n%s", r.code, r.sum.Result, exit.Cancelled, r.out)
	}
}

// The sample app's own test stack (a real PostgreSQL, web from the manifest,
// a Python suite built from the fixture registry's python image) with the v2
// plugin in the DOCKER_CONFIG that also holds the registry credentials, as a
// user with a plugin install runs it; no DOCKER_BUILDKIT=0, no buildx.
func TestComposeV2SlipwayTestSampleApp(t *testing.T) {
	t.Parallel()
	_, bin := testenv.RequireComposeV2(t)
	env := testenv.Require(t)
	requireStack(t)
	src := testenv.SampleAppDir(t)
	dockerConfig := env.DockerConfig(t)
	if err := os.MkdirAll(filepath.Join(dockerConfig, "cli-plugins"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(bin, filepath.Join(dockerConfig, "cli-plugins", "docker-compose")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	rand.Read(b)
	repo := "slipway-testrun-v2-web-" + hex.EncodeToString(b)
	build := exec.Command("docker", "build", "-q", "-t", repo+":it",
		"--build-arg", "BASE_IMAGE="+env.FixtureImage("python:bookworm"), filepath.Join(src, "web"))
	build.Env = append(os.Environ(), "DOCKER_BUILDKIT=0", "DOCKER_CONFIG="+dockerConfig)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building web: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("docker", "rmi", repo+":it").Run() })
	idOut, err := exec.Command("docker", "image", "inspect", "-f", "{{.Id}}", repo+":it").Output()
	if err != nil {
		t.Fatal(err)
	}
	webID := strings.TrimSpace(string(idOut))
	dir := t.TempDir()
	copyTree(t, src, dir)
	m := &manifest.Manifest{
		Project: "sampleapp", ComposeFiles: []string{"docker-compose.yml"},
		Commit: strings.Repeat("ef", 20), ShortCommit: strings.Repeat("ef", 6), Branch: "main",
		Services: map[string]manifest.Service{"web": {Image: repo, Tags: []string{"it"}, ImageID: webID}},
	}
	if err := manifest.Write(filepath.Join(dir, manifest.DefaultPath), m); err != nil {
		t.Fatal(err)
	}
	r := slipwayTestV2(t, dir, []string{"SLIPWAY_COMPOSE=", "DOCKER_CONFIG=" + dockerConfig,
		"SLIPWAY_FIXTURE_REGISTRY=" + env.FixtureRegistry, "DOCKER_BUILDKIT=", "COMPOSE_DOCKER_CLI_BUILD="}, nil)
	if r.code != 0 {
		t.Fatalf("exit %d, want 0:\n%s", r.code, r.out)
	}
	s := r.sum
	if s.Compose != "docker compose "+testenv.ComposeV2Version || s.Result != ResultPassed {
		t.Errorf("summary: compose %q, result %s", s.Compose, s.Result)
	}
	web, db, tests := s.Services["web"], s.Services["db"], s.Services["tests"]
	if web == nil || db == nil || tests == nil {
		t.Fatalf("services %v", s.Services)
	}
	if web.Image != webID || web.Health != "healthy" || db.Health != "healthy" || tests.Outcome != OutcomePassed {
		t.Errorf("web %+v, db %+v, tests %+v", web, db, tests)
	}
	if junit := r.junit("tests/results/junit.xml"); junit == "" || strings.Contains(junit, "<failure") {
		t.Errorf("junit.xml: %q", junit)
	}
}
