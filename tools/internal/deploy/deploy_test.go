package deploy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/deploy/remote"
	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/manifest"
	"github.com/slipway-dev/slipway/tools/internal/progress"
)

const (
	testUser = "ci-user"
	testPass = "s3cret-Pa55word-for-tests"
)

func digestOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func commitOf(s string) string {
	sum := sha256.Sum256([]byte("commit " + s))
	return hex.EncodeToString(sum[:])[:40]
}

// release writes a manifest and pinned compose file for version v into a
// fresh directory; webLabels set the fake web container's behaviour.
func release(t *testing.T, v string, webLabels map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	commit := commitOf(v)
	webDigest := digestOf("web " + v)
	dbDigest := digestOf("db 15")
	labels := ""
	for k, val := range webLabels {
		labels += fmt.Sprintf("      %s: %q\n", k, val)
	}
	pinned := fmt.Sprintf(`name: shop
services:
  web:
    image: reg.test:5000/shop-web@%s
    env_file: [web.env]
    volumes:
      - ./conf/app.conf:/etc/app.conf:ro
      - data:/data
    depends_on:
      db: {condition: service_healthy, required: true}
    labels:
      app: shop
%s  db:
    image: reg.test:5000/fixtures/postgres@%s
    labels:
      fake.health: healthy
volumes:
  data: {}
`, webDigest, labels, dbDigest)
	write := func(name, data string, mode fs.FileMode) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("slipway-compose.pinned.yml", pinned, 0o644)
	write("web.env", "GREETING=hello "+v+"\n", 0o644)
	write("conf/app.conf", "version="+v+"\n", 0o644)
	write("prod.env", "SECRET_KEY=very-secret\n", 0o600)
	m := &manifest.Manifest{Project: "shop", ComposeFiles: []string{"compose.yaml"}, Commit: commit, ShortCommit: commit[:12],
		Branch: "main", BuildURL: "https://ci.example/job/shop/" + v + "/", PinnedCompose: "slipway-compose.pinned.yml",
		Services: map[string]manifest.Service{"web": {Image: "reg.test:5000/shop-web", Tags: []string{commit}, Digest: webDigest}},
		External: map[string]manifest.Service{"db": {Image: "reg.test:5000/fixtures/postgres", Digest: dbDigest}}}
	path := filepath.Join(dir, manifest.DefaultPath)
	if err := manifest.Write(path, m); err != nil {
		t.Fatal(err)
	}
	return path
}

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

var credsEnv = env(map[string]string{"SLIPWAY_REGISTRY_USER": testUser, "SLIPWAY_REGISTRY_PASSWORD": testPass, "HOME": "/nonexistent"})

type run struct {
	res    *Result
	err    error
	stdout string
	stderr string
}

func deployTo(t *testing.T, manifestPath string, hosts []*fakeHost, mod func(*Options)) run {
	t.Helper()
	var out, errb bytes.Buffer
	o := Options{
		Target:        Target{Dir: "app", Dial: fakeDial(hosts...)},
		Manifest:      manifestPath,
		EnvFile:       filepath.Join(filepath.Dir(manifestPath), "prod.env"),
		HealthTimeout: 3 * time.Second,
		Stdout:        &out,
		Log:           progress.New(&errb),
		Getenv:        credsEnv,
	}
	for _, h := range hosts {
		o.Hosts = append(o.Hosts, h.name)
	}
	if mod != nil {
		mod(&o)
	}
	res, err := Deploy(context.Background(), o)
	return run{res, err, out.String(), errb.String()}
}

func (h *fakeHost) dir() string { return filepath.Join(h.home, "app") }

func (h *fakeHost) current() string {
	l, err := os.Readlink(filepath.Join(h.dir(), "current"))
	if err != nil {
		return ""
	}
	return filepath.Base(l)
}

