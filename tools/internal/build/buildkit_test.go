package build

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/slipway-dev/slipway/tools/internal/buildkit"
	"github.com/slipway-dev/slipway/tools/internal/exit"
)

// fakeBuildKit records the requests it gets.
type fakeBuildKit struct {
	mu   sync.Mutex
	kind buildkit.Kind
	reqs map[string]buildkit.Request
}

func (f *fakeBuildKit) Target() buildkit.Target { return buildkit.Target{Kind: f.kind} }

func (f *fakeBuildKit) Build(_ context.Context, r buildkit.Request) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.reqs == nil {
		f.reqs = map[string]buildkit.Request{}
	}
	f.reqs[r.Service] = r
	return "sha256:" + r.Service, nil
}

func TestBuildKitRequestMapping(t *testing.T) {
	f := newFake()
	p := testPlan(t, map[string][]string{"api": {"base"}}, "base", "api")
	dir := p.Project.WorkingDir
	write(t, dir, map[string]string{"token.txt": "from-file", "shared/x": "x"})
	val := "1.2"
	p.Builds[1].Config = types.BuildConfig{
		Context:            dir,
		Args:               types.MappingWithEquals{"VERSION": &val, "FROM_ENV": nil, "UNSET": nil},
		Target:             "prod",
		Labels:             types.Labels{"team": "shop"},
		Secrets:            []types.ServiceSecretConfig{{Source: "file"}, {Source: "env", Target: "renamed"}},
		SSH:                types.SSHConfig{{ID: "default"}, {ID: "deploy", Path: "/keys/id"}},
		AdditionalContexts: types.Mapping{"base": "service:base", "shared": "shared", "img": "docker-image://alpine"},
		CacheFrom:          []string{"reg/app:cache"},
		CacheTo:            []string{"type=inline"},
		ExtraHosts:         types.HostsList{"db": []string{"10.0.0.5"}},
		Network:            "host",
		ShmSize:            types.UnitBytes(64 << 20),
		Ulimits:            map[string]*types.UlimitsConfig{"nofile": {Soft: 10, Hard: 20}, "nproc": {Single: 5}},
		Tags:               []string{"extra.example/api:dev"},
	}
	p.Project.Secrets = types.Secrets{"file": {File: filepath.Join(dir, "token.txt")}, "env": {Environment: "TOKEN"}}
	p.Project.Services = types.Services{"api": {Name: "api", Platform: "linux/arm64"}}
	bk := &fakeBuildKit{}
	getenv := func(k string) string { return map[string]string{"TOKEN": "from-env"}[k] }
	if _, err := Images(context.Background(), f, p, Config{BuildKit: bk, Getenv: getenv, Parallel: 2}); err != nil {
		t.Fatal(err)
	}
	r := bk.reqs["api"]
	if r.Target != "prod" || r.Network != "host" || r.ShmSize != 64<<20 || r.Platform != "linux/arm64" {
		t.Errorf("target/network/shm/platform: %+v", r)
	}
	if r.Args["VERSION"] != "1.2" || r.Args["FROM_ENV"] != "yes" || len(r.Args) != 2 {
		t.Errorf("args: %v", r.Args)
	}
	if len(r.Labels) != 2 || r.Labels["team"] != "shop" || r.Labels[LabelSource] != "https://git.example/shop.git" {
		t.Errorf("labels: %v", r.Labels)
	}
	if string(r.Secrets["file"]) != "from-file" || string(r.Secrets["renamed"]) != "from-env" || len(r.Secrets) != 2 {
		t.Errorf("secrets: %q", r.Secrets)
	}
	if len(r.SSH) != 2 || r.SSH[0].ID != "default" || len(r.SSH[0].Paths) != 0 || r.SSH[1].Paths[0] != "/keys/id" {
		t.Errorf("ssh: %+v", r.SSH)
	}
	if r.Contexts["base"] != "docker-image://reg.example:5000/shop-base:"+strings.Repeat("a", 40) ||
		r.Contexts["shared"] != filepath.Join(dir, "shared") || r.Contexts["img"] != "docker-image://alpine" {
		t.Errorf("contexts: %v", r.Contexts)
	}
	if strings.Join(r.ExtraHosts, ",") != "db=10.0.0.5" {
		t.Errorf("extra hosts: %v", r.ExtraHosts)
	}
	if strings.Join(r.Ulimits, ",") != "nofile=10:20,nproc=5:5" && strings.Join(r.Ulimits, ",") != "nproc=5:5,nofile=10:20" {
		t.Errorf("ulimits: %v", r.Ulimits)
	}
	if r.Dockerfile != filepath.Join(dir, "Dockerfile") || r.Context != dir {
		t.Errorf("context %s dockerfile %s", r.Context, r.Dockerfile)
	}
	if len(r.Tags) != 3 || r.Tags[2] != "extra.example/api:dev" || r.CacheFrom[0] != "reg/app:cache" || r.CacheTo[0] != "type=inline" {
		t.Errorf("tags %v cache %v %v", r.Tags, r.CacheFrom, r.CacheTo)
	}
	if len(f.pulls) != 0 {
		t.Errorf("pulled without --pull: %v", f.pulls)
	}
}

