package gitinfo

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/tools/internal/exit"
)

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = append(os.Environ(),
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com",
		"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// newRepo makes a repository on branch main with one committed file.
func newRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	git(t, dir, "init", "-q", "-b", "main")
	write(t, filepath.Join(dir, "a.txt"), "one\n")
	git(t, dir, "add", "a.txt")
	git(t, dir, "commit", "-q", "-m", "one")
	return dir
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, dir string, env map[string]string) *Info {
	t.Helper()
	info, err := Read(context.Background(), dir, env)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return info
}

func TestCleanRepo(t *testing.T) {
	dir := newRepo(t)
	head := git(t, dir, "rev-parse", "HEAD")
	info := read(t, dir, nil)
	if info.Commit != head || info.ShortCommit != head[:12] {
		t.Errorf("commit %q short %q, want %q", info.Commit, info.ShortCommit, head)
	}
	if info.Branch != "main" || info.Detached {
		t.Errorf("branch %q detached %v, want main, false", info.Branch, info.Detached)
	}
	if info.Dirty || len(info.DirtyFiles) != 0 {
		t.Errorf("clean repo reported dirty: %v", info.DirtyFiles)
	}
	if info.DefaultBranch != "main" || !info.IsDefaultBranch() {
		t.Errorf("default branch %q (is default %v), want main without an origin", info.DefaultBranch, info.IsDefaultBranch())
	}
	if info.Source != "" {
		t.Errorf("source %q without an origin, want empty", info.Source)
	}
	if info.TopLevel == "" {
		t.Error("no top level")
	}
}

func TestSubdirectory(t *testing.T) {
	dir := newRepo(t)
	sub := filepath.Join(dir, "deploy", "app")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if info := read(t, sub, nil); info.Commit != git(t, dir, "rev-parse", "HEAD") {
		t.Errorf("commit from a subdirectory: %q", info.Commit)
	}
}

func TestDirtyTrackedVsUntracked(t *testing.T) {
	dir := newRepo(t)
	write(t, filepath.Join(dir, "new.txt"), "untracked\n")
	write(t, filepath.Join(dir, "slipway-release.json"), "{}\n")
	if info := read(t, dir, nil); info.Dirty {
		t.Fatalf("untracked files made the tree dirty: %v", info.DirtyFiles)
	}
	write(t, filepath.Join(dir, "a.txt"), "two\n")
	info := read(t, dir, nil)
	if !info.Dirty {
		t.Fatal("a modified tracked file did not make the tree dirty")
	}
	if len(info.DirtyFiles) != 1 || !strings.Contains(info.DirtyFiles[0], "a.txt") {
		t.Errorf("dirty files %q, want only a.txt", info.DirtyFiles)
	}
	// Staged changes count too.
	git(t, dir, "checkout", "-q", "a.txt")
	write(t, filepath.Join(dir, "b.txt"), "staged\n")
	git(t, dir, "add", "b.txt")
	if info := read(t, dir, nil); !info.Dirty {
		t.Error("a staged new file did not make the tree dirty")
	}
}

