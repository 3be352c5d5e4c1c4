package deploy

// Integration tests against the real test services (test/scripts/services.sh
// up): the sample app's images built on the agent's engine and pushed to the
// TLS+htpasswd registry, deployed over real SSH (sshx, OpenSSH sshd) to a
// target network namespace with its own dockerd and docker-compose 1.29, and
// fetched over HTTP from the agent.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/manifest"
	"github.com/slipway-dev/slipway/tools/internal/progress"
	"github.com/slipway-dev/slipway/tools/internal/sshx"
	"github.com/slipway-dev/slipway/tools/internal/testenv"
)

// itProject is the compose project of these tests on the target (its own
// name and port, so nothing else on the target is touched).
const (
	itProject = "slwdeployit"
	itPort    = 18080
)

type itEnv struct {
	env    *testenv.Env
	tg     testenv.Target
	dir    string            // deploy dir on the target
	web    map[string]string // version -> image@digest
	db     string
	proxy  string
	rels   map[string]string // name -> manifest path
	commit map[string]string // name -> commit
}

func (e *itEnv) dockerT(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("docker", args...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+filepath.Join(e.env.StateDir, "docker-config"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// targetDocker runs docker against the target's own engine.
func (e *itEnv) targetDocker(args ...string) (string, error) {
	cmd := exec.Command("docker", append([]string{"-H", e.tg.DockerHost}, args...)...)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func repoDigest(t *testing.T, e *itEnv, ref string) string {
	t.Helper()
	repo := ref
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		repo = ref[:i]
	}
	out := e.dockerT(t, "image", "inspect", "--format", "{{json .RepoDigests}}", ref)
	var ds []string
	json.Unmarshal([]byte(out), &ds)
	for _, d := range ds {
		if strings.HasPrefix(d, repo+"@") {
			return d
		}
	}
	t.Fatalf("%s has no repo digest (not pushed?): %s", ref, out)
	return ""
}

// buildWeb builds the sample app's web image with VERSION v and pushes it.
func buildWeb(t *testing.T, e *itEnv, v string) string {
	t.Helper()
	root, _ := testenv.RepoRoot()
	ctx := t.TempDir()
	src := filepath.Join(root, "test", "fixtures", "sampleapp", "web")
	for _, f := range []string{"Dockerfile", "app.py"} {
		data, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if f == "Dockerfile" {
			// A label unique to this run: the build cache would otherwise
			// give an image (and digest) the target may still hold, and
			// then nothing needs pulling.
			data = append(data, []byte("\nLABEL org.slipway.test-run="+e.web[""]+"\n")...)
		}
		os.WriteFile(filepath.Join(ctx, f), data, 0o644)
	}
	os.WriteFile(filepath.Join(ctx, "VERSION"), []byte(v+"\n"), 0o644)
	ref := e.env.Registry + "/slipway-deploy-it/web:" + v
	e.dockerT(t, "build", "-q", "--build-arg", "BASE_IMAGE="+e.env.FixtureRegistry+"/python:bookworm", "-t", ref, ctx)
	e.dockerT(t, "push", ref)
	return repoDigest(t, e, ref)
}

var itCompose = template.Must(template.New("c").Parse(`name: {{.Project}}
services:
  web:
    image: {{.Web}}
    environment:
      DATABASE_URL: postgresql://${POSTGRES_USER:-sampleapp}@db:5432/${POSTGRES_DB:-sampleapp}
      PGPASSWORD: ${POSTGRES_PASSWORD:-sampleapp-demo-password}
      APP_MESSAGE: ${APP_MESSAGE:-hello from sampleapp}
    depends_on:
      db:
        condition: service_healthy
{{- if .Init}}
      init:
        condition: service_completed_successfully
{{- end}}
    restart: unless-stopped
{{- if .Init}}
  init:
    image: {{.Proxy}}
    command: ["sh", "-c", "echo {{.Init}}"]
{{- end}}
  db:
    image: {{.DB}}
    environment:
      POSTGRES_USER: ${POSTGRES_USER:-sampleapp}
      POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:-sampleapp-demo-password}
      POSTGRES_DB: ${POSTGRES_DB:-sampleapp}
    volumes:
      - dbdata:/var/lib/postgresql/data
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -h 127.0.0.1 -U \"$$POSTGRES_USER\" -d \"$$POSTGRES_DB\""]
      interval: 2s
      timeout: 10s
      retries: 15
      # Failures in the first 3 minutes do not count: a first initdb under load
      # took 87 s. Healthy ends the start period at once, so this costs nothing.
      start_period: 180s
    restart: unless-stopped
  proxy:
    image: {{.Proxy}}
    volumes:
      - ./proxy/nginx.conf:/etc/nginx/nginx.conf:ro
{{- if .Blob}}
      - ./static:/srv/static:ro
{{- end}}
    ports:
      - "${WEB_PORT:-8080}:80"
    depends_on:
      web:
        condition: service_healthy
    restart: unless-stopped
{{- if .Worker}}
  worker:
    image: {{.Web}}
    command: ["python3", "-c", "import sys; print('worker: DATABASE_URL has no host; giving up'); sys.exit(3)"]
{{- end}}
{{- if .NeverReady}}
  sidecar:
    image: {{.Proxy}}
    healthcheck:
      test: ["CMD", "false"]
      interval: 1s
      start_period: 10m
{{- end}}
volumes:
  dbdata: {}
`))

type itSpec struct {
	Project, Web, DB, Proxy string
	Worker, NeverReady      bool
	Blob                    bool
	Smoke500                bool
	Init                    string // a one-shot service web waits for, printing this
}

// writeRelease writes a manifest + pinned compose file (as build and push
// would) for a release named name, with a commit derived from it.
func writeRelease(t *testing.T, e *itEnv, name string, s itSpec) {
	t.Helper()
	root, _ := testenv.RepoRoot()
	dir := t.TempDir()
	s.Project, s.DB, s.Proxy = itProject, e.db, e.proxy
	var b bytes.Buffer
	if err := itCompose.Execute(&b, s); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "slipway-compose.pinned.yml"), b.Bytes(), 0o644)
	conf, _ := os.ReadFile(filepath.Join(root, "test", "fixtures", "sampleapp", "proxy", "nginx.conf"))
	if s.Smoke500 {
		conf = bytes.Replace(conf, []byte("    location / {"), []byte("    location = /version {\n      return 500 \"broken\\n\";\n    }\n\n    location / {"), 1)
	}
	os.MkdirAll(filepath.Join(dir, "proxy"), 0o755)
	os.WriteFile(filepath.Join(dir, "proxy", "nginx.conf"), conf, 0o644)
	if s.Blob {
		blob := make([]byte, 8<<20)
		rand.Read(blob)
		os.MkdirAll(filepath.Join(dir, "static"), 0o755)
		os.WriteFile(filepath.Join(dir, "static", "blob.bin"), blob, 0o644)
	}
	os.WriteFile(filepath.Join(dir, "prod.env"), []byte(fmt.Sprintf("WEB_PORT=%d\nPOSTGRES_PASSWORD=it-db-%s\nAPP_MESSAGE=hello %s\n", itPort, "pw", name)), 0o600)
	commit := commitOf("it " + name + " " + e.web[""])
	webRepo, webDigest, _ := strings.Cut(s.Web, "@")
	m := &manifest.Manifest{Project: itProject, ComposeFiles: []string{"compose.yaml"}, Commit: commit, ShortCommit: commit[:12],
		Branch: "main", BuildURL: "https://ci.example/job/sampleapp/" + name + "/", PinnedCompose: "slipway-compose.pinned.yml",
		Services: map[string]manifest.Service{"web": {Image: webRepo, Tags: []string{commit}, Digest: webDigest}}}
	path := filepath.Join(dir, manifest.DefaultPath)
	if err := manifest.Write(path, m); err != nil {
		t.Fatal(err)
	}
	e.rels[name], e.commit[name] = path, commit
}

func setupIT(t *testing.T) *itEnv {
	env := testenv.Require(t)
	if len(env.Targets) == 0 {
		t.Fatal("the test services have no SSH target")
	}
	e := &itEnv{env: env, tg: env.Targets[0], rels: map[string]string{}, commit: map[string]string{}, web: map[string]string{}}
	e.dir = e.tg.Dir + "/deploy-it"
	e.cleanTarget(t)
	// A run id keeps commits distinct between runs of the test.
	id := make([]byte, 4)
	rand.Read(id)
	e.web[""] = hex.EncodeToString(id)
	e.web["1"] = buildWeb(t, e, "1.0.0")
	e.web["2"] = buildWeb(t, e, "2.0.0")
	for _, img := range []string{"postgres:15", "nginx:bookworm"} {
		ref := env.FixtureRegistry + "/" + img
		e.dockerT(t, "pull", "-q", ref)
		if strings.HasPrefix(img, "postgres") {
			e.db = repoDigest(t, e, ref)
		} else {
			e.proxy = repoDigest(t, e, ref)
		}
	}
	writeRelease(t, e, "v1", itSpec{Web: e.web["1"]})
	writeRelease(t, e, "v2", itSpec{Web: e.web["2"]})
	writeRelease(t, e, "crash", itSpec{Web: e.web["2"], Worker: true})
	writeRelease(t, e, "neverready", itSpec{Web: e.web["2"], NeverReady: true})
	writeRelease(t, e, "smoke500", itSpec{Web: e.web["2"], Smoke500: true})
	writeRelease(t, e, "big", itSpec{Web: e.web["2"], Blob: true})
	t.Cleanup(func() {
		if os.Getenv("SLIPWAY_KEEP_DEPLOY_IT") == "" {
			e.cleanTarget(t)
		}
	})
	return e
}

// cleanTarget removes this test's containers, volume, network, images and
// directory from the target.
func (e *itEnv) cleanTarget(t *testing.T) {
	ids, _ := e.targetDocker("ps", "-aq", "--filter", "label=com.docker.compose.project="+itProject)
	if ids != "" {
		e.targetDocker(append([]string{"rm", "-f"}, strings.Fields(ids)...)...)
	}
	e.targetDocker("volume", "rm", "-f", itProject+"_dbdata")
	e.targetDocker("network", "rm", itProject+"_default")
	imgs, _ := e.targetDocker("images", "-q", e.env.Registry+"/slipway-deploy-it/web")
	if imgs != "" {
		e.targetDocker(append([]string{"rmi", "-f"}, strings.Fields(imgs)...)...)
	}
	if err := os.RemoveAll(e.dir); err != nil {
		t.Logf("removing %s: %v", e.dir, err)
	}
}

func (e *itEnv) target(mod ...func(*Target)) Target {
	tg := Target{
		Hosts: []string{e.tg.User + "@" + e.tg.Addr()},
		Dir:   e.dir,
		SSH:   sshx.Options{Identity: e.tg.KeyFile, KnownHosts: e.tg.KnownHosts, ConfigFile: "none"},
	}
	for _, m := range mod {
		m(&tg)
	}
	return tg
}

// countingDial records every connection, to count handshakes per host.
type countingDial struct {
	mu    sync.Mutex
	conns []Conn
	wrap  func(Conn) Conn
}

func (c *countingDial) dial(ctx context.Context, target string, o sshx.Options) (Conn, error) {
	conn, err := SSHDial(ctx, target, o)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.conns = append(c.conns, conn)
	c.mu.Unlock()
	if c.wrap != nil {
		return c.wrap(conn), nil
	}
	return conn, nil
}

func (e *itEnv) deploy(t *testing.T, rel string, mod func(*Options)) run {
	t.Helper()
	var out, errb bytes.Buffer
	cd := &countingDial{}
	o := Options{
		Target:        e.target(),
		Manifest:      e.rels[rel],
		EnvFile:       filepath.Join(filepath.Dir(e.rels[rel]), "prod.env"),
		HealthTimeout: 90 * time.Second,
		Stdout:        &out,
		Log:           progress.New(io.MultiWriter(&errb, testWriter{t})),
		Getenv: env(map[string]string{"SLIPWAY_REGISTRY_USER": e.env.RegistryUser, "SLIPWAY_REGISTRY_PASSWORD": e.env.RegistryPassword,
			"HOME": "/nonexistent"}),
	}
	o.Dial = cd.dial
	if mod != nil {
		mod(&o)
	}
	res, err := Deploy(context.Background(), o)
	r := run{res, err, out.String(), errb.String()}
	if res != nil && err == nil {
		for _, h := range res.Hosts {
			if h.Handshakes != 1 {
				t.Errorf("%s: %d SSH handshakes, want 1", h.Host, h.Handshakes)
			}
		}
	}
	return r
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// version fetches /version through the proxy from the agent, over the bridge.
func (e *itEnv) version(t *testing.T) string {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://%s/version", net.JoinHostPort(e.tg.Host, strconv.Itoa(itPort))))
	if err != nil {
		return "unreachable: " + err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Sprintf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return strings.TrimSpace(string(body))
}

func (e *itEnv) current() string {
	l, err := os.Readlink(filepath.Join(e.dir, "current"))
	if err != nil {
		return ""
	}
	return filepath.Base(l)
}

func (e *itEnv) releaseDirs() []string {
	es, _ := os.ReadDir(filepath.Join(e.dir, "releases"))
	var out []string
	for _, d := range es {
		out = append(out, d.Name())
	}
	return out
}

func (e *itEnv) wantServing(t *testing.T, rel, version string) {
	t.Helper()
	if got := e.version(t); got != version {
		t.Errorf("serving %q, want %q", got, version)
	}
	if got := e.current(); got != e.commit[rel] {
		t.Errorf("current -> %s, want %s (%s)", got, e.commit[rel], rel)
	}
}

// argvWatch samples every process's command line while a deploy runs (the
// target's processes share the agent's PID namespace) and reports the ones
// holding a secret.
func argvWatch(secrets ...string) (stop func() []string) {
	done := make(chan struct{})
	var found []string
	var mu sync.Mutex
	go func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			ents, _ := os.ReadDir("/proc")
			for _, ent := range ents {
				if _, err := strconv.Atoi(ent.Name()); err != nil {
					continue
				}
				data, err := os.ReadFile("/proc/" + ent.Name() + "/cmdline")
				if err != nil {
					continue
				}
				for _, s := range secrets {
					if bytes.Contains(data, []byte(s)) {
						mu.Lock()
						found = append(found, strings.ReplaceAll(string(data), "\x00", " "))
						mu.Unlock()
					}
				}
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	return func() []string {
		close(done)
		mu.Lock()
		defer mu.Unlock()
		return found
	}
}

// filesHolding lists files owned by uid under roots that contain a secret.
func filesHolding(roots []string, uid int, secrets ...string) []string {
	var hits []string
	for _, root := range roots {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if d.IsDir() {
				return nil
			}
			info, err := d.Info()
			if err != nil || !info.Mode().IsRegular() || info.Size() > 16<<20 {
				return nil
			}
			if st, ok := info.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != uid {
				return nil
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return nil
			}
			for _, s := range secrets {
				if bytes.Contains(data, []byte(s)) {
					hits = append(hits, p)
				}
			}
			return nil
		})
	}
	return hits
}

func deployUID(t *testing.T, user string) (int, string) {
	f, err := os.Open("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.Split(sc.Text(), ":")
		if len(parts) > 5 && parts[0] == user {
			uid, _ := strconv.Atoi(parts[2])
			return uid, parts[5]
		}
	}
	t.Fatalf("no user %s in /etc/passwd", user)
	return 0, ""
}

func TestIntegrationDeploy(t *testing.T) {
	e := setupIT(t)
	ctx := context.Background()

	t.Run("unknown host key", func(t *testing.T) {
		empty := filepath.Join(t.TempDir(), "known_hosts")
		os.WriteFile(empty, nil, 0o600)
		r := e.deploy(t, "v1", func(o *Options) { o.SSH.KnownHosts = empty })
		wantCode(t, r, exit.Failed)
		if !strings.Contains(r.err.Error(), "SHA256:") {
			t.Errorf("error does not show the host key fingerprint: %v", r.err)
		}
		if _, err := os.Stat(e.dir); err == nil {
			t.Error("the deploy directory was created")
		}
	})

	t.Run("dir not writable", func(t *testing.T) {
		r := e.deploy(t, "v1", func(o *Options) { o.Dir = "/opt/slipway-deploy-it" })
		wantCode(t, r, exit.Failed)
		if !strings.Contains(r.err.Error(), "not writable by the SSH user") {
			t.Errorf("error: %v", r.err)
		}
	})

	t.Run("dry run on a fresh host", func(t *testing.T) {
		r := e.deploy(t, "v1", func(o *Options) { o.DryRun = true })
		wantCode(t, r, 0)
		if _, err := os.Stat(e.dir); err == nil {
			t.Error("dry run created the deploy directory")
		}
		if !strings.Contains(r.stdout, "docker-compose -p "+itProject) || !strings.Contains(r.stdout, "upload ") {
			t.Errorf("plan:\n%s", r.stdout)
		}
	})

	uid, home := deployUID(t, e.tg.User)
	secrets := []string{e.env.RegistryPassword, base64.StdEncoding.EncodeToString([]byte(e.env.RegistryUser + ":" + e.env.RegistryPassword))}
	t.Run("first deploy", func(t *testing.T) {
		stop := argvWatch(secrets...)
		r := e.deploy(t, "v1", nil)
		leaks := stop()
		wantCode(t, r, 0)
		e.wantServing(t, "v1", "1.0.0")
		if len(leaks) > 0 {
			t.Errorf("registry credentials in process arguments: %q", leaks)
		}
		if hits := filesHolding([]string{e.dir, home, os.TempDir()}, uid, secrets...); len(hits) > 0 {
			t.Errorf("registry credentials left on the server in %v", hits)
		}
		st, err := os.Stat(filepath.Join(e.dir, "releases", e.commit["v1"], ".env"))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf(".env: %v %v", st, err)
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	// A row written under v1 must survive v2: same project, same volume.
	resp, err := http.Post(fmt.Sprintf("http://%s:%d/items", e.tg.Host, itPort), "application/json", strings.NewReader(`{"name":"kept across releases"}`))
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("POST /items: %v %v", resp, err)
	}
	resp.Body.Close()

	t.Run("wrong registry credentials", func(t *testing.T) {
		r := e.deploy(t, "v2", func(o *Options) {
			o.Getenv = env(map[string]string{"SLIPWAY_REGISTRY_USER": e.env.RegistryUser, "SLIPWAY_REGISTRY_PASSWORD": "wrong-password", "HOME": "/nonexistent"})
		})
		wantCode(t, r, exit.Failed)
		if !strings.Contains(r.err.Error(), "registry login") {
			t.Errorf("error: %v", r.err)
		}
		e.wantServing(t, "v1", "1.0.0")
		if got := e.releaseDirs(); len(got) != 1 {
			t.Errorf("releases/ = %v", got)
		}
	})

	t.Run("second deploy", func(t *testing.T) {
		dbBefore, _ := e.targetDocker("ps", "-q", "--filter", "label=com.docker.compose.project="+itProject, "--filter", "label=com.docker.compose.service=db")
		proxyBefore, _ := e.targetDocker("ps", "-q", "--filter", "label=com.docker.compose.project="+itProject, "--filter", "label=com.docker.compose.service=proxy")
		r := e.deploy(t, "v2", func(o *Options) { o.SmokeURL = fmt.Sprintf("http://localhost:%d/version", itPort) })
		wantCode(t, r, 0)
		e.wantServing(t, "v2", "2.0.0")
		dbAfter, _ := e.targetDocker("ps", "-q", "--filter", "label=com.docker.compose.project="+itProject, "--filter", "label=com.docker.compose.service=db")
		if dbBefore == "" || dbBefore != dbAfter {
			t.Errorf("the unchanged db container was replaced: %q -> %q", dbBefore, dbAfter)
		}
		// The proxy's image and nginx.conf are the same in v1 and v2: it
		// keeps running although it mounts a file of the release.
		proxyAfter, _ := e.targetDocker("ps", "-q", "--filter", "label=com.docker.compose.project="+itProject, "--filter", "label=com.docker.compose.service=proxy")
		if proxyBefore == "" || proxyBefore != proxyAfter {
			t.Errorf("the unchanged proxy container was replaced: %q -> %q", proxyBefore, proxyAfter)
		}
		resp, err := http.Get(fmt.Sprintf("http://%s:%d/items", e.tg.Host, itPort))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), "kept across releases") {
			t.Errorf("data written under v1 is gone: %s", body)
		}
	})

	t.Run("status and releases", func(t *testing.T) {
		var out bytes.Buffer
		sts, err := Status(ctx, InfoOptions{Target: e.target(), JSON: true, Stdout: &out, Log: progress.Discard()})
		if err != nil {
			t.Fatal(err)
		}
		st := sts[0]
		if st.Current != e.commit["v2"] || st.Release == nil || st.Release.BuildURL == "" || st.Release.DeployedBy == "" || !st.Healthy || len(st.Containers) != 3 {
			t.Errorf("status %+v", st)
		}
		var parsed []HostStatus
		if err := json.Unmarshal(out.Bytes(), &parsed); err != nil || len(parsed) != 1 {
			t.Errorf("status --json: %v\n%s", err, out.String())
		}
		out.Reset()
		hrs, err := Releases(ctx, InfoOptions{Target: e.target(), Stdout: &out, Log: progress.Discard()})
		if err != nil {
			t.Fatal(err)
		}
		rs := hrs[0].Releases
		if len(rs) != 2 || rs[0].Commit != e.commit["v2"] || !rs[0].Current || rs[1].Commit != e.commit["v1"] || rs[1].Current {
			t.Errorf("releases %+v", rs)
		}
		if !regexp.MustCompile(`(?m)^\*\s+` + e.commit["v2"]).MatchString(out.String()) {
			t.Errorf("releases output does not mark current:\n%s", out.String())
		}
	})

	t.Run("rollback", func(t *testing.T) {
		var out bytes.Buffer
		ro := RollbackOptions{Target: e.target(), Stdout: &out, Log: progress.New(testWriter{t}), Getenv: env(nil)}
		if _, err := Rollback(ctx, ro); err != nil {
			t.Fatal(err)
		}
		e.wantServing(t, "v1", "1.0.0")
		ro.To = e.commit["v2"][:10]
		if _, err := Rollback(ctx, ro); err != nil {
			t.Fatal(err)
		}
		e.wantServing(t, "v2", "2.0.0")
		ro.To = "deadbeef"
		_, err := Rollback(ctx, ro)
		if exit.Code(err) != exit.Usage || !strings.Contains(fmt.Sprint(err), "no such release") {
			t.Errorf("rollback to a missing release: %v (code %d)", err, exit.Code(err))
		}
	})

	t.Run("container exits", func(t *testing.T) {
		r := e.deploy(t, "crash", func(o *Options) { o.HealthTimeout = 60 * time.Second })
		wantCode(t, r, exit.RolledBack)
		e.wantServing(t, "v2", "2.0.0")
		if !strings.Contains(r.stderr, "worker: DATABASE_URL has no host") {
			t.Errorf("the failing container's log lines were not printed")
		}
		for _, d := range e.releaseDirs() {
			if d == e.commit["crash"] {
				t.Errorf("the failed release directory was kept")
			}
		}
	})

	t.Run("health timeout", func(t *testing.T) {
		r := e.deploy(t, "neverready", func(o *Options) { o.HealthTimeout = 8 * time.Second })
		wantCode(t, r, exit.RolledBack)
		e.wantServing(t, "v2", "2.0.0")
		if !strings.Contains(r.err.Error(), "sidecar") {
			t.Errorf("error does not name the container that was not ready: %v", r.err)
		}
	})

	t.Run("smoke URL 500", func(t *testing.T) {
		r := e.deploy(t, "smoke500", func(o *Options) { o.SmokeURL = fmt.Sprintf("http://localhost:%d/version", itPort) })
		wantCode(t, r, exit.RolledBack)
		e.wantServing(t, "v2", "2.0.0")
		if !strings.Contains(r.err.Error(), "500") {
			t.Errorf("error: %v", r.err)
		}
	})

	t.Run("lock held", func(t *testing.T) {
		first := make(chan run)
		go func() {
			first <- e.deploy(t, "v1", func(o *Options) { o.PreDeploy = "web: sleep 6" })
		}()
		// Wait for the first deploy to hold the lock.
		lock := filepath.Join(e.dir, ".slipway", "lock", "info")
		for i := 0; i < 200; i++ {
			if _, err := os.Stat(lock); err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		r := e.deploy(t, "v2", func(o *Options) { o.LockWait = 2 * time.Second })
		wantCode(t, r, exit.Failed)
		if !strings.Contains(r.err.Error(), "lock held by ") || !strings.Contains(r.err.Error(), "(build https://ci.example/job/sampleapp/v1/)") {
			t.Errorf("error: %v", r.err)
		}
		wantCode(t, <-first, 0)
		e.wantServing(t, "v1", "1.0.0")
	})

	t.Run("connection cut during upload", func(t *testing.T) {
		before := strings.Join(e.releaseDirs(), ",")
		cd := &countingDial{wrap: func(c Conn) Conn { return &cutConn{Conn: c, after: 2 << 20} }}
		r := e.deploy(t, "big", func(o *Options) { o.Dial = cd.dial })
		wantCode(t, r, exit.Failed)
		e.wantServing(t, "v1", "1.0.0")
		if after := strings.Join(e.releaseDirs(), ","); after != before {
			// a leftover .tmp-* upload directory is allowed (removed by a later prune), nothing else
			for _, d := range e.releaseDirs() {
				if d == e.commit["big"] {
					t.Errorf("a release directory appeared for the cut upload: %s", after)
				}
			}
		}
		if _, err := os.Stat(filepath.Join(e.dir, ".slipway", "lock")); err == nil {
			t.Errorf("the lock was not released after the connection died")
		}
	})
}

// cutConn closes the SSH connection after the upload session sent `after`
// bytes: a connection cut mid-upload.
type cutConn struct {
	Conn
	after int64
}

func (c *cutConn) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	if stdin != nil && strings.Contains(cmd, "tar -x") {
		stdin = &cutReader{r: stdin, left: c.after, cut: func() { c.Conn.Close() }}
	}
	return c.Conn.Run(ctx, cmd, stdin, stdout, stderr)
}

type cutReader struct {
	r    io.Reader
	left int64
	cut  func()
	once sync.Once
}

func (r *cutReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		r.once.Do(r.cut)
		return 0, io.ErrUnexpectedEOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.r.Read(p)
	r.left -= int64(n)
	return n, err
}
