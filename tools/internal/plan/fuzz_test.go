package plan

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/slipway-dev/slipway/tools/internal/exit"
)

// FuzzTagTemplate: any --tag either renders valid, distinct tags or fails
// with an error that names the template; it never panics or runs away.
func FuzzTagTemplate(f *testing.F) {
	for _, s := range []string{
		"{{.Commit}}", "{{.ShortCommit}}-{{.BuildNumber}}", "{{.Branch}}", "{{if eq .Branch .DefaultBranch}}latest{{end}}",
		"{{with .BuildNumber}}b{{.}}{{end}}", "{{slice .Commit 0 7}}", "{{printf \"%s-%s\" .Branch .ShortCommit}}",
		"{{range 9999999999}}{{end}}", "{{.Commit.X}}", "{{template \"x\"}}", "{{", "}}", "", "latest", "-x", "a/b",
		"{{printf \"%0999999d\" 1}}", "{{len .Commit}}", "{{index .Commit 0}}", "{{$x := .Commit}}{{$x}}", "{{break}}",
	} {
		f.Add(s, "feature/x", "12", false)
	}
	f.Fuzz(func(t *testing.T, tmpl, branch, build string, dirty bool) {
		d := TagData{Commit: commit, ShortCommit: short, Branch: SanitizeBranch(branch), BuildNumber: build, DefaultBranch: "main"}
		tags, err := RenderTags([]string{tmpl}, d, dirty)
		if err != nil {
			if !strings.Contains(err.Error(), "--tag") && !strings.Contains(err.Error(), "empty") {
				t.Fatalf("error does not name the flag: %v", err)
			}
			return
		}
		if len(tags) == 0 {
			t.Fatal("no tags and no error")
		}
		for _, tag := range tags {
			if !ValidTag(tag) {
				t.Fatalf("template %q rendered invalid tag %q", tmpl, tag)
			}
			if dirty && !strings.HasSuffix(tag, "-dirty") {
				t.Fatalf("dirty tag %q lacks -dirty", tag)
			}
		}
	})
}

// FuzzSanitizeBranch: the result is always "" or a valid tag, and sanitising
// is idempotent.
func FuzzSanitizeBranch(f *testing.F) {
	for _, s := range []string{"main", "feature/JIRA-1", ".x", "-", "日本語", "a b\tc", strings.Repeat("z", 300), "\xff\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, branch string) {
		got := SanitizeBranch(branch)
		if got != "" && !ValidTag(got) {
			t.Fatalf("SanitizeBranch(%q) = %q, not a valid tag", branch, got)
		}
		if !utf8.ValidString(got) {
			t.Fatalf("SanitizeBranch(%q) = %q, not UTF-8", branch, got)
		}
		if again := SanitizeBranch(got); again != got {
			t.Fatalf("not idempotent: %q -> %q -> %q", branch, got, again)
		}
	})
}

var fuzzRepo struct {
	once sync.Once
	dir  string
	err  error
}

// FuzzLoadCompose: any compose file either plans (and the manifest
// validates) or fails with exit code 2 and a message; never a panic.
func FuzzLoadCompose(f *testing.F) {
	for _, name := range []string{"basic", "merge", "anchors", "order", "profiles", "required"} {
		data, err := os.ReadFile(filepath.Join("testdata", name, "compose.yaml"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(data))
	}
	for _, s := range []string{
		"services:\n  a:\n    build: ./app\n",
		"services:\n  a:\n    build: ./app\n    image: ${X:?x}\n",
		"services: []\n", "", "x: &a [*a]\n", "services:\n  a: &a\n    <<: *a\n",
		"include:\n  - missing.yaml\n", "services:\n  a:\n    extends: a\n",
		"services:\n  a:\n    build:\n      context: ./app\n      additional_contexts:\n        x: service:a\n",
		"services:\n  db:\n    image: postgres:16\n  a:\n    image: reg:5000/a@sha256:" + strings.Repeat("0", 64) + "\n",
		"services:\n  a:\n    command: [x]\n", "services: {}\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, compose string) {
		fuzzRepo.once.Do(func() {
			dir, err := os.MkdirTemp("", "slipway-fuzz-")
			if err != nil {
				fuzzRepo.err = err
				return
			}
			if err := os.MkdirAll(filepath.Join(dir, "app"), 0o755); err != nil {
				fuzzRepo.err = err
				return
			}
			if err := os.WriteFile(filepath.Join(dir, "app", "Dockerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
				fuzzRepo.err = err
				return
			}
			initRepo(t, dir)
			fuzzRepo.dir = dir
		})
		if fuzzRepo.err != nil {
			t.Fatal(fuzzRepo.err)
		}
		// Each input in its own subdirectory (untracked: the tree stays clean).
		dir, err := os.MkdirTemp(fuzzRepo.dir, "case-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		if err := os.Symlink(filepath.Join(fuzzRepo.dir, "app"), filepath.Join(dir, "app")); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(compose), 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := Load(context.Background(), Options{WorkDir: dir, Environ: env(), ProjectName: "fuzz"})
		if err != nil {
			if exit.Code(err) != exit.Usage || err.Error() == "" {
				t.Fatalf("error with exit code %d (want 2): %v", exit.Code(err), err)
			}
			return
		}
		if err := p.Manifest.Validate("fuzz"); err != nil {
			t.Fatalf("planned an invalid manifest: %v", err)
		}
		// Every active service is either built or an external image.
		if n := len(p.Manifest.Services) + len(p.Manifest.External); n != len(p.Project.Services) {
			t.Fatalf("%d services planned (%d built, %d external) of %d active", n, len(p.Manifest.Services), len(p.Manifest.External), len(p.Project.Services))
		}
		for _, b := range p.Builds {
			for _, r := range b.Refs() {
				if err := ValidRef(b.Image, strings.TrimPrefix(r, b.Image+":")); err != nil {
					t.Fatalf("planned an invalid reference: %v", err)
				}
			}
		}
	})
}
