package testrun

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/manifest"
	"github.com/slipway-dev/slipway/tools/internal/testenv"
)

// TestSampleAppStack runs the sample app's own test stack (test/fixtures/
// sampleapp/docker-compose.test.yml): a real PostgreSQL, the web image from
// the manifest and a Python test suite writing JUnit XML, passing and failing.
func TestSampleAppStack(t *testing.T) {
	env := testenv.Require(t)
	requireStack(t)
	src := testenv.SampleAppDir(t)
	if _, err := os.Stat(filepath.Join(src, "docker-compose.test.yml")); err != nil {
		t.Fatalf("sample app test stack: %v", err)
	}
	dockerConfig := env.DockerConfig(t)

	// The web image, built as slipway build would, recorded in a manifest.
	ref := "slipway-testrun-sampleapp-web:it"
	build := exec.Command("docker", "build", "-q", "-t", ref,
		"--build-arg", "BASE_IMAGE="+env.FixtureImage("python:bookworm"), filepath.Join(src, "web"))
	build.Env = append(os.Environ(), "DOCKER_BUILDKIT=0", "DOCKER_CONFIG="+dockerConfig)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building web: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("docker", "rmi", ref).Run() })
	idOut, err := exec.Command("docker", "image", "inspect", "-f", "{{.Id}}", ref).Output()
	if err != nil {
		t.Fatal(err)
	}
	webID := strings.TrimSpace(string(idOut))

	for _, tc := range []struct {
		name string
		fail bool
	}{{"passes", false}, {"fails", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			copyTree(t, src, dir)
			m := &manifest.Manifest{
				Project: "sampleapp", ComposeFiles: []string{"docker-compose.yml"},
				Commit: strings.Repeat("cd", 20), ShortCommit: strings.Repeat("cd", 6), Branch: "main",
				Services: map[string]manifest.Service{
					"web": {Image: "slipway-testrun-sampleapp-web", Tags: []string{"it"}, ImageID: webID},
				},
			}
			if err := manifest.Write(filepath.Join(dir, manifest.DefaultPath), m); err != nil {
				t.Fatal(err)
			}
			extra := []string{"SLIPWAY_FIXTURE_REGISTRY=" + env.FixtureRegistry, "DOCKER_CONFIG=" + dockerConfig,
				"DOCKER_BUILDKIT=0", "COMPOSE_DOCKER_CLI_BUILD=0"}
			if tc.fail {
				extra = append(extra, "SAMPLEAPP_FAIL_TEST=1")
			}
			r := runStack(t, dir, extra, func(o *Options) { o.Timeout = 5 * time.Minute })
			s := r.file
			if s == nil {
				t.Fatalf("no summary.json: %v\n%s", r.err, r.log)
			}
			if !strings.HasPrefix(s.Project, "sampleapp-test-") {
				t.Errorf("project %s", s.Project)
			}
			web, db, tests := s.Services["web"], s.Services["db"], s.Services["tests"]
			if web == nil || db == nil || tests == nil {
				t.Fatalf("services %v", s.Services)
			}
			if web.Image != webID || web.Health != "healthy" || db.Health != "healthy" {
				t.Errorf("web %+v, db %+v", web, db)
			}
			junit, err := os.ReadFile(filepath.Join(dir, "test-results", "tests", "results", "junit.xml"))
			if err != nil {
				t.Fatalf("junit.xml not copied: %v\n%s", err, r.log)
			}
			if tc.fail {
				wantCode(t, r.err, exit.TestsFailed)
				if tests.ExitCode == nil || *tests.ExitCode == 0 || !strings.Contains(string(junit), "<failure") {
					t.Errorf("tests %+v; junit:\n%s", tests, junit)
				}
				return
			}
			if r.err != nil {
				t.Fatalf("run failed: %v\n%s", r.err, r.log)
			}
			if tests.Outcome != OutcomePassed || strings.Contains(string(junit), "<failure") {
				t.Errorf("tests %+v; junit:\n%s", tests, junit)
			}
		})
	}
}