func TestDetachedHeadWithJenkinsEnv(t *testing.T) {
	dir := newRepo(t)
	first := git(t, dir, "rev-parse", "HEAD")
	write(t, filepath.Join(dir, "a.txt"), "two\n")
	git(t, dir, "commit", "-q", "-am", "two")
	git(t, dir, "checkout", "-q", "--detach", first)

	info := read(t, dir, nil)
	if !info.Detached || info.Branch != "" {
		t.Errorf("detached HEAD without CI env: branch %q detached %v, want empty, true", info.Branch, info.Detached)
	}
	if info.Commit != first {
		t.Errorf("commit %q, want HEAD %q", info.Commit, first)
	}

	upper := strings.ToUpper(first)
	info = read(t, dir, map[string]string{
		"GIT_COMMIT": upper, "GIT_BRANCH": "origin/feature/x", "BUILD_NUMBER": "42",
		"BUILD_URL": "https://ci.example/job/shop/42/",
	})
	if info.Commit != first {
		t.Errorf("commit from GIT_COMMIT %q, want %q (lowercased)", info.Commit, first)
	}
	if info.Branch != "feature/x" || !info.Detached {
		t.Errorf("branch from GIT_BRANCH: %q (detached %v), want feature/x", info.Branch, info.Detached)
	}
	if info.BuildNumber != "42" || info.BuildURL != "https://ci.example/job/shop/42/" {
		t.Errorf("build number %q url %q", info.BuildNumber, info.BuildURL)
	}

	// BRANCH_NAME (multibranch pipelines) wins over GIT_BRANCH.
	info = read(t, dir, map[string]string{"BRANCH_NAME": "main", "GIT_BRANCH": "origin/other"})
	if info.Branch != "main" || !info.IsDefaultBranch() {
		t.Errorf("branch %q, want main from BRANCH_NAME", info.Branch)
	}
}

func TestBadGitCommit(t *testing.T) {
	dir := newRepo(t)
	_, err := Read(context.Background(), dir, map[string]string{"GIT_COMMIT": "abc123"})
	if err == nil || exit.Code(err) != exit.Usage || !strings.Contains(err.Error(), "GIT_COMMIT") {
		t.Fatalf("err = %v (code %d), want exit 2 naming GIT_COMMIT", err, exit.Code(err))
	}
}

func TestOriginHeadAndSource(t *testing.T) {
	origin := t.TempDir()
	git(t, origin, "init", "-q", "-b", "trunk")
	write(t, filepath.Join(origin, "a.txt"), "one\n")
	git(t, origin, "add", "a.txt")
	git(t, origin, "commit", "-q", "-m", "one")
	git(t, origin, "branch", "feature")

	clone := filepath.Join(t.TempDir(), "clone")
	git(t, origin, "clone", "-q", origin, clone)
	info := read(t, clone, nil)
	if info.DefaultBranch != "trunk" || info.Branch != "trunk" || !info.IsDefaultBranch() {
		t.Errorf("default %q branch %q, want trunk from origin/HEAD", info.DefaultBranch, info.Branch)
	}
	if info.Source != origin {
		t.Errorf("source %q, want %q", info.Source, origin)
	}
	git(t, clone, "checkout", "-q", "feature")
	if info := read(t, clone, nil); info.IsDefaultBranch() || info.Branch != "feature" {
		t.Errorf("on feature: branch %q default %q", info.Branch, info.DefaultBranch)
	}

	git(t, clone, "remote", "set-url", "origin", "https://jenkins:s3cret@git.example.com/shop.git")
	if info := read(t, clone, nil); info.Source != "https://git.example.com/shop.git" {
		t.Errorf("source %q still carries credentials", info.Source)
	}
}

func TestNotARepository(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("GIT_CEILING_DIRECTORIES", filepath.Dir(dir))
	_, err := Read(context.Background(), dir, nil)
	if err == nil || exit.Code(err) != exit.Usage || !strings.Contains(err.Error(), "not inside a git repository") {
		t.Fatalf("err = %v (code %d), want exit 2 saying it is not a git repository", err, exit.Code(err))
	}
}

func TestNoCommitYet(t *testing.T) {
	dir := t.TempDir()
	git(t, dir, "init", "-q", "-b", "main")
	_, err := Read(context.Background(), dir, nil)
	if err == nil || exit.Code(err) != exit.Usage || !strings.Contains(err.Error(), "no commit") {
		t.Fatalf("err = %v (code %d), want exit 2 saying there is no commit", err, exit.Code(err))
	}
}