// releases lists the entries of releases/, hidden ones included.
func (h *fakeHost) releases() []string {
	es, _ := os.ReadDir(filepath.Join(h.dir(), "releases"))
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

// runningRelease is the release directory every container of the project
// was created from ("" if none, "mixed" if several).
func (h *fakeHost) runningRelease() string {
	rel := ""
	for _, c := range h.engine().Containers {
		r := filepath.Base(c.WorkingDir)
		if rel != "" && rel != r {
			return "mixed"
		}
		rel = r
	}
	return rel
}

func wantCode(t *testing.T, r run, code int) {
	t.Helper()
	if got := exit.Code(r.err); got != code {
		t.Fatalf("exit code %d, want %d; err: %v\nstderr:\n%s", got, code, r.err, r.stderr)
	}
}

func TestDeployFirstThenSecond(t *testing.T) {
	h := newFakeHost(t, "t1")
	v1 := release(t, "v1", nil)
	r := deployTo(t, v1, []*fakeHost{h}, nil)
	wantCode(t, r, 0)
	c1 := commitOf("v1")
	if h.current() != c1 {
		t.Fatalf("current = %q, want %s", h.current(), c1)
	}
	rd := filepath.Join(h.dir(), "releases", c1)
	compose, err := os.ReadFile(filepath.Join(rd, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(compose), "name:") || strings.Contains(string(compose), "required") {
		t.Errorf("compose.yaml for Compose v1 still has name: or depends_on.required:\n%s", compose)
	}
	for _, f := range []string{"web.env", "conf/app.conf", "release.json", ".env"} {
		if _, err := os.Stat(filepath.Join(rd, f)); err != nil {
			t.Errorf("release file %s: %v", f, err)
		}
	}
	if st, _ := os.Stat(filepath.Join(rd, ".env")); st == nil || st.Mode().Perm() != 0o600 {
		t.Errorf(".env mode = %v, want 0600", st.Mode())
	}
	var meta remote.ReleaseJSON
	data, _ := os.ReadFile(filepath.Join(rd, "release.json"))
	if err := json.Unmarshal(data, &meta); err != nil {
		t.Fatal(err)
	}
	if meta.Commit != c1 || meta.Project != "shop" || meta.Previous != "" || meta.BuildURL == "" || meta.DeployedBy == "" || len(meta.Images) != 2 {
		t.Errorf("release.json = %+v", meta)
	}
	if h.runningRelease() != c1 || len(h.engine().Containers) != 2 {
		t.Fatalf("containers: %+v", h.engine().Containers)
	}
	if _, err := os.Stat(filepath.Join(h.dir(), ".slipway", "lock")); err == nil {
		t.Error("lock left behind")
	}
	if r.res.Hosts[0].Status != StatusDeployed || r.res.Hosts[0].Handshakes != 1 {
		t.Errorf("result %+v", r.res.Hosts[0])
	}
	// The registry login happened with the forwarded credentials, and the
	// temporary DOCKER_CONFIG is gone.
	log := strings.Join(h.engine().Log, "\n")
	if !strings.Contains(log, "login reg.test:5000 as "+testUser) {
		t.Errorf("no login with the forwarded user:\n%s", log)
	}
	assertNoSecret(t, h)

	v2 := release(t, "v2", nil)
	r = deployTo(t, v2, []*fakeHost{h}, nil)
	wantCode(t, r, 0)
	c2 := commitOf("v2")
	if h.current() != c2 || h.runningRelease() != c2 {
		t.Fatalf("after v2: current %s running %s", h.current(), h.runningRelease())
	}
	if r.res.Hosts[0].Previous != c1 {
		t.Errorf("previous = %q", r.res.Hosts[0].Previous)
	}
	data, _ = os.ReadFile(filepath.Join(h.dir(), "releases", c2, "release.json"))
	json.Unmarshal(data, &meta)
	if meta.Previous != c1 {
		t.Errorf("release.json previous = %q, want %s", meta.Previous, c1)
	}
	// db's image was present already: pulled once in all.
	if n := strings.Count(strings.Join(h.engine().Log, "\n"), "pull reg.test:5000/fixtures/postgres"); n != 1 {
		t.Errorf("db image pulled %d times, want 1", n)
	}
	if !strings.Contains(r.stdout, "t1\tdeployed\t"+c2) {
		t.Errorf("stdout = %q", r.stdout)
	}
	if !strings.Contains(r.stderr, "HOST") || !strings.Contains(r.stderr, "[t1] ") {
		t.Errorf("stderr lacks the summary table or host prefixes:\n%s", r.stderr)
	}
}

// assertNoSecret checks that no file of the fake server holds the registry
// password, and that no command line carried it.
func assertNoSecret(t *testing.T, h *fakeHost) {
	t.Helper()
	for _, root := range []string{h.home, h.tmp} {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			data, _ := os.ReadFile(p)
			if bytes.Contains(data, []byte(testPass)) || bytes.Contains(data, []byte(b64(testUser+":"+testPass))) {
				t.Errorf("%s holds the registry password", p)
			}
			return nil
		})
	}
	for _, c := range h.commands() {
		if strings.Contains(c, testPass) || strings.Contains(c, testUser) {
			t.Errorf("a command line carries credentials: %s", c)
		}
	}
	if es, _ := os.ReadDir(h.tmp); len(es) != 0 {
		t.Errorf("server TMPDIR not empty: %v", es)
	}
}

func b64(s string) string { return base64Std(s) }

