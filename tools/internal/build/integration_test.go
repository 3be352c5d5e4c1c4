package build

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/slipway-dev/slipway/tools/internal/engine"
	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/manifest"
	"github.com/slipway-dev/slipway/tools/internal/plan"
	"github.com/slipway-dev/slipway/tools/internal/progress"
	"github.com/slipway-dev/slipway/tools/internal/regauth"
	"github.com/slipway-dev/slipway/tools/internal/testenv"
)

func realEngine(t *testing.T) (*testenv.Env, *engine.Client) {
	t.Helper()
	env := testenv.Require(t)
	eng, err := engine.New(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return env, eng
}

func randomName(t *testing.T) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "slwbuild" + hex.EncodeToString(b[:])
}

// onePlan is a plan of one service built from dir, with the image in the
// test registry's namespace (never pushed here) and credentials for it.
func onePlan(t *testing.T, env *testenv.Env, svc, dir string, bc types.BuildConfig) (*plan.Plan, *regauth.Store) {
	t.Helper()
	bc.Context = dir
	img := env.Registry + "/slipway-it/" + randomName(t) + "-" + svc
	tags := []string{strings.Repeat("c", 40), "latest"}
	p := &plan.Plan{
		Project: &types.Project{Name: "it", WorkingDir: dir, Environment: types.Mapping{}},
		Manifest: &manifest.Manifest{Project: "it", Commit: strings.Repeat("c", 40), Source: "https://git.example/it.git",
			Services: map[string]manifest.Service{svc: {Image: img, Tags: tags}}},
		Builds: []plan.Build{{Service: svc, Image: img, Tags: tags, Config: bc}},
	}
	store := regauth.New(regauth.Options{
		Getenv: func(k string) string {
			return map[string]string{regauth.EnvUser: env.RegistryUser, regauth.EnvPassword: env.RegistryPassword, "HOME": t.TempDir()}[k]
		},
		EnvHosts: []string{env.Registry},
	})
	t.Cleanup(func() {
		for _, r := range p.Builds[0].Refs() {
			exec := func() error {
				eng, err := engine.New(context.Background())
				if err != nil {
					return err
				}
				defer eng.Close()
				return eng.RemoveImage(context.Background(), r, true)
			}
			_ = exec()
		}
	})
	return p, store
}

func TestRealBuildContextArgsTargetLabels(t *testing.T) {
	env, eng := realEngine(t)
	root := t.TempDir()
	write(t, root, map[string]string{
		// The Dockerfile lives outside the context; the build itself checks
		// what the context holds, so a wrong .dockerignore fails the build.
		"docker/app.Dockerfile": "ARG BASE\nFROM ${BASE} AS base\nCOPY . /ctx/\n" +
			"RUN test -e /ctx/app.txt && test ! -e /ctx/secret.env && test ! -e /ctx/logs/a.log && echo context-ok\n" +
			"ARG GREETING\nRUN test \"$GREETING\" = hello && echo \"args-ok $GREETING\"\n" +
			"FROM base AS final\nRUN echo final-stage-must-not-run && false\n",
		"ctx/app.txt":       "app",
		"ctx/secret.env":    "PASSWORD=x",
		"ctx/logs/a.log":    "x",
		"ctx/.dockerignore": "secret.env\nlogs\n",
	})
	hello, base := "hello", env.FixtureImage("debian:bookworm")
	p, store := onePlan(t, env, "app", root+"/ctx", types.BuildConfig{
		Dockerfile: "../docker/app.Dockerfile",
		Args:       types.MappingWithEquals{"GREETING": &hello, "BASE": &base},
		Target:     "base",
		Labels:     types.Labels{"team": "shop"},
		ExtraHosts: types.HostsList{"db.internal": []string{"10.213.0.99"}},
		ShmSize:    types.UnitBytes(128 << 20),
	})
	var mu sync.Mutex
	var out strings.Builder
	log := progress.New(writerFunc(func(b []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return out.Write(b) }))
	ids, err := Images(context.Background(), eng, p, Config{Pull: true, Auth: store, Log: log})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"[app] context-ok", "[app] args-ok hello"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("build output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "final-stage-must-not-run") {
		t.Error("target was not honoured")
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
	want := map[string]string{LabelSource: "https://git.example/it.git", "team": "shop"}
	for k, v := range want {
		if labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, labels[k], v)
		}
	}
}

