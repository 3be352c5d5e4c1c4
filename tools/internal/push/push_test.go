package push

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/engine"
	"github.com/slipway-dev/slipway/tools/internal/manifest"
	"github.com/slipway-dev/slipway/tools/internal/progress"
	"github.com/slipway-dev/slipway/tools/internal/regauth"
)

func dg(c string) string { return "sha256:" + strings.Repeat(c, 64) }

type fakeEngine struct {
	mu        sync.Mutex
	pushes    []string
	failures  map[string][]error // ref -> errors returned by successive pushes
	digest    map[string]string  // image (no tag) -> digest pushed
	remote    map[string]string  // ref -> digest the registry reports; default digest[image]
	local     map[string]string  // ref -> image ID; default "sha256:id-<image>"
	auths     []regauth.Auth
	active    int
	maxActive int
	gate      chan struct{}
}

func newFake() *fakeEngine {
	return &fakeEngine{failures: map[string][]error{}, digest: map[string]string{}, remote: map[string]string{}, local: map[string]string{}}
}

func repoOf(ref string) string { return ref[:strings.LastIndex(ref, ":")] }

func (f *fakeEngine) ImageID(_ context.Context, ref string) (string, error) {
	if id, ok := f.local[ref]; ok {
		if id == "" {
			return "", errors.New("Error: No such image: " + ref)
		}
		return id, nil
	}
	return "sha256:id-" + repoOf(ref), nil
}

func (f *fakeEngine) Push(ctx context.Context, ref string, a regauth.Auth, fn func(engine.Message)) (engine.PushResult, error) {
	f.mu.Lock()
	f.pushes = append(f.pushes, ref)
	f.auths = append(f.auths, a)
	f.active++
	if f.active > f.maxActive {
		f.maxActive = f.active
	}
	var err error
	if errs := f.failures[ref]; len(errs) > 0 {
		err, f.failures[ref] = errs[0], errs[1:]
	}
	f.mu.Unlock()
	defer func() { f.mu.Lock(); f.active--; f.mu.Unlock() }()
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return engine.PushResult{}, ctx.Err()
		}
	}
	fn(engine.Message{Status: "Pushed", ID: "abc"})
	if err != nil {
		return engine.PushResult{}, err
	}
	return engine.PushResult{Digest: f.digest[repoOf(ref)]}, nil
}

func (f *fakeEngine) RemoteDigest(_ context.Context, ref string, _ regauth.Auth) (string, error) {
	if d, ok := f.remote[ref]; ok {
		return d, nil
	}
	return f.digest[repoOf(ref)], nil
}

func testManifest() *manifest.Manifest {
	return &manifest.Manifest{Project: "shop", Commit: strings.Repeat("a", 40), Services: map[string]manifest.Service{
		"api": {Image: "reg.example:5000/shop-api", Tags: []string{"c1", "latest"}, ImageID: "sha256:id-reg.example:5000/shop-api"},
		"web": {Image: "reg.example:5000/shop-web", Tags: []string{"c1", "latest"}, ImageID: "sha256:id-reg.example:5000/shop-web"},
	}}
}

func fakeEngineFor(m *manifest.Manifest) *fakeEngine {
	f := newFake()
	f.digest["reg.example:5000/shop-api"] = dg("1")
	f.digest["reg.example:5000/shop-web"] = dg("2")
	return f
}

func envStore(user, pass string) *regauth.Store {
	return regauth.New(regauth.Options{
		Getenv: func(k string) string {
			return map[string]string{regauth.EnvUser: user, regauth.EnvPassword: pass, "DOCKER_CONFIG": "/nonexistent-slipway-test"}[k]
		},
		EnvHosts: []string{"reg.example:5000"},
	})
}

var fast = Retry{Attempts: 3, Initial: time.Millisecond, Max: 2 * time.Millisecond}

func TestPushesEveryTagAndVerifies(t *testing.T) {
	m := testManifest()
	f := fakeEngineFor(m)
	d, err := Images(context.Background(), f, m, Config{Auth: envStore("ci", "pw"), Retry: fast})
	if err != nil {
		t.Fatal(err)
	}
	if d["api"] != dg("1") || d["web"] != dg("2") {
		t.Fatalf("digests %v", d)
	}
	got := strings.Join(f.pushes, " ")
	for _, ref := range []string{"shop-api:c1", "shop-api:latest", "shop-web:c1", "shop-web:latest"} {
		if !strings.Contains(got, ref) {
			t.Errorf("%s not pushed: %s", ref, got)
		}
	}
	if i, j := strings.Index(got, "shop-api:c1"), strings.Index(got, "shop-api:latest"); i > j {
		t.Errorf("an image's first tag should go first: %s", got)
	}
	for _, a := range f.auths {
		if a.Username != "ci" || a.Password != "pw" {
			t.Errorf("push without the env credentials: %+v", a)
		}
	}
}

