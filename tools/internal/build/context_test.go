package build

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/tools/internal/exit"
)

func write(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// untar returns name -> content of the regular files in the tar.
func untar(t *testing.T, r io.Reader) map[string]string {
	t.Helper()
	out := map[string]string{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s owned by %d:%d, want 0:0", h.Name, h.Uid, h.Gid)
		}
		b, _ := io.ReadAll(tr)
		out[h.Name] = string(b)
	}
}

func names(m map[string]string) []string {
	var n []string
	for k := range m {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

func TestContextHonoursDockerignore(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{
		"Dockerfile":        "FROM scratch\nCOPY . /\n",
		".dockerignore":     "secret.env\nnode_modules\n*.log\n!keep.log\nDockerfile\n.dockerignore\n",
		"app/main.go":       "package main",
		"secret.env":        "PASSWORD=x",
		"node_modules/a.js": "x",
		"debug.log":         "x",
		"keep.log":          "kept",
	})
	p, err := prepareContext("api", dir, "", "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	files := untar(t, p.Tar)
	got := strings.Join(names(files), " ")
	want := ".dockerignore Dockerfile app/main.go keep.log"
	if got != want {
		t.Fatalf("context files = %q, want %q", got, want)
	}
	if p.Dockerfile != "Dockerfile" {
		t.Fatalf("dockerfile = %q", p.Dockerfile)
	}
	if !strings.Contains(string(p.Content), "FROM scratch") {
		t.Fatalf("content not read: %q", p.Content)
	}
}

func TestContextPerDockerfileIgnore(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{
		"build/api.Dockerfile":              "FROM scratch\n",
		"build/api.Dockerfile.dockerignore": "big\n",
		".dockerignore":                     "small\n",
		"big":                               "x",
		"small":                             "y",
	})
	p, err := prepareContext("api", dir, "build/api.Dockerfile", "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	files := untar(t, p.Tar)
	if _, ok := files["big"]; ok {
		t.Error("big was sent although api.Dockerfile.dockerignore excludes it")
	}
	if _, ok := files["small"]; !ok {
		t.Error("small was not sent: the context .dockerignore should not apply when a per-Dockerfile one exists")
	}
	if p.Dockerfile != "build/api.Dockerfile" {
		t.Errorf("dockerfile = %q", p.Dockerfile)
	}
}

func TestDockerfileOutsideContext(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{
		"docker/web.Dockerfile": "FROM scratch\nCOPY index.html /\n",
		"web/index.html":        "<h1>hi</h1>",
		"web/.dockerignore":     "*.tmp\n",
	})
	p, err := prepareContext("web", filepath.Join(root, "web"), "../docker/web.Dockerfile", "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	files := untar(t, p.Tar)
	if !strings.HasPrefix(p.Dockerfile, ".dockerfile.") {
		t.Fatalf("dockerfile name %q, want .dockerfile.<random>", p.Dockerfile)
	}
	if files[p.Dockerfile] != "FROM scratch\nCOPY index.html /\n" {
		t.Fatalf("added Dockerfile content %q", files[p.Dockerfile])
	}
	if !strings.Contains(files[".dockerignore"], "*.tmp") || !strings.Contains(files[".dockerignore"], p.Dockerfile) {
		t.Fatalf(".dockerignore should keep its patterns and list the added file: %q", files[".dockerignore"])
	}
	if files["index.html"] == "" {
		t.Fatal("index.html missing")
	}
}

func TestInlineDockerfile(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{"a.txt": "a"})
	p, err := prepareContext("x", dir, "", "FROM scratch\nCOPY a.txt /\n", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	files := untar(t, p.Tar)
	if files[p.Dockerfile] != "FROM scratch\nCOPY a.txt /\n" {
		t.Fatalf("inline Dockerfile not in context: %v", names(files))
	}
	if !strings.Contains(files[".dockerignore"], ".dockerignore") {
		t.Fatalf("a new .dockerignore should ignore itself: %q", files[".dockerignore"])
	}
}

func TestLowercaseDockerfileFallback(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{"dockerfile": "FROM scratch\n"})
	p, err := prepareContext("x", dir, "", "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	untar(t, p.Tar)
	if p.Dockerfile != "dockerfile" {
		t.Fatalf("dockerfile = %q", p.Dockerfile)
	}
}

func TestMissingDockerfileAndContext(t *testing.T) {
	dir := t.TempDir()
	_, err := prepareContext("api", dir, "Dockerfile.prod", "", "", nil)
	if err == nil || exit.Code(err) != exit.Usage {
		t.Fatalf("want a usage error, got %v", err)
	}
	for _, want := range []string{"service api", filepath.Join(dir, "Dockerfile.prod"), "not found"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	_, err = prepareContext("db", filepath.Join(dir, "nope"), "", "", "", nil)
	if err == nil || exit.Code(err) != exit.Usage || !strings.Contains(err.Error(), "service db: build context") {
		t.Fatalf("want a usage error naming the context, got %v", err)
	}
}

func TestUnreadableFileIsNamed(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads every file")
	}
	dir := t.TempDir()
	write(t, dir, map[string]string{"Dockerfile": "FROM scratch\n", "locked": "x"})
	os.Chmod(filepath.Join(dir, "locked"), 0)
	_, err := prepareContext("api", dir, "", "", "", nil)
	if err == nil || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("want error naming the unreadable file, got %v", err)
	}
}

func TestRemoteContext(t *testing.T) {
	p, err := prepareContext("x", "https://example.invalid/repo.git#main:app", "Dockerfile", "", "", map[string]string{"a": "b"})
	if err != nil {
		t.Fatal(err)
	}
	if p.Remote == "" || p.Tar != nil {
		t.Fatalf("want a remote context, got %+v", p)
	}
	if _, err := prepareContext("x", "git@example.invalid:r.git", "", "FROM scratch", "", nil); exit.Code(err) != exit.Usage {
		t.Fatalf("inline Dockerfile with remote context should be a usage error, got %v", err)
	}
}

func TestBakeLabels(t *testing.T) {
	l := map[string]string{"b.version": "v1", "a.source": `https://x/$HOME "q"`}
	line := `LABEL "a.source"="https://x/\$HOME \"q\"" "b.version"="v1"` + "\n"
	cases := []struct {
		name, df, target, want string
		ok                     bool
	}{
		{"single stage", "FROM a\nRUN x\n", "", "FROM a\nRUN x\n" + line, true},
		{"no trailing newline", "FROM a\nRUN x", "", "FROM a\nRUN x\n" + line, true},
		{"target stage", "ARG B=a\nFROM $B AS base\nRUN x\n\nFROM base AS final\nRUN y\n", "Base",
			"ARG B=a\nFROM $B AS base\nRUN x\n\n" + line + "FROM base AS final\nRUN y\n", true},
		{"continuation is not a stage", "FROM a\nRUN echo \\\n  # comment\nFROM not-a-stage\nFROM b\nRUN z\n", "",
			"FROM a\nRUN echo \\\n  # comment\nFROM not-a-stage\nFROM b\nRUN z\n" + line, true},
		{"escape directive", "# escape=`\nFROM a\nRUN echo `\nFROM x\n", "",
			"# escape=`\nFROM a\nRUN echo `\nFROM x\n" + line, true},
		{"unknown target", "FROM a AS one\n", "two", "", false},
		{"no FROM", "# just a comment\n", "", "", false},
	}
	for _, c := range cases {
		got, ok := bakeLabels([]byte(c.df), c.target, l)
		if ok != c.ok || string(got) != c.want {
			t.Errorf("%s: got %v\n%q\nwant\n%q", c.name, ok, got, c.want)
		}
	}
}

func TestLabelsBakedIntoAnIgnoredDockerfile(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{"Dockerfile": "FROM scratch\nCOPY . /\n", ".dockerignore": "Dockerfile\n", "a": "a"})
	p, err := prepareContext("api", dir, "", "", "", map[string]string{"k": "v"})
	if err != nil {
		t.Fatal(err)
	}
	files := untar(t, p.Tar)
	if !p.LabelsBaked || files[p.Dockerfile] != "FROM scratch\nCOPY . /\nLABEL \"k\"=\"v\"\n" {
		t.Fatalf("baked %v, sent Dockerfile %q", p.LabelsBaked, files[p.Dockerfile])
	}
	if _, ok := files["Dockerfile"]; ok {
		t.Error("the ignored Dockerfile was sent although the engine does not need it")
	}
}
