package plan

import (
	"encoding/json"
	"testing"
)

func TestLoadBasic(t *testing.T) {
	dir := repoFrom(t, "basic")
	p, err := load(t, Options{WorkDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.MarshalIndent(p.Manifest, "", "  ")
	t.Logf("%s", b)
	for _, x := range p.Builds {
		t.Logf("%s %v deps=%v ctx=%s df=%s", x.Service, x.Refs(), x.DependsOn, x.Config.Context, x.Config.Dockerfile)
	}
}

func TestLoadProjectRawSmoke(t *testing.T) {
	dir := repoFrom(t, "basic")
	p, err := LoadProject(t.Context(), Options{WorkDir: dir, Environ: env("REGISTRY", "x")}, false)
	if err != nil {
		t.Fatal(err)
	}
	y, _ := p.MarshalYAML()
	t.Logf("%s", y)
}