func TestFailedHealthGateRollsBack(t *testing.T) {
	h := newFakeHost(t, "t1")
	wantCode(t, deployTo(t, release(t, "v1", nil), []*fakeHost{h}, nil), 0)
	c1 := commitOf("v1")
	for name, labels := range map[string]map[string]string{
		"exited":    {"fake.state": "exited"},
		"unhealthy": {"fake.health": "unhealthy"},
		"timeout":   {"fake.health": "starting"},
	} {
		t.Run(name, func(t *testing.T) {
			r := deployTo(t, release(t, "bad-"+name, labels), []*fakeHost{h}, func(o *Options) { o.HealthTimeout = time.Second })
			wantCode(t, r, exit.RolledBack)
			if h.current() != c1 || h.runningRelease() != c1 {
				t.Fatalf("after failed deploy: current %s, running %s, want %s", h.current(), h.runningRelease(), c1)
			}
			if got := h.releases(); len(got) != 1 || got[0] != c1 {
				t.Errorf("releases/ = %v, want only %s (the failed release removed)", got, c1)
			}
			hr := r.res.Hosts[0]
			if hr.Status != StatusRolledBack || len(hr.Failing) == 0 || hr.Failing[0].Service != "web" {
				t.Fatalf("host result %+v", hr)
			}
			if !strings.Contains(r.stderr, "fatal: web is broken") {
				t.Errorf("failing container's logs not printed:\n%s", r.stderr)
			}
		})
	}
}

func TestFirstDeployFailureTakesItDown(t *testing.T) {
	h := newFakeHost(t, "t1")
	r := deployTo(t, release(t, "bad", map[string]string{"fake.state": "exited"}), []*fakeHost{h}, nil)
	wantCode(t, r, exit.RolledBack)
	if h.current() != "" || len(h.engine().Containers) != 0 || len(h.releases()) != 0 {
		t.Fatalf("current %q, containers %v, releases %v", h.current(), h.engine().Containers, h.releases())
	}
}

func TestPullAndLoginFailures(t *testing.T) {
	h := newFakeHost(t, "t1")
	wantCode(t, deployTo(t, release(t, "v1", nil), []*fakeHost{h}, nil), 0)
	c1 := commitOf("v1")

	h.badAuth = true
	r := deployTo(t, release(t, "v2", nil), []*fakeHost{h}, nil)
	wantCode(t, r, exit.Failed)
	if !strings.Contains(r.err.Error(), "registry login") {
		t.Errorf("error %v does not name the registry login", r.err)
	}
	h.badAuth = false
	if h.current() != c1 || h.runningRelease() != c1 || len(h.releases()) != 1 {
		t.Fatalf("after refused login: current %s, running %s, releases %v", h.current(), h.runningRelease(), h.releases())
	}
	assertNoSecret(t, h)

	h.failImg = "shop-web"
	r = deployTo(t, release(t, "v3", nil), []*fakeHost{h}, nil)
	h.failImg = ""
	wantCode(t, r, exit.RolledBack)
	if h.current() != c1 || h.runningRelease() != c1 {
		t.Fatalf("after failed pull: current %s, running %s", h.current(), h.runningRelease())
	}
	assertNoSecret(t, h)
}

func TestPreDeployHook(t *testing.T) {
	h := newFakeHost(t, "t1")
	wantCode(t, deployTo(t, release(t, "v1", nil), []*fakeHost{h}, nil), 0)
	c1 := commitOf("v1")
	r := deployTo(t, release(t, "v2", nil), []*fakeHost{h}, func(o *Options) { o.PreDeploy = "web: echo migrating >&2; exit 3" })
	wantCode(t, r, exit.Failed)
	if h.current() != c1 || h.runningRelease() != c1 || !strings.Contains(r.stderr, "migrating") {
		t.Fatalf("failed hook: current %s running %s\n%s", h.current(), h.runningRelease(), r.stderr)
	}
	r = deployTo(t, release(t, "v2", nil), []*fakeHost{h}, func(o *Options) { o.PreDeploy = "web: touch hook-ran" })
	wantCode(t, r, 0)
	if _, err := os.Stat(filepath.Join(h.dir(), "releases", commitOf("v2"), "hook-ran")); err != nil {
		t.Errorf("hook did not run in the new release directory: %v", err)
	}
}