func TestBuildKitPullsBaseImagesFirst(t *testing.T) {
	f := newFake()
	f.pullOK = true
	p := testPlan(t, nil, "api")
	write(t, p.Project.WorkingDir, map[string]string{"Dockerfile": "ARG TOKEN\nARG BASE=10.0.0.1:5000/base/debian:bookworm\nFROM ${TOKEN:+${BASE}} AS b\nFROM b\nFROM scratch\n"})
	tok := "t"
	p.Builds[0].Config.Args = types.MappingWithEquals{"TOKEN": &tok}
	if _, err := Images(context.Background(), f, p, Config{Pull: true, BuildKit: &fakeBuildKit{}}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(f.pulls, " ") != "10.0.0.1:5000/base/debian:bookworm" {
		t.Errorf("pulls: %v", f.pulls)
	}
	// A standalone buildkitd checks the registry itself.
	f = newFake()
	bk := &fakeBuildKit{kind: buildkit.Remote}
	if _, err := Images(context.Background(), f, p, Config{Pull: true, BuildKit: bk}); err != nil {
		t.Fatal(err)
	}
	if len(f.pulls) != 0 || !bk.reqs["api"].Pull {
		t.Errorf("remote: engine pulls %v, request pull %v", f.pulls, bk.reqs["api"].Pull)
	}
}

func TestBuildKitKeysThatCannotBeHonoured(t *testing.T) {
	for name, tc := range map[string]struct {
		bc      types.BuildConfig
		svcPlat string
		remote  bool
		want    string
	}{
		"platforms":           {bc: types.BuildConfig{Platforms: []string{"linux/amd64", "linux/arm64"}}, want: "build.platforms"},
		"platform not listed": {bc: types.BuildConfig{Platforms: []string{"linux/amd64"}}, svcPlat: "linux/arm64", want: "not in build.platforms"},
		"privileged":          {bc: types.BuildConfig{Privileged: true}, want: "build.privileged"},
		"network":             {bc: types.BuildConfig{Network: "shop_backend"}, want: "build.network"},
		"entitlements":        {bc: types.BuildConfig{Entitlements: []string{"network.host"}}, want: "build.entitlements"},
		"secret undefined":    {bc: types.BuildConfig{Secrets: []types.ServiceSecretConfig{{Source: "nope"}}}, want: `secret "nope" is not defined`},
		"secret env unset":    {bc: types.BuildConfig{Secrets: []types.ServiceSecretConfig{{Source: "env"}}}, want: "$UNSET_TOKEN, which is not set"},
		"service context":     {bc: types.BuildConfig{AdditionalContexts: types.Mapping{"b": "service:other"}}, want: "service other is not built in this run"},
		"service ctx remote":  {bc: types.BuildConfig{AdditionalContexts: types.Mapping{"b": "service:other"}}, remote: true, want: "standalone buildkitd"},
	} {
		t.Run(name, func(t *testing.T) {
			p := testPlan(t, nil, "api")
			bc := tc.bc
			bc.Context = p.Project.WorkingDir
			p.Builds[0].Config = bc
			p.Project.Secrets = types.Secrets{"env": {Environment: "UNSET_TOKEN"}}
			p.Project.Services = types.Services{"api": {Name: "api", Platform: tc.svcPlat}}
			bk := &fakeBuildKit{}
			if tc.remote {
				bk.kind = buildkit.Remote
			}
			_, err := Images(context.Background(), newFake(), p, Config{BuildKit: bk, Getenv: func(string) string { return "" }})
			if exit.Code(err) != exit.Usage || !strings.Contains(err.Error(), "service api") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want exit 2 naming service api and %q, got %d: %v", tc.want, exit.Code(err), err)
			}
			if len(bk.reqs) != 0 {
				t.Error("built anyway")
			}
		})
	}
}

func TestBuildKitDefaultPlatformFromEnvironment(t *testing.T) {
	p := testPlan(t, nil, "api")
	bk := &fakeBuildKit{}
	getenv := func(k string) string { return map[string]string{"DOCKER_DEFAULT_PLATFORM": "linux/arm/v7"}[k] }
	if _, err := Images(context.Background(), newFake(), p, Config{BuildKit: bk, Getenv: getenv}); err != nil {
		t.Fatal(err)
	}
	if bk.reqs["api"].Platform != "linux/arm/v7" {
		t.Errorf("platform %q", bk.reqs["api"].Platform)
	}
}

func TestLineLogKeepsTheLastLines(t *testing.T) {
	var out captured
	l := newLineLog(out.logger().With("svc"))
	for i := 0; i < keepLines+5; i++ {
		l.Write([]byte("line " + strings.Repeat("x", i%3) + "\n#"))
	}
	l.Write([]byte("partial"))
	l.Close()
	if len(l.lines) != keepLines || l.lines[len(l.lines)-1] != "#partial" {
		t.Errorf("lines %q", l.lines[len(l.lines)-2:])
	}
	if !strings.Contains(out.String(), "[svc] #partial") {
		t.Errorf("log:\n%s", out.String())
	}
}
