package plan

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// workspaces clones one app's repository (origin URL as given) into Jenkins-
// style workspace folders and returns their paths.
func workspaces(t *testing.T, originURL string, names ...string) []string {
	t.Helper()
	src := repoFrom(t, "basic")
	root := t.TempDir()
	var dirs []string
	for _, n := range names {
		d := filepath.Join(root, n)
		git(t, root, "clone", "-q", src, d)
		git(t, d, "remote", "set-url", "origin", originURL)
		dirs = append(dirs, d)
	}
	return dirs
}

// One app is one project from every job, branch and workspace: the
// repository's name, not the workspace folder, names it and its images.
func TestDefaultProjectFromOrigin(t *testing.T) {
	for i, url := range []string{
		"https://git.example.com/acme/Shop.git",
		"https://ci-bot:s3cret-token@git.example.com/acme/shop",
		"ssh://git@git.example.com:2222/acme/shop.git/",
		"git@git.example.com:acme/shop.git",
	} {
		t.Run(fmt.Sprint("url", i), func(t *testing.T) {
			dirs := workspaces(t, url, "shop_main", "shop_main@2", "shop_PR-1", "7f3a9c0e1d2b")
			for i, d := range dirs {
				e := env()
				if i == 2 {
					e = env("BRANCH_NAME", "PR-1")
				}
				p := mustLoad(t, Options{WorkDir: d, Registry: "reg.example:5000/team", Environ: e})
				if p.Manifest.Project != "shop" {
					t.Errorf("%s: project %q, want shop (from the origin remote)", filepath.Base(d), p.Manifest.Project)
				}
				if got := build(t, p, "base").Image; got != "reg.example:5000/team/shop-base" {
					t.Errorf("%s: image %q, want reg.example:5000/team/shop-base", filepath.Base(d), got)
				}
				if !strings.Contains(p.ProjectFrom, "origin remote") || !strings.Contains(p.ProjectFrom, "git.example.com") {
					t.Errorf("%s: ProjectFrom %q does not name the origin remote", filepath.Base(d), p.ProjectFrom)
				}
				if strings.Contains(p.ProjectFrom, "s3cret") {
					t.Errorf("ProjectFrom leaks the URL's credentials: %q", p.ProjectFrom)
				}
			}
		})
	}
}

func TestDefaultProjectFallbacks(t *testing.T) {
	// No origin: Jenkins' GIT_URL, then the folder (compose's rule).
	dir := filepath.Join(t.TempDir(), "Shop_Main")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	copyTree(t, filepath.Join("testdata", "basic"), dir)
	initRepo(t, dir)
	p := mustLoad(t, Options{WorkDir: dir, Environ: env("GIT_URL", "git@git.example.com:acme/web-shop.git")})
	if p.Manifest.Project != "web-shop" || !strings.Contains(p.ProjectFrom, "GIT_URL") {
		t.Errorf("with GIT_URL only: project %q from %q, want web-shop from GIT_URL", p.Manifest.Project, p.ProjectFrom)
	}
	p = mustLoad(t, Options{WorkDir: dir})
	if p.Manifest.Project != "shop_main" || !strings.Contains(p.ProjectFrom, "project directory") {
		t.Errorf("without a remote: project %q from %q, want shop_main from the project directory", p.Manifest.Project, p.ProjectFrom)
	}

	// origin wins over GIT_URL; anything the user set wins over both.
	git(t, dir, "remote", "add", "origin", "https://git.example.com/acme/shop.git")
	if p := mustLoad(t, Options{WorkDir: dir, Environ: env("GIT_URL", "https://git.example.com/acme/other.git")}); p.Manifest.Project != "shop" {
		t.Errorf("origin should win over GIT_URL: %q", p.Manifest.Project)
	}
	if p := mustLoad(t, Options{WorkDir: dir, ProjectName: "given"}); p.Manifest.Project != "given" || p.ProjectFrom != "-p/--project-name" {
		t.Errorf("-p: project %q from %q", p.Manifest.Project, p.ProjectFrom)
	}
	if p := mustLoad(t, Options{WorkDir: dir, Environ: env("COMPOSE_PROJECT_NAME", "fromenv")}); p.Manifest.Project != "fromenv" || p.ProjectFrom != "COMPOSE_PROJECT_NAME" {
		t.Errorf("COMPOSE_PROJECT_NAME: project %q from %q", p.Manifest.Project, p.ProjectFrom)
	}
	writeFile(t, filepath.Join(dir, "compose.yaml"), "name: named\n"+readFile(t, filepath.Join(dir, "compose.yaml")))
	if p := mustLoad(t, Options{WorkDir: dir, AllowDirty: true}); p.Manifest.Project != "named" || !strings.HasPrefix(p.ProjectFrom, "name: in ") {
		t.Errorf("name: project %q from %q", p.Manifest.Project, p.ProjectFrom)
	}
}

// A project directory below the checkout's root keeps compose's rule: its
// own name is the same in every workspace.
func TestDefaultProjectSubdirectory(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "Deploy")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	copyTree(t, filepath.Join("testdata", "basic"), sub)
	initRepo(t, dir)
	git(t, dir, "remote", "add", "origin", "https://git.example.com/acme/shop.git")
	p := mustLoad(t, Options{WorkDir: sub})
	if p.Manifest.Project != "deploy" || !strings.Contains(p.ProjectFrom, "project directory") {
		t.Errorf("subdirectory: project %q from %q, want deploy from the project directory", p.Manifest.Project, p.ProjectFrom)
	}
}
