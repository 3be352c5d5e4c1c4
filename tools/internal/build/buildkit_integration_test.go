package build

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/slipway-dev/slipway/tools/internal/buildkit"
	"github.com/slipway-dev/slipway/tools/internal/engine"
	"github.com/slipway-dev/slipway/tools/internal/progress"
	"github.com/slipway-dev/slipway/tools/internal/testenv"
)

func connectBuildKit(t *testing.T, eng *engine.Client, target buildkit.Target) *buildkit.Builder {
	t.Helper()
	bk, err := buildkit.Connect(context.Background(), target, eng)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bk.Close() })
	return bk
}

// captured is a progress logger whose output the test reads.
type captured struct {
	mu  sync.Mutex
	out strings.Builder
}

func (c *captured) logger() *progress.Logger {
	return progress.New(writerFunc(func(b []byte) (int, error) { c.mu.Lock(); defer c.mu.Unlock(); return c.out.Write(b) }))
}

func (c *captured) String() string { c.mu.Lock(); defer c.mu.Unlock(); return c.out.String() }

// featuresDockerfile needs BuildKit's frontend for every line that matters:
// the FROM needs the build arg (so the arg was passed), heredocs, COPY
// --link, a cache mount, a secret mount, a named context and a target.
const featuresDockerfile = `# syntax=docker/dockerfile:1
ARG SLW_BUILD_TOKEN
ARG BASE_IMAGE
FROM ${SLW_BUILD_TOKEN:+${BASE_IMAGE}} AS app
COPY --link app.txt /app/app.txt
COPY --from=extra notes.txt /app/notes.txt
RUN <<EOF
set -e
grep -q '^app ' /app/app.txt
test "$(cat /app/notes.txt)" = notes
echo heredoc-ok
EOF
RUN --mount=type=cache,target=/cache sh -c 'date +%s%N >> /cache/runs; echo cache-runs-$(wc -l < /cache/runs)'
RUN --mount=type=secret,id=token,required=true sh -c 'test -s /run/secrets/token && echo secret-ok'
FROM app AS final
RUN echo final-stage-must-not-run && false
`

