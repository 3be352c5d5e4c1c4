package push

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/build"
	"github.com/slipway-dev/slipway/tools/internal/engine"
	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/manifest"
	"github.com/slipway-dev/slipway/tools/internal/pinned"
	"github.com/slipway-dev/slipway/tools/internal/plan"
	"github.com/slipway-dev/slipway/tools/internal/progress"
	"github.com/slipway-dev/slipway/tools/internal/regauth"
	"github.com/slipway-dev/slipway/tools/internal/testenv"
)

func randomName(t *testing.T) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "slwpush" + hex.EncodeToString(b[:])
}

func credEnv(user, pass string, extra map[string]string) func(string) string {
	return func(k string) string {
		switch k {
		case regauth.EnvUser:
			return user
		case regauth.EnvPassword:
			return pass
		case "DOCKER_CONFIG":
			return "/nonexistent-slipway-test"
		}
		return extra[k]
	}
}

// registryDigest asks the registry itself (HEAD manifest with the test CA,
// basic auth, or a bearer token when the registry asks for one) which
// digest repo:tag has.
func registryDigest(t *testing.T, env *testenv.Env, registry, repo, tag string) string {
	t.Helper()
	c, err := env.RegistryHTTPClient()
	if err != nil {
		t.Fatal(err)
	}
	head := func(authz string) *http.Response {
		req, _ := http.NewRequest(http.MethodHead, "https://"+registry+"/v2/"+repo+"/manifests/"+tag, nil)
		req.Header.Set("Accept", strings.Join([]string{
			"application/vnd.docker.distribution.manifest.v2+json",
			"application/vnd.docker.distribution.manifest.list.v2+json",
			"application/vnd.oci.image.manifest.v1+json",
			"application/vnd.oci.image.index.v1+json",
		}, ", "))
		if authz != "" {
			req.Header.Set("Authorization", authz)
		} else {
			req.SetBasicAuth(env.RegistryUser, env.RegistryPassword)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	resp := head("")
	if ch := resp.Header.Get("WWW-Authenticate"); resp.StatusCode == http.StatusUnauthorized && strings.HasPrefix(ch, "Bearer ") {
		resp = head("Bearer " + bearerToken(t, c, env, ch))
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HEAD %s/%s:%s: %s", registry, repo, tag, resp.Status)
	}
	return resp.Header.Get("Docker-Content-Digest")
}

// bearerToken answers a token-auth challenge with the test credentials.
func bearerToken(t *testing.T, c *http.Client, env *testenv.Env, challenge string) string {
	t.Helper()
	params := map[string]string{}
	for _, kv := range strings.Split(strings.TrimPrefix(challenge, "Bearer "), ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		params[k] = strings.Trim(v, `"`)
	}
	u, err := url.Parse(params["realm"])
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("service", params["service"])
	q.Set("scope", params["scope"])
	u.RawQuery = q.Encode()
	req, _ := http.NewRequest(http.MethodGet, u.String(), nil)
	req.SetBasicAuth(env.RegistryUser, env.RegistryPassword)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil {
		t.Fatal(err)
	}
	if tok.Token != "" {
		return tok.Token
	}
	return tok.AccessToken
}

// TestSampleAppBuildPushPin is the whole first half of the pipeline on real
// parts: build the sample app from a git repository, push it with the
// environment credentials, check every digest with the registry, and check
// the pinned compose file.
func TestSampleAppBuildPushPin(t *testing.T) {
	env := testenv.Require(t)
	repo := testenv.SampleAppRepo(t)
	t.Setenv("SLIPWAY_FIXTURE_REGISTRY", env.FixtureRegistry)
	prefix := env.Registry + "/slipway-it/" + randomName(t)
	getenv := credEnv(env.RegistryUser, env.RegistryPassword, nil)
	var logbuf bytes.Buffer
	log := progress.New(&logbuf)
	man := filepath.Join(repo, "release.json")
	os.MkdirAll(filepath.Join(repo, "out"), 0o755)

	built, err := build.Run(context.Background(), build.Options{
		Plan:     plan.Options{WorkDir: repo, Registry: prefix, Tags: []string{"{{.Commit}}", "it-{{.ShortCommit}}"}},
		Manifest: man, Log: log, Getenv: getenv, Parallel: 2,
	})
	if err != nil {
		t.Fatalf("build: %v\n%s", err, logbuf.String())
	}
	t.Cleanup(func() {
		eng, err := engine.New(context.Background())
		if err != nil {
			return
		}
		defer eng.Close()
		for _, s := range built.Services {
			for _, tag := range s.Tags {
				eng.RemoveImage(context.Background(), s.Image+":"+tag, true)
			}
		}
	})
	if got := built.ComposeFiles; len(got) != 1 || got[0] != "docker-compose.yml" {
		t.Errorf("manifest compose files %v, want relative to the manifest's directory", got)
	}

	var stdout bytes.Buffer
	pinnedPath := filepath.Join(repo, "out", "compose.pinned.yml")
	m, err := Run(context.Background(), Options{Manifest: man, Pinned: pinnedPath, Log: log, Stdout: &stdout, Getenv: getenv})
	if err != nil {
		t.Fatalf("push: %v\n%s", err, logbuf.String())
	}

	// The manifest on disk has every digest, each one what the registry says.
	onDisk, err := manifest.Read(man)
	if err != nil {
		t.Fatal(err)
	}
	if !onDisk.Pushed() {
		t.Fatalf("manifest not marked pushed: %+v", onDisk.Services)
	}
	for name, s := range onDisk.Services {
		repoPath := strings.TrimPrefix(s.Image, env.Registry+"/")
		for _, tag := range s.Tags {
			if got := registryDigest(t, env, env.Registry, repoPath, tag); got != s.Digest {
				t.Errorf("%s:%s: registry has %s, manifest %s", name, tag, got, s.Digest)
			}
		}
		if !strings.Contains(stdout.String(), name+" "+s.Image+"@"+s.Digest+"\n") {
			t.Errorf("stdout lacks %s:\n%s", name, stdout.String())
		}
	}
	if onDisk.PinnedCompose != "out/compose.pinned.yml" {
		t.Errorf("pinnedCompose %q, want it relative to the manifest", onDisk.PinnedCompose)
	}

	// Images slipway did not build are pinned to what the registry holds.
	pg := onDisk.External["db"]
	if want := registryDigest(t, env, env.Registry, "slipway-fixtures/postgres", "15"); pg.Digest != want {
		t.Errorf("external db digest %s, registry has %s", pg.Digest, want)
	}
	if m.External["proxy"].Digest == "" {
		t.Error("proxy image not pinned")
	}

	text, err := os.ReadFile(pinnedPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"image: " + onDisk.Services["web"].Image + "@" + onDisk.Services["web"].Digest,
		"image: " + env.FixtureRegistry + "/postgres@" + pg.Digest,
		"${POSTGRES_PASSWORD:-sampleapp-demo-password}", // left for the server's .env
		"${WEB_PORT:-8080}:80",
		"./proxy/nginx.conf",
	} {
		if !strings.Contains(string(text), want) {
			t.Errorf("pinned file lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(string(text), "build:") || strings.Contains(string(text), "SLIPWAY_FIXTURE_REGISTRY") {
		t.Errorf("pinned file still builds or names agent variables:\n%s", text)
	}
	model, err := pinned.ReadFile(pinnedPath)
	if err != nil {
		t.Fatal(err)
	}
	files, err := pinned.ReferencedFiles(model, repo)
	if err != nil || strings.Join(files, ",") != "proxy/nginx.conf" {
		t.Errorf("referenced files %v %v", files, err)
	}
}

// tinyImage builds a FROM scratch image tagged ref and returns a manifest
// with that one service.
func tinyImage(t *testing.T, ref string) (*manifest.Manifest, string) {
	t.Helper()
	return payloadImage(t, ref, []byte(randomName(t)))
}

// payloadImage is tinyImage with one layer holding payload.
func payloadImage(t *testing.T, ref string, payload []byte) (*manifest.Manifest, string) {
	t.Helper()
	eng, err := engine.New(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY id /\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "id"), payload, 0o644)
	os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte("services:\n  tiny:\n    build: .\n"), 0o644)
	i := strings.LastIndex(ref, ":")
	repo, tg := ref[:i], ref[i+1:]
	p := &plan.Plan{
		Manifest: &manifest.Manifest{Project: "it", Commit: strings.Repeat("d", 40), ComposeFiles: []string{filepath.Join(dir, "compose.yaml")},
			ProjectDir: dir, Services: map[string]manifest.Service{"tiny": {Image: repo, Tags: []string{tg}}}},
		Builds: []plan.Build{{Service: "tiny", Image: repo, Tags: []string{tg}}},
	}
	p.Builds[0].Config.Context = dir
	ids, err := build.Images(context.Background(), eng, p, build.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if e, err := engine.New(context.Background()); err == nil {
			e.RemoveImage(context.Background(), ref, true)
			e.Close()
		}
	})
	m := p.Manifest
	s := m.Services["tiny"]
	s.ImageID = ids["tiny"]
	m.Services["tiny"] = s
	path := filepath.Join(t.TempDir(), "release.json")
	if err := manifest.Write(path, m); err != nil {
		t.Fatal(err)
	}
	return m, path
}

func TestWrongPasswordFailsFastNamingTheRegistry(t *testing.T) {
	env := testenv.Require(t)
	_, path := tinyImage(t, env.Registry+"/slipway-it/"+randomName(t)+":v1")
	var logbuf bytes.Buffer
	_, err := Run(context.Background(), Options{Manifest: path, Log: progress.New(&logbuf),
		Getenv: credEnv(env.RegistryUser, "wrong-password-xyz", nil)})
	if err == nil {
		t.Fatal("push with a wrong password succeeded")
	}
	if exit.Code(err) != exit.Failed {
		t.Errorf("exit code %d, want 1", exit.Code(err))
	}
	msg := err.Error()
	t.Logf("error: %s", msg)
	for _, want := range []string{"registry " + env.Registry + " refused the credentials", fmt.Sprintf("user %q", env.RegistryUser), "env SLIPWAY_REGISTRY_USER/SLIPWAY_REGISTRY_PASSWORD"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg+logbuf.String(), "wrong-password-xyz") {
		t.Error("the password was printed")
	}
	if strings.Contains(logbuf.String(), "retrying") {
		t.Errorf("an auth failure was retried:\n%s", logbuf.String())
	}
	if m, _ := manifest.Read(path); m.Services["tiny"].Digest != "" {
		t.Error("a digest was recorded for a failed push")
	}
}

func TestConfigJSONCredentials(t *testing.T) {
	env := testenv.Require(t)
	_, path := tinyImage(t, env.Registry+"/slipway-it/"+randomName(t)+":v1")
	cfg := env.DockerConfig(t)
	var stdout bytes.Buffer
	var logbuf bytes.Buffer
	_, err := Run(context.Background(), Options{Manifest: path, Stdout: &stdout, JSON: true, Log: progress.New(&logbuf),
		Pinned: filepath.Join(t.TempDir(), "p.yml"),
		Getenv: func(k string) string { return map[string]string{"DOCKER_CONFIG": cfg}[k] }})
	if err != nil {
		t.Fatalf("%v\n%s", err, logbuf.String())
	}
	var printed manifest.Manifest
	if err := json.Unmarshal(stdout.Bytes(), &printed); err != nil {
		t.Fatalf("--json output is not the manifest: %v\n%s", err, stdout.String())
	}
	back, _ := manifest.Read(path)
	if d := back.Services["tiny"].Digest; d == "" || printed.Services["tiny"].Digest != d {
		t.Fatalf("digest on disk %q, printed %q", d, printed.Services["tiny"].Digest)
	}
}

func TestUnreachableRegistry(t *testing.T) {
	testenv.Require(t)
	// Nothing listens on this port of the test bridge.
	_, path := tinyImage(t, "10.213.0.1:5999/slipway-it/"+randomName(t)+":v1")
	_, err := Run(context.Background(), Options{Manifest: path, Getenv: credEnv("u", "p", nil)})
	if err == nil {
		t.Fatal("push to a closed port succeeded")
	}
	msg := err.Error()
	t.Logf("error: %s", msg)
	if !strings.Contains(msg, "registry 10.213.0.1:5999 is not reachable") {
		t.Fatalf("unclear error:\n%s", msg)
	}
	if exit.Code(err) != exit.Failed {
		t.Errorf("exit code %d, want 1", exit.Code(err))
	}
}

// startFlaky is a fault proxy that fails the first n manifest PUTs with 503.
func startFlaky(t *testing.T, env *testenv.Env, failures int) (*faultProxy, *faultRule) {
	t.Helper()
	p := startFaultProxy(t, env)
	rule := p.Add(&faultRule{Name: "503 on manifest PUT", Match: isManifestPut, Times: failures,
		Fault: fault{Status: http.StatusServiceUnavailable, Body: registryError("UNAVAILABLE", "injected by the test")}})
	return p, rule
}

func TestRetriesThroughAFlakyRegistry(t *testing.T) {
	env := testenv.Require(t)
	flaky, rule := startFlaky(t, env, 2)
	name := "slipway-it/" + randomName(t)
	m, _ := tinyImage(t, flaky.addr+"/"+name+":v1")
	var logbuf bytes.Buffer
	cfg := Config{Auth: regauth.New(regauth.Options{Getenv: credEnv(env.RegistryUser, env.RegistryPassword, nil), EnvHosts: []string{flaky.addr}}),
		Log: progress.New(&logbuf), Retry: Retry{Attempts: 4, Initial: 100 * time.Millisecond, Max: time.Second}}
	eng, err := engine.New(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	digests, err := Images(context.Background(), eng, m, cfg)
	done := time.Now()
	if err != nil {
		t.Fatalf("%v\n%s", err, logbuf.String())
	}
	if n := flaky.Seen(rule); n != 3 {
		t.Errorf("%d manifest PUTs, want 3 (two failures, then success)", n)
	}
	if n := strings.Count(logbuf.String(), "retrying in"); n != 2 {
		t.Errorf("%d retries logged, want 2:\n%s", n, logbuf.String())
	}
	if got := registryDigest(t, env, env.Registry, name, "v1"); got != digests["tiny"] {
		t.Errorf("registry has %s, push recorded %s", got, digests["tiny"])
	}
	testenv.Recovery(t, done.Sub(flaky.First(rule)))
}

func TestPartialReleasePushesWithoutPinnedFile(t *testing.T) {
	env := testenv.Require(t)
	m, path := tinyImage(t, env.Registry+"/slipway-it/"+randomName(t)+":v1")
	// The project has a second buildable service this release did not build.
	compose := m.ComposeFiles[0]
	if err := os.WriteFile(compose, []byte("services:\n  tiny:\n    build: .\n  other:\n    build: .\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var logbuf bytes.Buffer
	out := filepath.Join(t.TempDir(), "pinned.yml")
	_, err := Run(context.Background(), Options{Manifest: path, Pinned: out, Log: progress.New(&logbuf),
		Getenv: credEnv(env.RegistryUser, env.RegistryPassword, nil)})
	if err != nil {
		t.Fatalf("%v\n%s", err, logbuf.String())
	}
	if !strings.Contains(logbuf.String(), "no pinned compose file written: services other") {
		t.Errorf("no warning:\n%s", logbuf.String())
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a pinned file was written for a partial release")
	}
	back, _ := manifest.Read(path)
	if back.PinnedCompose != "" || back.Services["tiny"].Digest == "" {
		t.Errorf("manifest: pinned %q digest %q", back.PinnedCompose, back.Services["tiny"].Digest)
	}
}
