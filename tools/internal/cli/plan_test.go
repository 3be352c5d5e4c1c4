package cli

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/manifest"
)

// planRepo makes a git repository with a two-file compose project (one file
// name holding a comma) and changes into it.
func planRepo(t *testing.T) (dir, head string) {
	t.Helper()
	dir = t.TempDir()
	files := map[string]string{
		"compose.yaml":       "services:\n  api:\n    build: ./api\n  db:\n    image: postgres:15\n",
		"prod,eu.yaml":       "services:\n  api:\n    image: reg.example:5000/shop/api\n  worker:\n    build: ./api\n",
		"api/Dockerfile":     "FROM scratch\n",
		"unrelated/note.txt": "x\n",
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gitIn := func(args ...string) string {
		cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_GLOBAL=/dev/null")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	gitIn("init", "-q", "-b", "main")
	gitIn("add", "-A")
	gitIn("commit", "-q", "-m", "init")
	// Outside Jenkins: none of its variables may leak in from the runner.
	for _, v := range []string{"GIT_COMMIT", "GIT_BRANCH", "BRANCH_NAME", "BUILD_NUMBER", "BUILD_URL",
		"COMPOSE_FILE", "COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES"} {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
	t.Chdir(dir)
	return dir, gitIn("rev-parse", "HEAD")
}

func TestPlanJSON(t *testing.T) {
	dir, head := planRepo(t)
	t.Setenv("BUILD_NUMBER", "31")
	out, err := runApp("plan", "--json", "-f", "compose.yaml", "-f", "prod,eu.yaml",
		"--tag", "{{.ShortCommit}}", "--tag", "b{{.BuildNumber}}", "--registry", "10.213.0.1:5443/team")
	if err != nil {
		t.Fatalf("plan: %v\n%s", err, out)
	}
	var m manifest.Manifest
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("stdout is not the manifest JSON: %v\n%s", err, out)
	}
	if err := m.Validate("stdout"); err != nil {
		t.Fatal(err)
	}
	project := filepath.Base(dir)
	if m.Project != strings.ToLower(project) || m.Commit != head || m.BuildNumber != "31" {
		t.Errorf("project %q commit %q build %q", m.Project, m.Commit, m.BuildNumber)
	}
	if !reflect.DeepEqual(m.ComposeFiles, []string{"compose.yaml", "prod,eu.yaml"}) {
		t.Errorf("compose files %q: both -f in order, never split on commas", m.ComposeFiles)
	}
	want := map[string]manifest.Service{
		"api":    {Image: "reg.example:5000/shop/api", Tags: []string{head[:12], "b31"}},
		"worker": {Image: "10.213.0.1:5443/team/" + m.Project + "-worker", Tags: []string{head[:12], "b31"}},
	}
	if !reflect.DeepEqual(m.Services, want) {
		t.Errorf("services %+v, want %+v", m.Services, want)
	}
}

func TestPlanTable(t *testing.T) {
	_, head := planRepo(t)
	out, err := runApp("plan", "--file", "compose.yaml", "--service", "api")
	if err != nil {
		t.Fatalf("plan: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "SERVICE") {
		t.Fatalf("want a header, one build and the external db:\n%s", out)
	}
	if !strings.HasPrefix(lines[2], "db ") || !strings.Contains(lines[2], "external") {
		t.Errorf("last row %q: want db as an external image", lines[2])
	}
	for _, s := range []string{"api", head, "latest"} {
		if !strings.Contains(lines[1], s) {
			t.Errorf("row %q lacks %q", lines[1], s)
		}
	}
}

func TestPlanBadInputExits2(t *testing.T) {
	dir, _ := planRepo(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"plan", "--service", "nope"}, "--service nope"},
		{[]string{"plan", "--registry", "https://reg.example"}, "without a scheme"},
		{[]string{"plan", "-f", "missing.yaml"}, "missing.yaml"},
		{[]string{"plan", "--tag", "{{.Nope}}"}, ".Nope"},
		{[]string{"plan", "-p", "Bad Name"}, "project name"},
		{[]string{"plan", "--no-such-flag"}, "no-such-flag"},
	} {
		out, err := runApp(tc.args...)
		if exit.Code(err) != exit.Usage {
			t.Errorf("%v: exit %d (%v), want 2", tc.args, exit.Code(err), err)
			continue
		}
		if !strings.Contains(err.Error()+out, tc.want) {
			t.Errorf("%v: error %q lacks %q", tc.args, err, tc.want)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "api", "Dockerfile"), []byte("FROM scratch\nENV X=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := runApp("plan")
	if exit.Code(err) != exit.Usage || !strings.Contains(err.Error(), "--allow-dirty") {
		t.Errorf("dirty tree: exit %d (%v), want 2 naming --allow-dirty", exit.Code(err), err)
	}
	out, err := runApp("plan", "--allow-dirty", "--json")
	if err != nil || !strings.Contains(out, "-dirty") {
		t.Errorf("--allow-dirty: %v\n%s", err, out)
	}
}

func TestPlanHelpHasExamples(t *testing.T) {
	out, err := runApp("plan", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"Examples:", "slipway plan ", "Exit codes:", "--file", "--tag", "--allow-dirty", "--json"} {
		if !strings.Contains(out, s) {
			t.Errorf("plan --help lacks %q", s)
		}
	}
}
