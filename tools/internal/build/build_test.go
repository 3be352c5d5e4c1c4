package build

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/slipway-dev/slipway/tools/internal/engine"
	"github.com/slipway-dev/slipway/tools/internal/manifest"
	"github.com/slipway-dev/slipway/tools/internal/plan"
	"github.com/slipway-dev/slipway/tools/internal/progress"
	"github.com/slipway-dev/slipway/tools/internal/regauth"
)

// fakeEngine records builds; each build blocks until released when gate is set.
type fakeEngine struct {
	pullOK    bool // Pull succeeds (else "manifest unknown")
	mu        sync.Mutex
	active    int
	maxActive int
	order     []string
	finished  map[string]bool
	started   chan string
	gate      map[string]chan struct{}
	fail      map[string]bool
	opts      map[string]engine.BuildOptions
	pulls     []string
}

func newFake(services ...string) *fakeEngine {
	f := &fakeEngine{finished: map[string]bool{}, started: make(chan string, 16), gate: map[string]chan struct{}{},
		fail: map[string]bool{}, opts: map[string]engine.BuildOptions{}}
	for _, s := range services {
		f.gate[s] = make(chan struct{})
	}
	return f
}

func svcOf(o engine.BuildOptions) string {
	// tags are "reg/proj-<svc>:tag"
	ref := o.Tags[0]
	name := ref[strings.LastIndex(ref, "-")+1:]
	return name[:strings.Index(name, ":")]
}

