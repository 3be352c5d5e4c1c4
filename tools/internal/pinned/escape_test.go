package pinned

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/tools/internal/exit"
)

// escapeProject makes <tmp>/proj with conf/app.conf and an outside file
// <tmp>/secret, and returns the project directory.
func escapeProject(t *testing.T) string {
	t.Helper()
	base := t.TempDir()
	dir := filepath.Join(base, "proj")
	for _, d := range []string{filepath.Join(dir, "conf"), filepath.Join(base, "etc")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{filepath.Join(dir, "conf", "app.conf"), filepath.Join(base, "secret"), filepath.Join(base, "etc", "shadow")} {
		if err := os.WriteFile(f, []byte("x=1\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// Every kind of file that travels with a release is refused when it leaves
// the project, with the service (or config), the field and the path named.
func TestReferencedFilesRefusesEscapes(t *testing.T) {
	for _, tc := range []struct {
		name, compose string
		setup         func(t *testing.T, dir string)
		parts         []string
	}{
		{"bind mount ..", "services:\n  web:\n    volumes: ['../secret:/run/secret:ro']\n", nil,
			[]string{"service web volume ../secret", "lies outside the project directory"}},
		{"long-syntax bind", "services:\n  web:\n    volumes: [{type: bind, source: ./conf/../../secret, target: /s}]\n", nil,
			[]string{"service web volume ./conf/../../secret", "outside the project directory"}},
		{"env_file", "services:\n  web:\n    env_file: ../secret\n", nil,
			[]string{"service web env_file ../secret", "outside the project directory"}},
		{"env_file list entry", "services:\n  web:\n    env_file: [{path: ../secret, required: false}]\n", nil,
			[]string{"service web env_file ../secret", "outside the project directory"}},
		{"configs file", "services:\n  web: {}\nconfigs:\n  app:\n    file: ../secret\n", nil,
			[]string{"configs.app.file ../secret", "outside the project directory"}},
		{"secrets file", "services:\n  web: {}\nsecrets:\n  pw:\n    file: ../../x/secret\n", nil,
			[]string{"secrets.pw.file ../../x/secret", "outside the project directory"}},
		{"symlinked file", "services:\n  web:\n    env_file: web.env\n",
			func(t *testing.T, dir string) { symlink(t, "../secret", filepath.Join(dir, "web.env")) },
			[]string{"service web env_file web.env", "symbolic link to", "secret", "outside the project directory"}},
		{"symlinked directory on the way", "services:\n  web:\n    volumes: ['./etc/shadow:/etc/shadow:ro']\n",
			func(t *testing.T, dir string) {
				symlink(t, filepath.Join(filepath.Dir(dir), "etc"), filepath.Join(dir, "etc"))
			},
			[]string{"service web volume ./etc/shadow", "symbolic link to", "outside the project directory"}},
		{"symlink inside a mounted directory", "services:\n  web:\n    volumes: ['./conf:/etc/app:ro']\n",
			func(t *testing.T, dir string) { symlink(t, "../../secret", filepath.Join(dir, "conf", "leak")) },
			[]string{"service web volume ./conf", filepath.Join("conf", "leak"), "symbolic link to", "outside the project directory"}},
		{"configs file through a symlink", "services:\n  web: {}\nconfigs:\n  app:\n    file: ./c.conf\n",
			func(t *testing.T, dir string) {
				symlink(t, filepath.Join(filepath.Dir(dir), "secret"), filepath.Join(dir, "c.conf"))
			},
			[]string{"configs.app.file ./c.conf", "symbolic link to", "outside the project directory"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := escapeProject(t)
			if tc.setup != nil {
				tc.setup(t, dir)
			}
			files, err := ReferencedFiles(decode(t, []byte(tc.compose)), dir)
			if err == nil {
				t.Fatalf("no error, files %v", files)
			}
			if exit.Code(err) != exit.Usage {
				t.Errorf("exit code %d, want 2: %v", exit.Code(err), err)
			}
			for _, p := range tc.parts {
				if !strings.Contains(err.Error(), p) {
					t.Errorf("error %q does not mention %q", err, p)
				}
			}
		})
	}
}

// What stays legal: a build context of .., absolute paths (server paths,
// not uploaded), and symbolic links whose targets stay in the project.
func TestReferencedFilesAllowed(t *testing.T) {
	dir := escapeProject(t)
	symlink(t, "conf/app.conf", filepath.Join(dir, "app.conf"))
	symlink(t, "../conf/app.conf", filepath.Join(dir, "conf", "alias.conf"))
	outside := filepath.Join(filepath.Dir(dir), "secret")
	compose := "services:\n  web:\n    build: {context: .., dockerfile: proj/Dockerfile}\n" +
		"    volumes: ['" + outside + ":/run/secret:ro', './conf:/etc/app:ro', './app.conf:/app.conf']\n" +
		"    env_file: [" + outside + "]\n"
	files, err := ReferencedFiles(decode(t, []byte(compose)), dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(files, " "), "app.conf conf"; got != want {
		t.Fatalf("files = %q, want %q (absolute paths are server paths)", got, want)
	}
}