func TestBuildKitEngineFeatures(t *testing.T) {
	env, eng := realEngine(t)
	root := t.TempDir()
	secret := "s3cr$t value " + randomName(t)
	write(t, root, map[string]string{
		"ctx/Dockerfile":  featuresDockerfile,
		"ctx/app.txt":     "app " + randomName(t), // a new build, not a cached one
		"extra/notes.txt": "notes",
	})
	base := env.FixtureImage("debian:bookworm")
	token := "yes"
	p, store := onePlan(t, env, "app", root+"/ctx", types.BuildConfig{
		Args:               types.MappingWithEquals{"SLW_BUILD_TOKEN": &token, "BASE_IMAGE": &base},
		Target:             "app",
		AdditionalContexts: types.Mapping{"extra": root + "/extra"},
		Secrets:            []types.ServiceSecretConfig{{Source: "tok", Target: "token"}},
		Labels:             types.Labels{"team": "shop"},
		ExtraHosts:         types.HostsList{"db.internal": []string{"10.213.0.99"}},
		ShmSize:            types.UnitBytes(128 << 20),
		Ulimits:            map[string]*types.UlimitsConfig{"nofile": {Soft: 1024, Hard: 2048}},
	})
	p.Project.Secrets = types.Secrets{"tok": {Environment: "SLW_TEST_TOKEN"}}
	getenv := func(k string) string {
		if k == "SLW_TEST_TOKEN" {
			return secret
		}
		return ""
	}
	bk := connectBuildKit(t, eng, buildkit.Target{Kind: buildkit.Engine})
	var out captured
	ids, err := Images(context.Background(), eng, p, Config{Pull: true, Auth: store, Log: out.logger(), BuildKit: bk, Getenv: getenv})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	log := out.String()
	for _, want := range []string{"[app] ", "heredoc-ok", "cache-runs-", "secret-ok", "pulling " + base} {
		if !strings.Contains(log, want) {
			t.Errorf("build output lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "final-stage-must-not-run") {
		t.Error("target was not honoured")
	}
	if strings.Contains(log, secret) {
		t.Errorf("the build secret is in the build output:\n%s", log)
	}
	for _, ref := range p.Builds[0].Refs() {
		id, err := eng.ImageID(context.Background(), ref)
		if err != nil || id != ids["app"] {
			t.Errorf("tag %s: id %s err %v, want %s", ref, id, err, ids["app"])
		}
	}
	labels, err := eng.ImageLabels(context.Background(), ids["app"])
	if err != nil {
		t.Fatal(err)
	}
	if labels["team"] != "shop" || labels[LabelSource] != "https://git.example/it.git" {
		t.Errorf("labels %v", labels)
	}
	hist := imageHistory(t, ids["app"])
	if !strings.Contains(hist, "secret-ok") {
		t.Errorf("history does not look like this build's:\n%s", hist)
	}
	if strings.Contains(hist, secret) {
		t.Errorf("the secret is in the image history:\n%s", hist)
	}
}

// TestBuildKitServiceContextAndSameID: a service built FROM another one's
// image through additional_contexts service:, and a rebuild from another
// commit (nothing the images use changed) gives the same image IDs.
func TestBuildKitServiceContextAndSameID(t *testing.T) {
	env, eng := realEngine(t)
	root := t.TempDir()
	write(t, root, map[string]string{
		"base/Dockerfile": "FROM " + env.FixtureImage("debian:bookworm") + "\nRUN echo base > /base.txt\n",
		"app/Dockerfile":  "FROM basectx\nCOPY --link hi.txt /hi.txt\nRUN test \"$(cat /base.txt)\" = base && echo from-service-ok\n",
		"app/hi.txt":      "hi",
	})
	p, store := onePlan(t, env, "base", root+"/base", types.BuildConfig{})
	p2, _ := onePlan(t, env, "app", root+"/app", types.BuildConfig{AdditionalContexts: types.Mapping{"basectx": "service:base"}})
	app := p2.Builds[0]
	app.DependsOn = []string{"base"}
	p.Builds = append(p.Builds, app)
	p.Manifest.Services["app"] = p2.Manifest.Services["app"]
	bk := connectBuildKit(t, eng, buildkit.Target{Kind: buildkit.Engine})
	build := func(commit string, revision bool) map[string]string {
		t.Helper()
		p.Manifest.Commit = commit
		var out captured
		ids, err := Images(context.Background(), eng, p, Config{Auth: store, Log: out.logger(), BuildKit: bk, Parallel: 2, LabelRevision: revision})
		if err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
		return ids
	}
	first := build(strings.Repeat("a", 40), false)
	second := build(strings.Repeat("b", 40), false)
	for _, svc := range []string{"base", "app"} {
		if first[svc] == "" || first[svc] != second[svc] {
			t.Errorf("%s: image IDs %s and %s from identical inputs", svc, first[svc], second[svc])
		}
	}
	// --label-revision stamps the commit: every commit gives new images.
	third := build(strings.Repeat("c", 40), true)
	if third["base"] == first["base"] {
		t.Errorf("base: --label-revision gave the same image ID %s as a build without it", third["base"])
	}
	if got := imageLabels(t, third["base"])[LabelRevision]; got != strings.Repeat("c", 40) {
		t.Errorf("base: label %s = %q, want the commit", LabelRevision, got)
	}
	if !strings.Contains(imageHistory(t, first["app"]), "from-service-ok") {
		t.Error("app was not built from base's image")
	}
}

// imageLabels are the image's config labels.
func imageLabels(t *testing.T, id string) map[string]string {
	t.Helper()
	c, base, err := testenv.EngineClient("")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Get(base + "/images/" + id + "/json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct {
		Config struct{ Labels map[string]string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v.Config.Labels
}

// imageHistory is the image's history (created_by lines) as JSON text.
func imageHistory(t *testing.T, id string) string {
	t.Helper()
	c, base, err := testenv.EngineClient("")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Get(base + "/images/" + id + "/history")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v []map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// TestBuildKitStandaloneDaemon builds through the test services' own
// buildkitd (tcp:// and unix://): the image is loaded into the engine, and
// the BuildKit-only syntax works there too.
func TestBuildKitStandaloneDaemon(t *testing.T) {
	env, eng := realEngine(t)
	if env.BuildKitd == "" || env.BuildKitdSocket == "" {
		t.Fatalf("%s/env.json names no buildkitd: run test/scripts/services.sh up again", env.StateDir)
	}
	for _, addr := range []string{env.BuildKitd, env.BuildKitdSocket} {
		t.Run(strings.SplitN(addr, ":", 2)[0], func(t *testing.T) {
			target, err := buildkit.ParseTarget(addr)
			if err != nil {
				t.Fatal(err)
			}
			root := t.TempDir()
			mark := randomName(t)
			write(t, root, map[string]string{
				"Dockerfile": "# syntax=docker/dockerfile:1\nARG BASE\nFROM $BASE\nCOPY --link m.txt /m.txt\n" +
					"RUN <<EOF\ngrep -q " + mark + " /m.txt && echo remote-heredoc-ok\nEOF\n",
				"m.txt": mark,
			})
			base := env.FixtureImage("debian:bookworm")
			p, store := onePlan(t, env, "remote", root, types.BuildConfig{Args: types.MappingWithEquals{"BASE": &base}})
			bk := connectBuildKit(t, eng, target)
			var out captured
			ids, err := Images(context.Background(), eng, p, Config{Pull: true, Auth: store, Log: out.logger(), BuildKit: bk})
			if err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			// The loaded image by ID too, not only the tags onePlan removes.
			t.Cleanup(func() { _ = eng.RemoveImage(context.Background(), ids["remote"], true) })
			if !strings.Contains(out.String(), "remote-heredoc-ok") {
				t.Errorf("build output lacks remote-heredoc-ok:\n%s", out.String())
			}
			for _, ref := range p.Builds[0].Refs() {
				id, err := eng.ImageID(context.Background(), ref)
				if err != nil || id != ids["remote"] {
					t.Errorf("tag %s in the engine: id %s err %v, want %s", ref, id, err, ids["remote"])
				}
			}
		})
	}
}

func TestBuildKitFailureNamesServiceAndOutput(t *testing.T) {
	env, eng := realEngine(t)
	dir := t.TempDir()
	write(t, dir, map[string]string{"Dockerfile": "FROM " + env.FixtureImage("debian:bookworm") + "\n" +
		"RUN echo boom-output-line-" + randomName(t) + "; echo second-line >&2; exit 3\nRUN echo never\n"})
	p, store := onePlan(t, env, "broken", dir, types.BuildConfig{})
	bk := connectBuildKit(t, eng, buildkit.Target{Kind: buildkit.Engine})
	_, err := Images(context.Background(), eng, p, Config{Auth: store, BuildKit: bk})
	var be *Error
	if !errors.As(err, &be) || be.Service != "broken" {
		t.Fatalf("want *build.Error for service broken, got %T %v", err, err)
	}
	msg := err.Error()
	for _, want := range []string{"building service broken failed", "exit code: 3", "boom-output-line-", "second-line"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
}

// TestBuildKitDockerfileOutsideContextAndIgnore: a Dockerfile outside the
// context, a .dockerignore, and dockerfile_inline; the builds check what the
// context holds themselves, so a wrong context fails them.
func TestBuildKitDockerfileOutsideContextAndIgnore(t *testing.T) {
	env, eng := realEngine(t)
	root := t.TempDir()
	base := env.FixtureImage("debian:bookworm")
	check := "COPY . /ctx/\nRUN test -e /ctx/app.txt && test ! -e /ctx/secret.env && test ! -e /ctx/logs/a.log && echo context-ok-" + randomName(t) + "\n"
	write(t, root, map[string]string{
		"docker/app.Dockerfile": "FROM " + base + "\n" + check,
		"ctx/app.txt":           "app",
		"ctx/secret.env":        "PASSWORD=x",
		"ctx/logs/a.log":        "x",
		"ctx/.dockerignore":     "secret.env\nlogs\n",
	})
	bk := connectBuildKit(t, eng, buildkit.Target{Kind: buildkit.Engine})
	for name, bc := range map[string]types.BuildConfig{
		"outside": {Dockerfile: "../docker/app.Dockerfile"},
		"inline":  {DockerfileInline: "FROM " + base + "\n" + check},
	} {
		t.Run(name, func(t *testing.T) {
			p, store := onePlan(t, env, "app", root+"/ctx", bc)
			var out captured
			if _, err := Images(context.Background(), eng, p, Config{Auth: store, Log: out.logger(), BuildKit: bk}); err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			if !strings.Contains(out.String(), "context-ok-") {
				t.Errorf("build output lacks context-ok:\n%s", out.String())
			}
		})
	}
}
