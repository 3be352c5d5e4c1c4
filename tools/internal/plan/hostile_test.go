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
			[]string{"compose.yaml: ", `service "a..b"`, `/hostile-a..b"`, "not a valid image reference", "set image:"}},
		{"service name ending in a separator", []byte("services:\n  api_:\n    build: ./app\n"),
			[]string{"compose.yaml: ", `service "api_"`, "not a valid image reference"}},
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

// Env files over MaxEnvFileSize are refused before the loader reads them:
// --env-file, the project's .env and a service's env_file: (each form).
func TestOversizeEnvFiles(t *testing.T) {
	big := bytes.Repeat([]byte("# padding\n"), MaxEnvFileSize/10+1)
	for _, tc := range []struct {
		name    string
		compose string
		file    string // written with big contents, relative to the repo
		opts    func(*Options)
		parts   []string
	}{
		{"--env-file", "services:\n  api:\n    build: ./app\n", "big.env",
			func(o *Options) { o.EnvFiles = []string{"big.env"} }, []string{"env file ", "big.env", "over slipway's limit", "1 MiB"}},
		{".env", "services:\n  api:\n    build: ./app\n", ".env", nil, []string{"env file ", ".env", "1 MiB"}},
		{"env_file string", "services:\n  api:\n    build: ./app\n    env_file: app/big.env\n", "app/big.env", nil,
			[]string{"compose.yaml", `service "api"`, "env_file ", "app/big.env", "1 MiB"}},
		{"env_file list", "services:\n  api:\n    build: ./app\n    env_file: [small.env, app/big.env]\n", "app/big.env", nil,
			[]string{`service "api"`, "app/big.env"}},
		{"env_file path form", "services:\n  api:\n    build: ./app\n    env_file:\n      - path: app/big.env\n        required: false\n", "app/big.env", nil,
			[]string{`service "api"`, "app/big.env"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := hostileRepo(t, []byte(tc.compose))
			os.WriteFile(filepath.Join(dir, "small.env"), []byte("A=1\n"), 0o644)
			if err := os.WriteFile(filepath.Join(dir, tc.file), big, 0o644); err != nil {
				t.Fatal(err)
			}
			o := Options{WorkDir: dir, ProjectName: "hostile", Registry: "reg.example:5000", AllowDirty: true}
			if tc.opts != nil {
				tc.opts(&o)
			}
			_, err := load(t, o)
			wantUsage(t, err, tc.parts...)
		})
	}
	// At the limit is fine.
	dir := hostileRepo(t, []byte("services:\n  api:\n    build: ./app\n    env_file: ok.env\n"))
	os.WriteFile(filepath.Join(dir, "ok.env"), append([]byte("A=1\n"), bytes.Repeat([]byte("#"), MaxEnvFileSize-5)...), 0o644)
	if _, err := load(t, Options{WorkDir: dir, ProjectName: "hostile", Registry: "reg.example:5000", AllowDirty: true}); err != nil {
		t.Fatalf("an env file at the limit: %v", err)
	}
}
