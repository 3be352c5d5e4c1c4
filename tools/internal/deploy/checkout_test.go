package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/tools/internal/deploy/remote"
	"github.com/slipway-dev/slipway/tools/internal/manifest"
	"github.com/slipway-dev/slipway/tools/internal/progress"
)

// A project that bind-mounts . (flask-redis: .:/code) deploys: the tracked
// files travel in .slipway-checkout/, the mount points there, and neither the
// project's compose.yaml nor untracked files collide with slipway's own.
func TestProjectDirMountShipsTrackedFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("compose.yaml", "services:\n  web:\n    build: .\n    volumes:\n      - .:/code\n")
	write("app.py", "print('hi')\n")
	write("pkg/mod.py", "x = 1\n")
	write(".gitignore", "slipway-*\nlocal.txt\n")
	gitc := func(args ...string) {
		cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@e", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@e", "GIT_CONFIG_GLOBAL=/dev/null")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	gitc("init", "-q")
	gitc("add", "-A")
	gitc("commit", "-qm", "init")
	write("local.txt", "untracked\n")
	write("slipway-compose.pinned.yml", "services:\n  web:\n    image: reg.test:5000/web@"+ckDigest+"\n    volumes:\n      - .:/code\n")
	commit := commitOf("checkout")
	m := &manifest.Manifest{Project: "flask", ComposeFiles: []string{"compose.yaml"}, Commit: commit, ShortCommit: commit[:12],
		PinnedCompose: "slipway-compose.pinned.yml",
		Services:      map[string]manifest.Service{"web": {Image: "reg.test:5000/web", Tags: []string{"x"}, Digest: ckDigest}}}
	mpath := filepath.Join(dir, manifest.DefaultPath)
	if err := manifest.Write(mpath, m); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := progress.New(&logs)
	b, err := loadBundle(mpath, "", log)
	if err != nil {
		t.Fatalf("loadBundle: %v", err)
	}
	files, err := releaseFiles(b, remote.ComposeV2, "/srv/app", "", &Options{Strategy: "recreate", Getenv: env(nil)}, log)
	if err != nil {
		t.Fatalf("releaseFiles: %v\n%s", err, logs.String())
	}
	got := map[string]string{}
	for _, f := range files {
		got[f.Path] = string(f.Data)
	}
	for _, want := range []string{".slipway-checkout/compose.yaml", ".slipway-checkout/app.py", ".slipway-checkout/pkg/mod.py", ".slipway-checkout/.gitignore", "compose.yaml", "release.json"} {
		if _, ok := got[want]; !ok {
			t.Errorf("release lacks %s; has %v", want, keys(got))
		}
	}
	for p := range got {
		if strings.Contains(p, "local.txt") || strings.Contains(p, "slipway-release.json") || strings.HasPrefix(p, ".slipway-checkout/.git/") {
			t.Errorf("release carries %s, which git does not track", p)
		}
	}
	if !strings.Contains(got["compose.yaml"], "./.slipway-checkout:/code") && !strings.Contains(got["compose.yaml"], "source: ./.slipway-checkout") {
		t.Errorf("the rendered compose file does not mount the checkout copy:\n%s", got["compose.yaml"])
	}
	if got[".slipway-checkout/compose.yaml"] != "services:\n  web:\n    build: .\n    volumes:\n      - .:/code\n" {
		t.Errorf("the project's own compose.yaml was not shipped as is: %q", got[".slipway-checkout/compose.yaml"])
	}
}

var ckDigest = digestOf("checkout web")

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