func TestCancelled(t *testing.T) {
	dir := newRepo(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Read(ctx, dir, nil); err == nil {
		t.Fatal("Read with a cancelled context succeeded")
	}
}

func TestStripCredentials(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://user:token@github.com/org/repo.git", "https://github.com/org/repo.git"},
		{"https://ghp_TOKEN@github.com/org/repo.git", "https://github.com/org/repo.git"},
		{"http://u:p@10.0.0.1:8080/r.git", "http://10.0.0.1:8080/r.git"},
		{"ssh://git:pw@host:2222/org/repo.git", "ssh://git@host:2222/org/repo.git"},
		{"ssh://git@host/org/repo.git", "ssh://git@host/org/repo.git"},
		{"git@github.com:org/repo.git", "git@github.com:org/repo.git"},
		{"/srv/git/repo.git", "/srv/git/repo.git"},
		{"https://github.com/org/repo.git", "https://github.com/org/repo.git"},
		{"https://us%zzer:p@host/x", "https://host/x"}, // unparseable: cut at '@'
	} {
		if got := StripCredentials(tc.in); got != tc.want {
			t.Errorf("StripCredentials(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestTrimRemoteBranch(t *testing.T) {
	for in, want := range map[string]string{
		"origin/main": "main", "refs/remotes/origin/feat/x": "feat/x", "refs/heads/dev": "dev", "main": "main",
	} {
		if got := trimRemoteBranch(in); got != want {
			t.Errorf("trimRemoteBranch(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRepoName(t *testing.T) {
	for in, want := range map[string]string{
		"https://git.example.com/acme/shop.git":           "shop",
		"https://ci:token@git.example.com/acme/Shop":      "Shop",
		"https://git.example.com/acme/shop.git/":          "shop",
		"ssh://git@git.example.com:2222/acme/shop.git":    "shop",
		"git@git.example.com:acme/shop.git":               "shop",
		"git.example.com:shop":                            "shop",
		"file:///srv/git/shop.git":                        "shop",
		"/srv/git/shop":                                   "shop",
		"../shop.git":                                     "shop",
		`C:\repos\shop.git`:                               "shop",
		"https://git.example.com/":                        "",
		"":                                                "",
		"https://dev.azure.com/org/proj/_git/shop-api":    "shop-api",
		"https://gitlab.example.com/group/sub/shop.git?x": "shop",
	} {
		if got := RepoName(in); got != want {
			t.Errorf("RepoName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRepoIdentity(t *testing.T) {
	ctx := context.Background()
	dir := newRepo(t)
	if id := RepoIdentity(ctx, dir, nil); id.Name != "" {
		t.Errorf("no origin, no GIT_URL: %+v, want none", id)
	}
	id := RepoIdentity(ctx, dir, map[string]string{"GIT_URL": "https://bot:tok@git.example.com/acme/shop.git"})
	if id.Name != "shop" || !strings.HasPrefix(id.From, "GIT_URL") || strings.Contains(id.From, "tok") {
		t.Errorf("GIT_URL: %+v, want shop from GIT_URL without credentials", id)
	}
	git(t, dir, "remote", "add", "origin", "git@git.example.com:acme/web.git")
	id = RepoIdentity(ctx, dir, map[string]string{"GIT_URL": "https://git.example.com/acme/other.git"})
	if id.Name != "web" || !strings.Contains(id.From, "origin remote (git@git.example.com:acme/web.git)") {
		t.Errorf("origin: %+v, want web from the origin remote", id)
	}
	// Below the checkout's root the folder is stable: no repository name.
	sub := filepath.Join(dir, "deploy")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if id := RepoIdentity(ctx, sub, nil); id.Name != "" {
		t.Errorf("subdirectory: %+v, want none", id)
	}
	// A linked worktree (a .git file) is a checkout's root too.
	wt := filepath.Join(t.TempDir(), "shop_PR-1")
	git(t, dir, "worktree", "add", "-q", "--detach", wt)
	if id := RepoIdentity(ctx, wt, nil); id.Name != "web" {
		t.Errorf("worktree: %+v, want web", id)
	}
	if id := RepoIdentity(ctx, t.TempDir(), map[string]string{"GIT_URL": "https://git.example.com/a/b.git"}); id.Name != "" {
		t.Errorf("outside git: %+v, want none", id)
	}
}