func TestLock(t *testing.T) {
	h := newFakeHost(t, "t1")
	wantCode(t, deployTo(t, release(t, "v1", nil), []*fakeHost{h}, nil), 0)
	lock := filepath.Join(h.dir(), ".slipway", "lock")
	if err := os.MkdirAll(lock, 0o755); err != nil {
		t.Fatal(err)
	}
	info := `{"owner":"alice@agent7","pid":4242,"buildUrl":"https://ci.example/job/other/9/","time":"2030-01-02T03:04:05Z","token":"abc"}`
	os.WriteFile(filepath.Join(lock, "info"), []byte(info), 0o644)

	start := time.Now()
	r := deployTo(t, release(t, "v2", nil), []*fakeHost{h}, func(o *Options) { o.LockWait = 1500 * time.Millisecond })
	wantCode(t, r, exit.Failed)
	if time.Since(start) < 1500*time.Millisecond {
		t.Errorf("did not wait for the lock")
	}
	for _, want := range []string{"lock held by alice@agent7 (pid 4242) since 2030-01-02T03:04:05Z (build https://ci.example/job/other/9/)", "slipway unlock"} {
		if !strings.Contains(r.err.Error(), want) {
			t.Errorf("error %q lacks %q", r.err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(lock, "info")); err != nil {
		t.Fatal("someone else's lock was removed")
	}
	if h.current() != commitOf("v1") {
		t.Fatal("current moved")
	}

	// Stale: older than the TTL, taken over with a warning.
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(filepath.Join(lock, "info"), old, old)
	r = deployTo(t, release(t, "v2", nil), []*fakeHost{h}, nil)
	wantCode(t, r, 0)
	if !strings.Contains(r.stderr, "stale deploy lock") {
		t.Errorf("no warning about the stale lock:\n%s", r.stderr)
	}
	if _, err := os.Stat(lock); err == nil {
		t.Error("lock left behind after the takeover deploy")
	}

	// unlock removes whatever lock there is and says whose it was.
	os.MkdirAll(lock, 0o755)
	os.WriteFile(filepath.Join(lock, "info"), []byte(info), 0o644)
	var out bytes.Buffer
	err := Unlock(context.Background(), InfoOptions{Target: Target{Hosts: []string{"t1"}, Dir: "app", Dial: fakeDial(h)}, Stdout: &out, Log: progress.Discard()})
	if err != nil || !strings.Contains(out.String(), "removed the lock: lock held by alice@agent7") {
		t.Fatalf("unlock: %v, %q", err, out.String())
	}
	if _, err := os.Stat(lock); err == nil {
		t.Error("unlock left the lock")
	}
}

func snapshot(t *testing.T, root string) string {
	var b strings.Builder
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		st, _ := os.Lstat(p)
		fmt.Fprintf(&b, "%s %v %d", p, st.Mode(), st.Size())
		if st.Mode()&fs.ModeSymlink != 0 {
			l, _ := os.Readlink(p)
			b.WriteString(" -> " + l)
		}
		b.WriteByte('\n')
		return nil
	})
	return b.String()
}