func TestRetriesTransientErrors(t *testing.T) {
	m := testManifest()
	f := fakeEngineFor(m)
	f.failures["reg.example:5000/shop-api:c1"] = []error{
		&engine.StreamError{Message: "received unexpected HTTP status: 503 Service Unavailable"},
		&engine.StreamError{Message: "toomanyrequests: slow down"},
	}
	var logbuf bytes.Buffer
	d, err := Images(context.Background(), f, m, Config{Auth: envStore("ci", "pw"), Retry: fast, Log: progress.New(&logbuf)})
	if err != nil {
		t.Fatal(err)
	}
	if d["api"] != dg("1") {
		t.Fatalf("digest %v", d)
	}
	if n := strings.Count(strings.Join(f.pushes, " "), "shop-api:c1"); n != 3 {
		t.Fatalf("shop-api:c1 pushed %d times, want 3", n)
	}
	if !strings.Contains(logbuf.String(), "[api] warning: push of reg.example:5000/shop-api:c1 failed: received unexpected HTTP status: 503") ||
		!strings.Contains(logbuf.String(), "attempt 2 of 3") {
		t.Errorf("retries not logged:\n%s", logbuf.String())
	}
}

func TestGivesUpAfterAttempts(t *testing.T) {
	m := testManifest()
	delete(m.Services, "web")
	f := fakeEngineFor(m)
	e := &engine.StreamError{Message: "read tcp 10.0.0.1:1234->10.0.0.2:5000: read: connection reset by peer"}
	f.failures["reg.example:5000/shop-api:c1"] = []error{e, e, e, e}
	_, err := Images(context.Background(), f, m, Config{Auth: envStore("ci", "pw"), Retry: fast})
	if err == nil || !strings.Contains(err.Error(), "gave up after 3 attempts") || !strings.Contains(err.Error(), "reg.example:5000") {
		t.Fatalf("got %v", err)
	}
}

func TestAuthFailureFailsFastNamingRegistryAndSource(t *testing.T) {
	m := testManifest()
	f := fakeEngineFor(m)
	for _, r := range []string{"reg.example:5000/shop-api:c1", "reg.example:5000/shop-web:c1"} {
		f.failures[r] = []error{&engine.StreamError{Message: "unauthorized: authentication required"}}
	}
	_, err := Images(context.Background(), f, m, Config{Auth: envStore("ci", "hunter2"), Retry: fast})
	if err == nil {
		t.Fatal("push succeeded with refused credentials")
	}
	msg := err.Error()
	for _, want := range []string{"registry reg.example:5000 refused the credentials", `user "ci"`, "env SLIPWAY_REGISTRY_USER/SLIPWAY_REGISTRY_PASSWORD"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "hunter2") {
		t.Fatal("the password is in the error")
	}
	if n := len(f.pushes); n > 2 {
		t.Errorf("auth failures were retried: %d pushes", n)
	}
}

func TestAuthFailureWithoutCredentials(t *testing.T) {
	m := testManifest()
	delete(m.Services, "web")
	f := fakeEngineFor(m)
	f.failures["reg.example:5000/shop-api:c1"] = []error{&engine.StreamError{Message: "denied: requested access to the resource is denied"}}
	_, err := Images(context.Background(), f, m, Config{Auth: envStore("", ""), Retry: fast})
	if err == nil || !strings.Contains(err.Error(), "found no credentials") || !strings.Contains(err.Error(), "/nonexistent-slipway-test/config.json") {
		t.Fatalf("got %v", err)
	}
}

func TestRegistryDisagreesWithPush(t *testing.T) {
	m := testManifest()
	delete(m.Services, "web")
	f := fakeEngineFor(m)
	f.remote["reg.example:5000/shop-api:c1"] = dg("9")
	_, err := Images(context.Background(), f, m, Config{Auth: envStore("ci", "pw"), Retry: fast})
	if err == nil || !strings.Contains(err.Error(), "registry says") {
		t.Fatalf("got %v", err)
	}
}

func TestRebuiltImageIsRefused(t *testing.T) {
	m := testManifest()
	delete(m.Services, "web")
	f := fakeEngineFor(m)
	f.local["reg.example:5000/shop-api:latest"] = "sha256:other"
	_, err := Images(context.Background(), f, m, Config{Auth: envStore("ci", "pw"), Retry: fast})
	if err == nil || !strings.Contains(err.Error(), "not sha256:id-reg.example:5000/shop-api that build recorded") {
		t.Fatalf("got %v", err)
	}
	f = fakeEngineFor(m)
	f.local["reg.example:5000/shop-api:c1"] = ""
	_, err = Images(context.Background(), f, m, Config{Auth: envStore("ci", "pw"), Retry: fast})
	if err == nil || !strings.Contains(err.Error(), "is not in this engine") {
		t.Fatalf("got %v", err)
	}
}

func TestParallelBound(t *testing.T) {
	m := testManifest()
	for _, s := range []string{"a", "b", "c", "d", "e"} {
		m.Services[s] = manifest.Service{Image: "reg.example:5000/shop-" + s, Tags: []string{"c1"}}
	}
	f := fakeEngineFor(m)
	f.gate = make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := Images(context.Background(), f, m, Config{Parallel: 3, Auth: envStore("ci", "pw"), Retry: fast})
		done <- err
	}()
	for {
		f.mu.Lock()
		n := f.active
		f.mu.Unlock()
		if n == 3 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(f.gate)
	<-done
	if f.maxActive != 3 {
		t.Fatalf("max concurrent pushes %d, want 3", f.maxActive)
	}
}

func TestRetryDoStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	err := Retry{Attempts: 5, Initial: time.Hour}.Do(ctx, progress.Discard(), "x", func() error {
		calls++
		cancel()
		return errors.New("503 Service Unavailable")
	})
	if !errors.Is(err, context.Canceled) || calls != 1 {
		t.Fatalf("err %v calls %d", err, calls)
	}
}
