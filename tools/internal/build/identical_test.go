package build

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/tools/internal/manifest"
)

func TestReportIdentical(t *testing.T) {
	mk := func(commit string, ids map[string]string) *manifest.Manifest {
		m := &manifest.Manifest{Project: "shop", Commit: commit, ShortCommit: commit[:12], Services: map[string]manifest.Service{}}
		for svc, id := range ids {
			m.Services[svc] = manifest.Service{Image: "reg.example:5000/shop-" + svc, Tags: []string{commit}, ImageID: id}
		}
		return m
	}
	id := func(c string) string { return "sha256:" + strings.Repeat(c, 64) }
	path := filepath.Join(t.TempDir(), "slipway-release.json")
	prev := mk(strings.Repeat("a", 40), map[string]string{"api": id("1"), "init-db": id("2"), "web": id("3")})
	if err := manifest.Write(path, prev); err != nil {
		t.Fatal(err)
	}
	next := mk(strings.Repeat("b", 40), map[string]string{"api": id("4"), "init-db": id("2"), "web": id("3"), "new": id("5")})
	var out captured
	reportIdentical(out.logger(), path, next)
	want := "compared with the previous build (commit aaaaaaaaaaaa): identical image: init-db, web; new image: api"
	if !strings.Contains(out.String(), want) {
		t.Errorf("log %q, want %q", out.String(), want)
	}

	// No previous manifest, another project, or the same commit: nothing said.
	for name, p := range map[string]string{"missing": filepath.Join(t.TempDir(), "none.json"), "same commit": path} {
		var out captured
		m := next
		if name == "same commit" {
			m = mk(prev.Commit, map[string]string{"api": id("1")})
		}
		reportIdentical(out.logger(), p, m)
		if out.String() != "" {
			t.Errorf("%s: said %q", name, out.String())
		}
	}
}