func TestDryRunChangesNothing(t *testing.T) {
	h := newFakeHost(t, "t1")
	wantCode(t, deployTo(t, release(t, "v1", nil), []*fakeHost{h}, nil), 0)
	before := snapshot(t, h.home) + snapshot(t, h.tmp)
	engineBefore, _ := os.ReadFile(filepath.Join(h.state, "state.json"))
	r := deployTo(t, release(t, "v2", nil), []*fakeHost{h}, func(o *Options) {
		o.DryRun = true
		o.PreDeploy = "web: ./migrate"
		o.SmokeURL = "http://localhost:8080/"
	})
	wantCode(t, r, 0)
	if after := snapshot(t, h.home) + snapshot(t, h.tmp); after != before {
		t.Errorf("dry run changed files:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if after, _ := os.ReadFile(filepath.Join(h.state, "state.json")); !bytes.Equal(after, engineBefore) {
		t.Errorf("dry run changed the engine")
	}
	c2 := commitOf("v2")
	for _, want := range []string{"[t1] upload", "releases/" + c2 + "/", "compose.yaml", ".env  ", "docker login", "docker pull", "run --rm -T web sh -c ./migrate", "up -d --remove-orphans", "health gate", "GET http://localhost:8080/", "switch", "current -> releases/" + c2, "take lock"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("dry-run plan lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "very-secret") || strings.Contains(r.stdout, testPass) {
		t.Error("dry run printed a secret")
	}
}

func TestUploadCutLeavesNoRelease(t *testing.T) {
	h := newFakeHost(t, "t1")
	wantCode(t, deployTo(t, release(t, "v1", nil), []*fakeHost{h}, nil), 0)
	c1 := commitOf("v1")
	for _, cut := range []int64{100, 1024, 2600} {
		h.cut = cut
		r := deployTo(t, release(t, "v2", nil), []*fakeHost{h}, nil)
		wantCode(t, r, exit.Failed)
		if got := h.releases(); len(got) != 1 || got[0] != c1 {
			t.Errorf("cut at %d: releases/ = %v, want only %s", cut, got, c1)
		}
		if h.current() != c1 || h.runningRelease() != c1 {
			t.Errorf("cut at %d: current %s", cut, h.current())
		}
		if _, err := os.Stat(filepath.Join(h.dir(), ".slipway", "lock")); err == nil {
			t.Errorf("cut at %d: lock left", cut)
		}
	}
	h.cut = 0
}

func TestPruneKeepsReleasesAndTheirImages(t *testing.T) {
	h := newFakeHost(t, "t1")
	for _, v := range []string{"v1", "v2", "v3", "v4"} {
		wantCode(t, deployTo(t, release(t, v, nil), []*fakeHost{h}, func(o *Options) { o.Keep = 2 }), 0)
		time.Sleep(1100 * time.Millisecond) // release.json times have second resolution
	}
	got := h.releases()
	want := []string{commitOf("v3"), commitOf("v4")}
	sort.Strings(want)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("releases/ = %v, want %v", got, want)
	}
	imgs := h.engine().Images
	if imgs["reg.test:5000/shop-web@"+digestOf("web v1")] || imgs["reg.test:5000/shop-web@"+digestOf("web v2")] {
		t.Errorf("images of pruned releases remain: %v", imgs)
	}
	if !imgs["reg.test:5000/shop-web@"+digestOf("web v3")] || !imgs["reg.test:5000/fixtures/postgres@"+digestOf("db 15")] {
		t.Errorf("images of kept releases were removed: %v", imgs)
	}
}

func TestMultiHost(t *testing.T) {
	newHosts := func() []*fakeHost {
		return []*fakeHost{newFakeHost(t, "a"), newFakeHost(t, "b"), newFakeHost(t, "c")}
	}
	base := func(hs []*fakeHost) {
		wantCode(t, deployTo(t, release(t, "v1", nil), hs, func(o *Options) { o.Parallel = 3 }), 0)
	}
	c1, c2 := commitOf("v1"), commitOf("v2")

	t.Run("rollback", func(t *testing.T) {
		hs := newHosts()
		base(hs)
		hs[1].failImg = "shop-web"
		before := len(hs[2].commands())
		r := deployTo(t, release(t, "v2", nil), hs, func(o *Options) { o.Canary = true })
		wantCode(t, r, exit.RolledBack)
		got := []string{r.res.Hosts[0].Status, r.res.Hosts[1].Status, r.res.Hosts[2].Status}
		if strings.Join(got, " ") != "rolled-back rolled-back skipped" {
			t.Fatalf("statuses %v", got)
		}
		if len(hs[2].commands()) != before {
			t.Errorf("a skipped host was contacted")
		}
		for _, h := range hs {
			if h.current() != c1 || h.runningRelease() != c1 {
				t.Errorf("%s: current %s running %s", h.name, h.current(), h.runningRelease())
			}
		}
	})
	t.Run("stop", func(t *testing.T) {
		hs := newHosts()
		base(hs)
		hs[2].failImg = "shop-web"
		r := deployTo(t, release(t, "v2", nil), hs, func(o *Options) { o.Parallel = 2; o.OnFailure = "stop" })
		wantCode(t, r, exit.LeftChanged)
		if hs[0].current() != c2 || hs[1].current() != c2 || hs[2].current() != c1 || hs[2].runningRelease() != c1 {
			t.Fatalf("currents %s %s %s", hs[0].current(), hs[1].current(), hs[2].current())
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		hs := newHosts()
		base(hs)
		r := deployTo(t, release(t, "v2", nil), hs, func(o *Options) { o.Hosts = []string{"a", "nowhere", "c"}; o.Parallel = 1 })
		wantCode(t, r, exit.RolledBack)
		if hs[0].current() != c1 || hs[2].current() != c1 {
			t.Fatalf("currents %s %s", hs[0].current(), hs[2].current())
		}
		if !strings.Contains(r.err.Error(), "nowhere") {
			t.Errorf("error does not name the unreachable host: %v", r.err)
		}
	})
	t.Run("all-fail-before-change", func(t *testing.T) {
		r := deployTo(t, release(t, "v2", nil), nil, func(o *Options) { o.Hosts = []string{"x1", "x2"}; o.Parallel = 2 })
		wantCode(t, r, exit.Failed)
	})
}

func TestSmokeCheck(t *testing.T) {
	h := newFakeHost(t, "t1")
	bad := commitOf("v2")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			http.NotFound(w, r)
			return
		}
		if h.runningRelease() == bad {
			http.Error(w, "database migration missing", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	}))
	defer srv.Close()
	h.smoke = srv.Listener.Addr().String()
	smoke := func(o *Options) { o.SmokeURL = "http://localhost:8080/health" }
	wantCode(t, deployTo(t, release(t, "v1", nil), []*fakeHost{h}, smoke), 0)
	if h.dials == 0 {
		t.Fatal("smoke check did not go through the connection")
	}
	r := deployTo(t, release(t, "v2", nil), []*fakeHost{h}, smoke)
	wantCode(t, r, exit.RolledBack)
	if !strings.Contains(r.err.Error(), "500 Internal Server Error: database migration missing") {
		t.Errorf("error %v", r.err)
	}
	if h.current() != commitOf("v1") || h.runningRelease() != commitOf("v1") {
		t.Fatalf("current %s", h.current())
	}
	// A smoke URL that never answers 2xx, even for the previous release: the
	// rollback fails too, the host is left changed (exit 5).
	r = deployTo(t, release(t, "v3", nil), []*fakeHost{h}, func(o *Options) { o.SmokeURL = "http://localhost:8080/missing" })
	wantCode(t, r, exit.LeftChanged)
}

