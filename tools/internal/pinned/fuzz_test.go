package pinned

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoadModelReferencedFiles: any compose file either loads and lists its
// files (each a clean relative path inside the project), or fails with a
// message; never a panic.
func FuzzLoadModelReferencedFiles(f *testing.F) {
	for _, s := range []string{
		"services:\n  web:\n    image: x\n    volumes: ['./conf:/c', '../up:/u', '/srv:/srv']\n    env_file: [a.env]\n",
		"services:\n  web:\n    image: x\nconfigs:\n  c:\n    file: ./c.conf\n",
		"x: &a [*a]\n", "services: []\n", "", "services:\n  a:\n    extends: a\n",
		"services:\n  plex:\n    image: x\n    volumes: ['${MEDIA}:/media/', '${LOG:-./logs}:/logs:ro', '.:/code', 'data:/d']\nvolumes:\n  data: {}\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, compose string) {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "conf"), 0o755); err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(dir, "compose.yaml")
		if err := os.WriteFile(file, []byte(compose), 0o644); err != nil {
			t.Fatal(err)
		}
		m, err := LoadModel(context.Background(), LoadOptions{ProjectName: "fuzz", ProjectDir: dir, Files: []string{file}})
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		for _, tg := range []Target{ComposeV2, ComposeV1, Swarm} {
			_, _ = Render(m, tg) // an error is fine; a panic is not
		}
		files, err := ReferencedFiles(m, dir)
		if err != nil {
			return
		}
		for _, p := range files {
			if p == "" || filepath.IsAbs(p) || p == ".." || strings.HasPrefix(p, "../") {
				t.Fatalf("referenced file %q is not inside the project", p)
			}
		}
	})
}
