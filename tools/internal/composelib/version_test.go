package composelib

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/slipway-dev/slipway/tools/internal/testenv"
)

func TestVersionMatchesGoMod(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*github\.com/docker/compose/v5 v(\S+)`).FindSubmatch(mod)
	if m == nil {
		t.Fatal("go.mod requires no github.com/docker/compose/v5")
	}
	if string(m[1]) != Version {
		t.Errorf("composelib.Version %q, go.mod has %q: update the constant with the module", Version, m[1])
	}
}