func TestValidation(t *testing.T) {
	h := newFakeHost(t, "t1")
	m := release(t, "v1", nil)
	for name, mod := range map[string]func(*Options){
		"no hosts":   func(o *Options) { o.Hosts = nil },
		"no dir":     func(o *Options) { o.Dir = "" },
		"bad host":   func(o *Options) { o.Hosts = []string{"a b"} },
		"strategy":   func(o *Options) { o.Strategy = "bluegreen" },
		"on-failure": func(o *Options) { o.OnFailure = "pray" },
		"hook":       func(o *Options) { o.PreDeploy = "migrate" },
		"smoke":      func(o *Options) { o.SmokeURL = "localhost:8080" },
		"keep":       func(o *Options) { o.Keep = -1 },
		"env-file":   func(o *Options) { o.EnvFile = "/nonexistent/prod.env" },
		"env-file over 1 MiB": func(o *Options) {
			o.EnvFile = filepath.Join(t.TempDir(), "prod.env")
			os.WriteFile(o.EnvFile, bytes.Repeat([]byte("# padding\n"), maxEnvFileSize/10+1), 0o600)
		},
		"manifest":   func(o *Options) { o.Manifest = "/nonexistent/m.json" },
		"parallel":   func(o *Options) { o.Parallel = -2 },
		"not-pushed": func(o *Options) { o.Manifest = unpushed(t, m) },
	} {
		t.Run(name, func(t *testing.T) {
			r := deployTo(t, m, []*fakeHost{h}, mod)
			wantCode(t, r, exit.Usage)
			if len(h.commands()) != 0 {
				t.Errorf("bad input reached the server: %v", h.commands())
			}
		})
	}
}

