package plan

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// repoWith makes a git repository holding compose.yaml (and an app/ build
// context) and returns its directory.
func repoWith(t *testing.T, compose string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "app"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{"compose.yaml": compose, "app/Dockerfile": "FROM scratch\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	initRepo(t, dir)
	return dir
}

func TestImageOnlyProject(t *testing.T) {
	dir := repoWith(t, "services:\n"+
		"  db:\n    image: postgres:16\n"+
		"  web:\n    image: reg.example:5000/team/web:1.2\n"+
		"  cache:\n    image: redis@sha256:"+strings.Repeat("a", 64)+"\n")
	p := mustLoad(t, Options{WorkDir: dir})
	if len(p.Builds) != 0 || len(p.Manifest.Services) != 0 {
		t.Fatalf("builds %v, services %v: want none for an image-only project", builds(p), p.Manifest.Names())
	}
	ext := p.Manifest.External
	if got := p.Manifest.ExternalNames(); !reflect.DeepEqual(got, []string{"cache", "db", "web"}) {
		t.Fatalf("external %v, want cache db web", got)
	}
	if e := ext["db"]; e.Image != "postgres" || !reflect.DeepEqual(e.Tags, []string{"16"}) || e.Digest != "" {
		t.Errorf("db: %+v", e)
	}
	if e := ext["web"]; e.Image != "reg.example:5000/team/web" || !reflect.DeepEqual(e.Tags, []string{"1.2"}) {
		t.Errorf("web: %+v", e)
	}
	if e := ext["cache"]; e.Image != "redis" || e.Digest != "sha256:"+strings.Repeat("a", 64) {
		t.Errorf("cache: %+v", e)
	}
	if !p.Manifest.ImageOnly() || p.Manifest.Pushed() {
		t.Errorf("ImageOnly %v Pushed %v: want true, false before push", p.Manifest.ImageOnly(), p.Manifest.Pushed())
	}
	var sb strings.Builder
	if err := p.WriteTable(&sb); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sb.String(), "postgres:16") || !strings.Contains(sb.String(), "external") {
		t.Errorf("table does not list the external images:\n%s", sb.String())
	}
	_, err := load(t, Options{WorkDir: dir, Services: []string{"db"}})
	wantUsage(t, err, "--service db", "image-only")
}

func TestMixedProjectListsExternal(t *testing.T) {
	dir := repoWith(t, "services:\n  api:\n    build: ./app\n  db:\n    image: postgres:16\n")
	p := mustLoad(t, Options{WorkDir: dir, Registry: "reg.example:5000/shop"})
	if got := builds(p); !reflect.DeepEqual(got, []string{"api"}) {
		t.Errorf("builds %v, want api", got)
	}
	if got := p.Manifest.ExternalNames(); !reflect.DeepEqual(got, []string{"db"}) {
		t.Errorf("external %v, want db", got)
	}
}

func TestNoImageNoBuildRefused(t *testing.T) {
	for name, compose := range map[string]string{
		"one of two": "services:\n  api:\n    build: ./app\n  worker:\n    command: [sleep, '1']\n",
		"only":       "services:\n  worker:\n    command: [sleep, '1']\n",
		"empty":      "services:\n  worker: {}\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := load(t, Options{WorkDir: repoWith(t, compose)})
			wantUsage(t, err, `service "worker" has neither build: nor image:; add one`)
		})
	}
	for name, compose := range map[string]string{
		"no services":      "volumes:\n  data: {}\n",
		"all need profile": "services:\n  api:\n    image: x\n    profiles: [dev]\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := load(t, Options{WorkDir: repoWith(t, compose)})
			wantUsage(t, err, "no active service")
		})
	}
}

func TestDockerHubLibraryWarning(t *testing.T) {
	dir := repoWith(t, "services:\n"+
		"  api:\n    build: ./app\n    image: myapp\n"+
		"  web:\n    build: ./app\n    image: reg.example:5000/web\n"+
		"  db:\n    image: postgres\n")
	p := mustLoad(t, Options{WorkDir: dir})
	if len(p.Warnings) != 1 || !strings.Contains(p.Warnings[0], "service api") || !strings.Contains(p.Warnings[0], "docker.io/library/myapp") {
		t.Errorf("warnings %q, want one for api naming docker.io/library/myapp", p.Warnings)
	}
}

func TestBuildPlatform(t *testing.T) {
	dir := repoWith(t, "services:\n"+
		"  api:\n    build: ./app\n    platform: linux/arm64\n"+
		"  web:\n    build: ./app\n    image: web\n")
	p := mustLoad(t, Options{WorkDir: dir, Environ: env("DOCKER_DEFAULT_PLATFORM", "linux/amd64")})
	if got := build(t, p, "api").Platform; got != "linux/arm64" {
		t.Errorf("api platform %q, want linux/arm64 (platform:)", got)
	}
	if got := build(t, p, "web").Platform; got != "linux/amd64" {
		t.Errorf("web platform %q, want linux/amd64 (DOCKER_DEFAULT_PLATFORM)", got)
	}
	p = mustLoad(t, Options{WorkDir: dir})
	if got := build(t, p, "web").Platform; got != "" {
		t.Errorf("web platform %q without DOCKER_DEFAULT_PLATFORM, want empty", got)
	}
}
