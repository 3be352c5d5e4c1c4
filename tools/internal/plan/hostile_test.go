package plan

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// hostileRepo makes a git repository holding compose.yaml and a buildable
// ./app.
func hostileRepo(t *testing.T, compose []byte) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "app"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "app", "Dockerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), compose, 0o644); err != nil {
		t.Fatal(err)
	}
	initRepo(t, dir)
	return dir
}

// aliasBomb is a "billion laughs" document: nine levels of ten aliases each
// expand to 10^9 nodes, 81 aliases in the file.
func aliasBomb() string {
	var b strings.Builder
	b.WriteString("x-l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
	for i := 1; i <= 9; i++ {
		prev := "*l" + string(rune('0'+i-1))
		b.WriteString("x-l" + string(rune('0'+i)) + ": &l" + string(rune('0'+i)) + " [" +
			strings.TrimSuffix(strings.Repeat(prev+", ", 10), ", ") + "]\n")
	}
	return b.String()
}

func TestHostileCompose(t *testing.T) {
	const svc = "services:\n  api:\n    build: ./app\n"
	big := bytes.Repeat([]byte("# padding\n"), MaxComposeFileSize/10+1)
	for _, tc := range []struct {
		name    string
		compose []byte
		parts   []string
	}{
		{"oversize", append([]byte(svc), big...), []string{"compose.yaml", "over slipway's limit", "4 MiB"}},
		{"alias bomb", []byte(svc + aliasBomb()), []string{"compose.yaml", "excessive aliasing"}},
		{"alias bomb in service", []byte(aliasBomb() + "services:\n  api:\n    build: ./app\n    command: *l9\n"),
			[]string{"compose.yaml", "excessive aliasing"}},
		{"unknown top-level key", []byte(svc + "servces:\n  web: {}\n"), []string{"compose.yaml", "'servces' not allowed"}},
		{"service name not a key", []byte("services:\n  Web_API!:\n    build: ./app\n"), []string{"compose.yaml", "'Web_API!' not allowed"}},
		{"service name not an image name", []byte("services:\n  a..b:\n    build: ./app\n"),
			[]string{`service "a..b"`, `/hostile-a..b"`, "not a valid image reference", "set image:"}},
		{"service name ending in a separator", []byte("services:\n  api_:\n    build: ./app\n"),
			[]string{`service "api_"`, "not a valid image reference"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := hostileRepo(t, tc.compose)
			_, err := load(t, Options{WorkDir: dir, ProjectName: "hostile", Registry: "reg.example:5000"})
			wantUsage(t, err, tc.parts...)
		})
	}
}

// An x- extension is the one kind of unknown top-level key compose allows.
func TestExtensionKeyAllowed(t *testing.T) {
	dir := hostileRepo(t, []byte("services:\n  api:\n    build: ./app\nx-notes: {owner: ops}\n"))
	if _, err := load(t, Options{WorkDir: dir, ProjectName: "hostile"}); err != nil {
		t.Fatal(err)
	}
}

// A file at the limit still loads: the bound is on size, not on content.
func TestComposeAtSizeLimit(t *testing.T) {
	const svc = "services:\n  api:\n    build: ./app\n"
	data := append([]byte(svc), bytes.Repeat([]byte("#"), MaxComposeFileSize-len(svc)-1)...)
	data = append(data, '\n')
	dir := hostileRepo(t, data)
	if _, err := load(t, Options{WorkDir: dir, ProjectName: "hostile"}); err != nil {
		t.Fatal(err)
	}
}