func unpushed(t *testing.T, path string) string {
	m, err := manifest.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	s := m.Services["web"]
	s.Digest = ""
	m.Services["web"] = s
	p := filepath.Join(t.TempDir(), "m.json")
	if err := manifest.Write(p, m); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestServerWithoutDockerOrCompose(t *testing.T) {
	for _, tc := range []struct{ remove, want string }{
		{"docker-compose", "compose not found on the server: install the Compose plugin"},
		{"docker", "docker not found on the server: install Docker Engine"},
	} {
		t.Run(tc.remove, func(t *testing.T) {
			h := newFakeHost(t, "t1")
			bin := strings.TrimPrefix(strings.Split(h.env[1], ":")[0], "PATH=")
			if err := os.Remove(filepath.Join(bin, tc.remove)); err != nil {
				t.Fatal(err)
			}
			r := deployTo(t, release(t, "v1", nil), []*fakeHost{h}, nil)
			wantCode(t, r, exit.Failed)
			if !strings.Contains(r.err.Error(), tc.want) {
				t.Errorf("error %q lacks %q", r.err, tc.want)
			}
			if _, err := os.Stat(h.dir()); err == nil {
				t.Error("the deploy directory was created on a server that cannot run the release")
			}
		})
	}
}

func TestRollbackCommand(t *testing.T) {
	h := newFakeHost(t, "t1")
	ro := RollbackOptions{Target: Target{Hosts: []string{"t1"}, Dir: "app", Dial: fakeDial(h)}, Stdout: io.Discard, Log: progress.Discard(), Getenv: credsEnv}
	_, err := Rollback(context.Background(), ro)
	if exit.Code(err) != exit.Failed || !strings.Contains(err.Error(), "no current release") {
		t.Fatalf("rollback with nothing deployed: %v", err)
	}
	for _, v := range []string{"v1", "v2", "v3"} {
		wantCode(t, deployTo(t, release(t, v, nil), []*fakeHost{h}, nil), 0)
		time.Sleep(1100 * time.Millisecond)
	}
	if _, err := Rollback(context.Background(), ro); err != nil {
		t.Fatal(err)
	}
	if h.current() != commitOf("v2") || h.runningRelease() != commitOf("v2") {
		t.Fatalf("after rollback: current %s", h.current())
	}
	ro.To = commitOf("v1")[:8]
	ro.JSON = true
	var out bytes.Buffer
	ro.Stdout = &out
	if _, err := Rollback(context.Background(), ro); err != nil {
		t.Fatal(err)
	}
	if h.current() != commitOf("v1") {
		t.Fatalf("after rollback --to v1: current %s", h.current())
	}
	var res Result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || res.Hosts[0].Release != commitOf("v1") || res.Hosts[0].Previous != commitOf("v2") {
		t.Fatalf("rollback --json: %v %s", err, out.String())
	}
	ro.To = "abcdef"
	if _, err := Rollback(context.Background(), ro); exit.Code(err) != exit.Usage {
		t.Fatalf("rollback to an unknown release: %v", err)
	}
}

func TestStatusAndReleases(t *testing.T) {
	h := newFakeHost(t, "t1")
	wantCode(t, deployTo(t, release(t, "v1", nil), []*fakeHost{h}, nil), 0)
	tg := Target{Hosts: []string{"t1", "gone"}, Dir: "app", Dial: fakeDial(h)}
	var out bytes.Buffer
	sts, err := Status(context.Background(), InfoOptions{Target: tg, JSON: true, Stdout: &out, Log: progress.Discard()})
	if exit.Code(err) != exit.Failed || !strings.Contains(err.Error(), "gone") {
		t.Errorf("status with an unreachable host: %v", err)
	}
	if sts[0].Current != commitOf("v1") || !sts[0].Healthy || len(sts[0].Containers) != 2 || sts[0].Release.Project != "shop" || sts[1].Error == "" {
		t.Errorf("status %+v", sts)
	}
	var parsed []HostStatus
	if err := json.Unmarshal(out.Bytes(), &parsed); err != nil || len(parsed) != 2 {
		t.Errorf("status --json: %v", err)
	}
	out.Reset()
	tg.Hosts = []string{"t1"}
	if _, err := Status(context.Background(), InfoOptions{Target: tg, Stdout: &out, Log: progress.Discard()}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"t1: current " + commitOf("v1"), "project shop", "shop_web_1", "healthy"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	hrs, err := Releases(context.Background(), InfoOptions{Target: tg, Stdout: &out, Log: progress.Discard()})
	if err != nil || len(hrs[0].Releases) != 1 || !hrs[0].Releases[0].Current {
		t.Fatalf("releases: %v %+v", err, hrs)
	}
}

func TestPruneSetAndBatches(t *testing.T) {
	rel := func(name string, age int, imgs ...string) remote.Release {
		return remote.Release{Name: name, ModTime: time.Unix(int64(1000-age), 0), Meta: &remote.ReleaseJSON{Images: imgs}}
	}
	rels := []remote.Release{rel("e", 0, "web@5", "db@1"), rel("d", 1, "web@4", "db@1"), rel("c", 2, "web@3", "db@1"), rel("b", 3, "web@2", "db@0"), rel("a", 4, "web@1", "db@0")}
	drop, imgs := pruneSet(rels, "c", 2) // current is c (a rollback), keep 2: c and e
	if strings.Join(drop, ",") != "d,b,a" || strings.Join(imgs, ",") != "web@4,web@2,db@0,web@1" {
		t.Errorf("drop %v images %v", drop, imgs)
	}
	if drop, _ := pruneSet(rels, "e", 5); len(drop) != 0 {
		t.Errorf("keep 5 of 5 dropped %v", drop)
	}
	got := fmt.Sprint(batches(5, 2, true))
	if got != "[[0] [1 2] [3 4]]" {
		t.Errorf("batches(5, 2, canary) = %s", got)
	}
	if got := fmt.Sprint(batches(3, 1, false)); got != "[[0] [1] [2]]" {
		t.Errorf("batches(3, 1) = %s", got)
	}
	if s, c, ok := parseHook(" web :  python manage.py migrate --noinput "); !ok || s != "web" || c != "python manage.py migrate --noinput" {
		t.Errorf("parseHook: %q %q %v", s, c, ok)
	}
	hosts, err := readHostsFile(strings.NewReader("# prod\napp1\n\n deploy@app2:2222  # second\n"), "hosts")
	if err != nil || strings.Join(hosts, ",") != "app1,deploy@app2:2222" {
		t.Errorf("hosts file: %v %v", hosts, err)
	}
	if _, err := readHostsFile(strings.NewReader("app1 app2\n"), "hosts"); exit.Code(err) != exit.Usage {
		t.Errorf("two hosts on a line: %v", err)
	}
}

func TestDryRunJSON(t *testing.T) {
	hs := []*fakeHost{newFakeHost(t, "a"), newFakeHost(t, "b")}
	r := deployTo(t, release(t, "v1", nil), hs, func(o *Options) { o.DryRun = true; o.JSON = true; o.Parallel = 2 })
	wantCode(t, r, 0)
	var res Result
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
	}
	if res.Status != "planned" || !res.DryRun || len(res.Hosts) != 2 {
		t.Fatalf("result %+v", res)
	}
	for _, h := range res.Hosts {
		if h.Status != StatusPlanned || len(h.Plan) < 5 || !strings.HasPrefix(h.Plan[0], "["+h.Host+"] ") {
			t.Errorf("host %s: status %s plan %q", h.Host, h.Status, h.Plan)
		}
	}
	for _, h := range hs {
		if _, err := os.Stat(h.dir()); err == nil {
			t.Errorf("%s: dry run created the deploy directory", h.name)
		}
	}
}

func TestCancelRollsBackAndReleasesTheLock(t *testing.T) {
	h := newFakeHost(t, "t1")
	wantCode(t, deployTo(t, release(t, "v1", nil), []*fakeHost{h}, nil), 0)
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb bytes.Buffer
	o := Options{Target: Target{Hosts: []string{"t1"}, Dir: "app", Dial: fakeDial(h)}, Manifest: release(t, "v2", map[string]string{"fake.health": "starting"}),
		HealthTimeout: time.Minute, Stdout: &out, Log: progress.New(&errb), Getenv: credsEnv}
	go func() {
		// Cancel once the new release runs (the health gate is waiting).
		for h.runningRelease() != commitOf("v2") {
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
	}()
	o.HealthTimeout = 2 * time.Second // the rollback's own gate must pass quickly
	_, err := Deploy(ctx, o)
	if exit.Code(err) != exit.Cancelled {
		t.Fatalf("exit %d (%v), want 130\n%s", exit.Code(err), err, errb.String())
	}
	if h.current() != commitOf("v1") || h.runningRelease() != commitOf("v1") {
		t.Fatalf("after cancel: current %s running %s", h.current(), h.runningRelease())
	}
	if _, err := os.Stat(filepath.Join(h.dir(), ".slipway", "lock")); err == nil {
		t.Error("lock left after a cancelled deploy")
	}
}

func TestCredentialsFromDockerConfig(t *testing.T) {
	h := newFakeHost(t, "t1")
	cfg := t.TempDir()
	data := fmt.Sprintf(`{"auths":{"reg.test:5000":{"auth":%q}}}`, b64("robot:"+testPass))
	os.WriteFile(filepath.Join(cfg, "config.json"), []byte(data), 0o600)
	r := deployTo(t, release(t, "v1", nil), []*fakeHost{h}, func(o *Options) {
		o.Getenv = env(map[string]string{"DOCKER_CONFIG": cfg})
	})
	wantCode(t, r, 0)
	if log := strings.Join(h.engine().Log, "\n"); !strings.Contains(log, "login reg.test:5000 as robot") {
		t.Errorf("the agent's DOCKER_CONFIG credentials were not used:\n%s", log)
	}
	assertNoSecret(t, h)
}

func TestMountedFilesComeFromTheStore(t *testing.T) {
	h := newFakeHost(t, "t1")
	storeOf := func(v string) string {
		data, err := os.ReadFile(filepath.Join(h.dir(), "releases", commitOf(v), "compose.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		prefix := h.dir() + "/.slipway/files/"
		for _, line := range strings.Split(string(data), "\n") {
			if i := strings.Index(line, prefix); i >= 0 && strings.Contains(line, "app.conf:/etc/app.conf") {
				p, _, _ := strings.Cut(line[i:], ":")
				return p
			}
		}
		t.Fatalf("compose.yaml of %s does not mount app.conf from the store:\n%s", v, data)
		return ""
	}
	wantCode(t, deployTo(t, release(t, "v1", nil), []*fakeHost{h}, func(o *Options) { o.Keep = 1 }), 0)
	p1 := storeOf("v1")
	if data, err := os.ReadFile(p1); err != nil || string(data) != "version=v1\n" {
		t.Fatalf("store file %s: %q %v", p1, data, err)
	}
	// The release directory keeps its own copy at the relative path too.
	if data, _ := os.ReadFile(filepath.Join(h.dir(), "releases", commitOf("v1"), "conf", "app.conf")); string(data) != "version=v1\n" {
		t.Errorf("release copy: %q", data)
	}
	wantCode(t, deployTo(t, release(t, "v2", nil), []*fakeHost{h}, func(o *Options) { o.Keep = 1 }), 0)
	p2 := storeOf("v2")
	if p1 == p2 {
		t.Fatal("different content, same store path")
	}
	if _, err := os.Stat(p1); err == nil {
		t.Errorf("the pruned release's store entry %s remains", p1)
	}
	if _, err := os.Stat(p2); err != nil {
		t.Errorf("the current release's store entry is gone: %v", err)
	}
	if storeEntry("a/x.conf", []byte("same")) != storeEntry("b/x.conf", []byte("same")) ||
		storeEntry("a/x.conf", []byte("same")) == storeEntry("a/y.conf", []byte("same")) {
		t.Error("store entries must depend on name and content only")
	}
}

// The previous release's images may have gone from the server since it ran
// (a docker image prune, another app's cleanup): the rollback pulls them
// again, with the deploy's credentials, before converging it.
func TestRollbackPullsPreviousImagesGoneFromTheServer(t *testing.T) {
	// (The fake compose knows recreate only; rolling's revert calls the same
	// pullPrevious first.)
	for _, strategy := range []string{"recreate"} {
		t.Run(strategy, func(t *testing.T) {
			h := newFakeHost(t, "t1")
			wantCode(t, deployTo(t, release(t, "v1", nil), []*fakeHost{h}, func(o *Options) { o.Strategy = strategy }), 0)
			st, err := loadState(h.state)
			if err != nil {
				t.Fatal(err)
			}
			st.Images = map[string]bool{} // every image gone
			if err := st.save(h.state); err != nil {
				t.Fatal(err)
			}
			r := deployTo(t, release(t, "bad", map[string]string{"fake.state": "exited"}), []*fakeHost{h}, func(o *Options) {
				o.Strategy = strategy
				o.HealthTimeout = time.Second
			})
			wantCode(t, r, exit.RolledBack)
			if h.current() != commitOf("v1") || h.runningRelease() != commitOf("v1") {
				t.Fatalf("current %s, running %s\n%s", h.current(), h.runningRelease(), r.stderr)
			}
		})
	}
}