func (f *fakeEngine) Build(ctx context.Context, o engine.BuildOptions, fn func(engine.Message)) (string, error) {
	svc := svcOf(o)
	if o.Context != nil {
		io.Copy(io.Discard, o.Context)
	}
	f.mu.Lock()
	f.active++
	if f.active > f.maxActive {
		f.maxActive = f.active
	}
	f.order = append(f.order, svc)
	f.opts[svc] = o
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.active--
		f.mu.Unlock()
	}()
	f.started <- svc
	fn(engine.Message{Stream: "Step 1/2 : FROM scratch\n"})
	fn(engine.Message{Stream: " ---> abc\nStep 2/2 : RUN make\n"})
	fn(engine.Message{Stream: "compiling " + svc + "\n"})
	if g := f.gate[svc]; g != nil {
		select {
		case <-g:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	if f.fail[svc] {
		fn(engine.Message{Stream: "make: *** [all] Error 2\n"})
		err := &engine.StreamError{Code: 2, Message: "The command '/bin/sh -c make' returned a non-zero code: 2"}
		fn(engine.Message{Error: err})
		return "", err
	}
	f.mu.Lock()
	f.finished[svc] = true
	f.mu.Unlock()
	return "sha256:" + strings.Repeat(fmt.Sprint(len(svc)), 64), nil
}

func (f *fakeEngine) Pull(ctx context.Context, ref string, _ regauth.Auth, _ func(engine.Message)) error {
	f.mu.Lock()
	f.pulls = append(f.pulls, ref)
	f.mu.Unlock()
	if f.pullOK {
		return nil
	}
	return errors.New("manifest unknown")
}

func testPlan(t *testing.T, deps map[string][]string, services ...string) *plan.Plan {
	t.Helper()
	dir := t.TempDir()
	write(t, dir, map[string]string{"Dockerfile": "FROM 10.0.0.1:5000/base/debian:bookworm AS b\nFROM b\n"})
	m := &manifest.Manifest{Project: "shop", Commit: strings.Repeat("a", 40), Source: "https://git.example/shop.git",
		Services: map[string]manifest.Service{}}
	p := &plan.Plan{Project: &types.Project{Name: "shop", WorkingDir: dir, Environment: types.Mapping{"FROM_ENV": "yes"}}, Manifest: m}
	for _, s := range services {
		img := "reg.example:5000/shop-" + s
		p.Builds = append(p.Builds, plan.Build{Service: s, Image: img, Tags: []string{strings.Repeat("a", 40), "latest"},
			Config: types.BuildConfig{Context: dir}, DependsOn: deps[s]})
		m.Services[s] = manifest.Service{Image: img, Tags: []string{strings.Repeat("a", 40), "latest"}}
	}
	return p
}

func TestParallelBoundAndAllBuilt(t *testing.T) {
	svcs := []string{"a", "b", "c", "d"}
	f := newFake(svcs...)
	p := testPlan(t, nil, svcs...)
	errc := make(chan error, 1)
	var ids map[string]string
	go func() {
		var err error
		ids, err = Images(context.Background(), f, p, Config{Parallel: 2})
		errc <- err
	}()
	// Release builds one at a time as they start: at most two run at once.
	for range svcs {
		s := <-f.started
		close(f.gate[s])
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if f.maxActive > 2 {
		t.Fatalf("%d builds ran at once with --parallel 2", f.maxActive)
	}
	if len(ids) != 4 {
		t.Fatalf("ids = %v", ids)
	}
	if p.Manifest.Created == "" {
		t.Fatal("created not set")
	}
}

func TestParallelReachesTheBound(t *testing.T) {
	svcs := []string{"a", "b", "c"}
	f := newFake(svcs...)
	p := testPlan(t, nil, svcs...)
	errc := make(chan error, 1)
	go func() { _, err := Images(context.Background(), f, p, Config{Parallel: 2}); errc <- err }()
	first, second := <-f.started, <-f.started // both start while neither is released
	close(f.gate[first])
	close(f.gate[second])
	close(f.gate[<-f.started])
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if f.maxActive != 2 {
		t.Fatalf("max concurrent builds = %d, want 2", f.maxActive)
	}
}

func TestDependenciesBuildFirst(t *testing.T) {
	f := newFake() // no gates: builds finish immediately
	p := testPlan(t, map[string][]string{"app": {"base"}, "worker": {"base", "app"}}, "base", "app", "worker")
	if _, err := Images(context.Background(), f, p, Config{Parallel: 3}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.order, ","); got != "base,app,worker" {
		t.Fatalf("build order %s, want base,app,worker", got)
	}
}

func TestDependencyNotBuiltBeforeIsRejected(t *testing.T) {
	f := newFake()
	p := testPlan(t, map[string][]string{"app": {"base"}}, "app", "base")
	_, err := Images(context.Background(), f, p, Config{})
	if err == nil || !strings.Contains(err.Error(), "app depends on base") {
		t.Fatalf("want ordering error, got %v", err)
	}
}

func TestFailureNamesServiceStepAndOutput(t *testing.T) {
	f := newFake("ok", "bad")
	f.fail["bad"] = true
	p := testPlan(t, nil, "ok", "bad")
	var logbuf bytes.Buffer
	errc := make(chan error, 1)
	go func() {
		_, err := Images(context.Background(), f, p, Config{Parallel: 2, Log: progress.New(&logbuf)})
		errc <- err
	}()
	<-f.started
	<-f.started
	close(f.gate["bad"]) // "ok" stays blocked: the failure must cancel it
	err := <-errc
	var be *Error
	if !errors.As(err, &be) {
		t.Fatalf("want *build.Error, got %T %v", err, err)
	}
	if be.Service != "bad" || be.Step != "Step 2/2 : RUN make" {
		t.Fatalf("service %q step %q", be.Service, be.Step)
	}
	msg := err.Error()
	for _, want := range []string{"building service bad failed", "RUN make", "non-zero code: 2", "  | compiling bad", "  | make: *** [all] Error 2"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if f.finished["ok"] {
		t.Error("the other build was not cancelled")
	}
	if !strings.Contains(logbuf.String(), "[bad] compiling bad") {
		t.Errorf("output not streamed with the service prefix:\n%s", logbuf.String())
	}
}

func TestCancelStopsBuilds(t *testing.T) {
	f := newFake("a")
	p := testPlan(t, nil, "a")
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := Images(ctx, f, p, Config{}); errc <- err }()
	<-f.started
	cancel()
	err := <-errc
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
}

func TestBuildOptionsMapping(t *testing.T) {
	f := newFake()
	p := testPlan(t, nil, "api")
	val := "1.2"
	shm := types.UnitBytes(64 << 20)
	p.Builds[0].Config = types.BuildConfig{
		Context:    p.Project.WorkingDir,
		Args:       types.MappingWithEquals{"VERSION": &val, "FROM_ENV": nil, "UNSET": nil},
		Target:     "prod",
		Labels:     types.Labels{"team": "shop"},
		CacheFrom:  []string{"reg.example:5000/shop-api:latest", "type=registry,ref=cache.example/shop-api:buildcache", "type=local,src=/tmp"},
		ExtraHosts: types.HostsList{"db": []string{"10.0.0.5"}},
		Network:    "host",
		ShmSize:    shm,
		Tags:       []string{"extra.example/api:dev"},
	}
	p.Manifest.Created = "2024-01-02T03:04:05Z"
	store := regauth.New(regauth.Options{Getenv: func(k string) string {
		return map[string]string{regauth.EnvUser: "u", regauth.EnvPassword: "p", "HOME": t.TempDir()}[k]
	}, EnvHosts: []string{"reg.example:5000", "10.0.0.1:5000"}})
	if _, err := Images(context.Background(), f, p, Config{Pull: true, Auth: store}); err != nil {
		t.Fatal(err)
	}
	o := f.opts["api"]
	if o.Target != "prod" || o.Network != "host" || o.ShmSize != 64<<20 || !o.Pull {
		t.Errorf("target/network/shm/pull: %+v", o)
	}
	if *o.Args["VERSION"] != "1.2" || *o.Args["FROM_ENV"] != "yes" {
		t.Errorf("args: %v", o.Args)
	}
	if _, ok := o.Args["UNSET"]; ok {
		t.Error("an arg without value and not in the environment must be dropped")
	}
	l := o.Labels
	// No per-commit labels: they would change the image ID on every commit.
	if len(l) != 2 || l["team"] != "shop" || l[LabelSource] != "https://git.example/shop.git" {
		t.Errorf("labels: %v", l)
	}
	if strings.Join(o.CacheFrom, " ") != "reg.example:5000/shop-api:latest cache.example/shop-api:buildcache" {
		t.Errorf("cache_from: %v", o.CacheFrom)
	}
	if strings.Join(f.pulls, " ") != "reg.example:5000/shop-api:latest cache.example/shop-api:buildcache" {
		t.Errorf("cache images should be pulled first: %v", f.pulls)
	}
	if strings.Join(o.ExtraHosts, " ") != "db:10.0.0.5" {
		t.Errorf("extra hosts: %v", o.ExtraHosts)
	}
	wantTags := strings.Repeat("a", 40) + " latest extra.example/api:dev"
	var tags []string
	for _, tg := range o.Tags {
		if i := strings.LastIndex(tg, ":"); strings.HasPrefix(tg, "reg.example") {
			tags = append(tags, tg[i+1:])
		} else {
			tags = append(tags, tg)
		}
	}
	if strings.Join(tags, " ") != wantTags {
		t.Errorf("tags: %v", o.Tags)
	}
	// Credentials go to the FROM registry and the image's registry, never to others.
	hosts := map[string]string{}
	for _, a := range o.Auth {
		hosts[a.Host] = a.Username
	}
	if hosts["10.0.0.1:5000"] != "u" || hosts["reg.example:5000"] != "u" || hosts["cache.example"] != "" {
		t.Errorf("auth: %v", hosts)
	}
}

func TestUnsupportedByClassicBuilder(t *testing.T) {
	f := newFake()
	p := testPlan(t, nil, "api")
	p.Builds[0].Config.AdditionalContexts = types.Mapping{"base": "service:base"}
	_, err := Images(context.Background(), f, p, Config{})
	if err == nil || !strings.Contains(err.Error(), "additional_contexts") || !strings.Contains(err.Error(), "service api") {
		t.Fatalf("want a clear error, got %v", err)
	}
}

func TestStepLogKeepsOnlyTheStep(t *testing.T) {
	s := newStepLog(progress.Discard())
	s.handle(engine.Message{Stream: "Step 1/2 : RUN a\nout1\n"})
	s.handle(engine.Message{Stream: " ---> Running in x\nStep 2/2 : RUN b\nout"})
	s.handle(engine.Message{Stream: "2 partial\n"})
	for i := 0; i < keepLines+5; i++ {
		s.handle(engine.Message{Stream: fmt.Sprintf("l%d\n", i)})
	}
	if s.step != "Step 2/2 : RUN b" || s.lines[0] != "l5" || len(s.lines) != keepLines {
		t.Fatalf("step %q lines %v", s.step, s.lines[:2])
	}
}