func TestRealBuildFailureNamesServiceAndStep(t *testing.T) {
	env, eng := realEngine(t)
	dir := t.TempDir()
	write(t, dir, map[string]string{"Dockerfile": "FROM " + env.FixtureImage("debian:bookworm") + "\n" +
		"RUN echo preparing\nRUN echo boom-output-line; echo second-line >&2; exit 3\nRUN echo never\n"})
	p, store := onePlan(t, env, "broken", dir, types.BuildConfig{})
	_, err := Images(context.Background(), eng, p, Config{Auth: store})
	var be *Error
	if !errors.As(err, &be) {
		t.Fatalf("want *build.Error, got %T %v", err, err)
	}
	if be.Service != "broken" || !strings.HasPrefix(be.Step, "Step 3/") || !strings.Contains(be.Step, ": RUN echo boom-output-line") {
		t.Errorf("service %q step %q", be.Service, be.Step)
	}
	msg := err.Error()
	for _, want := range []string{"building service broken failed", "returned a non-zero code: 3", "| boom-output-line", "| second-line"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "| preparing") {
		t.Errorf("error shows output of an earlier step:\n%s", msg)
	}
}

func TestRealBuildCancelStopsTheBuild(t *testing.T) {
	env, eng := realEngine(t)
	dir := t.TempDir()
	marker := randomName(t)
	write(t, dir, map[string]string{"Dockerfile": "FROM " + env.FixtureImage("debian:bookworm") + "\n" +
		"RUN echo " + marker + " && sleep 600\n"})
	p, store := onePlan(t, env, "slow", dir, types.BuildConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := progress.New(writerFunc(func(b []byte) (int, error) {
		if strings.Contains(string(b), "] "+marker) {
			cancel() // the RUN step is executing: stop now
		}
		return len(b), nil
	}))
	_, err := Images(ctx, eng, p, Config{Auth: store, Log: log})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
	// The engine must stop the build container, not leave it sleeping.
	deadline := time.Now().Add(60 * time.Second)
	for {
		n, err := runningWith(marker)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d build container(s) still running 60s after cancel", n)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// runningWith counts running containers whose command mentions s (a test
// check through the raw API, as testenv allows).
func runningWith(s string) (int, error) {
	c, base, err := testenv.EngineClient(os.Getenv("DOCKER_HOST"))
	if err != nil {
		return 0, err
	}
	resp, err := c.Get(base + "/containers/json")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var list []struct{ Command string }
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return 0, err
	}
	n := 0
	for _, ct := range list {
		if strings.Contains(ct.Command, s) {
			n++
		}
	}
	return n, nil
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

func TestRunMissingDockerfileIsBadInput(t *testing.T) {
	env := testenv.Require(t)
	repo := testenv.SampleAppRepo(t)
	t.Setenv("SLIPWAY_FIXTURE_REGISTRY", env.FixtureRegistry)
	if err := os.Remove(filepath.Join(repo, "web", "Dockerfile")); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(repo, "release.json")
	_, err := Run(context.Background(), Options{Plan: plan.Options{WorkDir: repo, AllowDirty: true, Registry: env.Registry + "/slipway-it"}, Manifest: out})
	if exit.Code(err) != exit.Usage {
		t.Fatalf("want exit 2, got %d: %v", exit.Code(err), err)
	}
	for _, want := range []string{`"web"`, filepath.Join(repo, "web", "Dockerfile")} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if _, statErr := os.Stat(out); statErr == nil {
		t.Error("a manifest was written for a failed build")
	}
}
