package cli

import (
	"os"
	"path/filepath"
	"testing"
)

// TestDocsUpToDate fails when docs/CLI.md differs from what the binary's own
// help says; run `make docs` to regenerate it.
func TestDocsUpToDate(t *testing.T) {
	want, err := Markdown()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "..", "..", "docs", "CLI.md")
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s: %v (run make docs)", path, err)
	}
	if string(got) != want {
		t.Fatalf("%s is out of date with the command tree: run `make docs` and commit it", path)
	}
}
