package main

// Helpers of the whole-command fault tests (faults_test.go): the real slipway
// binary, built once per test binary, run as a user would run it against the
// real test services (agent engine, TLS registry, SSH targets).

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/testenv"
)

var (
	binDir  string // the test binary's scratch dir: the slipway binary, HOME, the app
	slipway string // path of the slipway binary built in TestMain

	// The images this test binary pushes: <registry>/slwfaults-<run>/...,
	// removed from the agent and the targets at the end.
	imagePrefix  string
	prefixOnce   sync.Once
	pulledOnto   sync.Map // target docker host -> true
	runID        = randHex(4)
	portCounter  atomic.Int32
	portBase     = 20000 + int(randUint16()%8000)
	appOnce      sync.Once
	appManifest  string // the app's manifest, built and pushed for real
	appErr       error
	binBuildFail string
)

func TestMain(m *testing.M) {
	code := func() int {
		var err error
		binDir, err = os.MkdirTemp("", "slipway-faults-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(binDir)
		root, err := testenv.RepoRoot()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		slipway = filepath.Join(binDir, "slipway")
		cmd := exec.Command("go", "build", "-o", slipway, "./tools/cmd/slipway")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			// Reported by every test, so go test prints it where it is seen.
			binBuildFail = fmt.Sprintf("go build ./tools/cmd/slipway: %v\n%s", err, out)
		}
		os.MkdirAll(filepath.Join(binDir, "home"), 0o700)
		defer cleanupImages()
		return m.Run()
	}()
	os.Exit(code)
}

// needBinary returns the services, failing the test if the binary did not build.
func needBinary(t *testing.T) *testenv.Env {
	t.Helper()
	env := testenv.Require(t)
	if binBuildFail != "" {
		t.Fatal(binBuildFail)
	}
	prefixOnce.Do(func() { imagePrefix = env.Registry + "/slwfaults-" + runID })
	return env
}

// cleanupImages removes this run's images from the agent's engine and from
// every target they were pulled onto.
func cleanupImages() {
	if imagePrefix == "" {
		return
	}
	hosts := []string{""}
	pulledOnto.Range(func(k, _ any) bool { hosts = append(hosts, k.(string)); return true })
	for _, h := range hosts {
		var pre []string
		if h != "" {
			pre = []string{"-H", h}
		}
		out, _ := exec.Command("docker", append(pre, "image", "ls", "--format", "{{.ID}}", "--filter", "reference="+imagePrefix+"/*")...).Output()
		if ids := strings.Fields(string(out)); len(ids) > 0 {
			_ = exec.Command("docker", append(append(pre, "rmi", "-f"), ids...)...).Run()
		}
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func randUint16() uint16 {
	b := make([]byte, 2)
	rand.Read(b)
	return uint16(b[0])<<8 | uint16(b[1])
}

// baseEnv is the environment every slipway process gets: the registry
// credentials as Jenkins would pass them (never in argv), a HOME of its own
// (no ~/.ssh/config or ~/.docker of the machine's user) and no ssh-agent.
func baseEnv(env *testenv.Env, extra ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "HOME", "SSH_AUTH_SOCK", "DOCKER_CONFIG", "GIT_COMMIT", "BUILD_URL", "BUILD_NUMBER", "BRANCH_NAME", "GIT_BRANCH":
			continue
		}
		out = append(out, kv)
	}
	out = append(out, "HOME="+filepath.Join(binDir, "home"),
		"SLIPWAY_REGISTRY_USER="+env.RegistryUser, "SLIPWAY_REGISTRY_PASSWORD="+env.RegistryPassword,
		"SLIPWAY_FIXTURE_REGISTRY="+env.FixtureRegistry)
	return append(out, extra...)
}

// proc is one running slipway command.
type proc struct {
	cmd     *exec.Cmd
	name    string
	started time.Time
	mu      sync.Mutex
	stdout  bytes.Buffer
	stderr  bytes.Buffer
	done    chan struct{}
	code    int // exit code; -1 when killed by a signal
	ended   time.Time
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// start runs slipway args in dir with env; the process is killed at the
// test's end if it still runs.
func start(t *testing.T, dir string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{name: strings.Join(args, " "), done: make(chan struct{})}
	p.cmd = exec.Command(slipway, args...)
	p.cmd.Dir = dir
	p.cmd.Env = env
	p.cmd.Stdout = lockedWriter{&p.mu, &p.stdout}
	p.cmd.Stderr = lockedWriter{&p.mu, &p.stderr}
	p.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting slipway %s: %v", p.name, err)
	}
	go func() {
		err := p.cmd.Wait()
		p.ended = time.Now()
		p.code = 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			p.code = ee.ExitCode()
		} else if err != nil {
			p.code = -2
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// run runs slipway to its end (bounded by limit) and returns it.
func run(t *testing.T, dir string, env []string, limit time.Duration, args ...string) *proc {
	t.Helper()
	p := start(t, dir, env, args...)
	if !p.wait(limit) {
		p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("slipway %s still running after %s; killed\n%s", p.name, limit, p.errText())
	}
	return p
}

func (p *proc) wait(limit time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(limit):
		return false
	}
}

func (p *proc) errText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

func (p *proc) outText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stdout.String()
}

// waitStderr waits until stderr holds s; false if the process ended or
// limit passed first.
func (p *proc) waitStderr(s string, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if strings.Contains(p.errText(), s) {
			return true
		}
		select {
		case <-p.done:
			return strings.Contains(p.errText(), s)
		case <-time.After(50 * time.Millisecond):
		}
	}
	return false
}

func (p *proc) signal(t *testing.T, sig syscall.Signal) time.Time {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signalling slipway %s: %v", p.name, err)
	}
	return time.Now()
}

// wantCode fails the test unless p exited with code.
func wantCode(t *testing.T, p *proc, code int) {
	t.Helper()
	if p.code != code {
		t.Fatalf("slipway %s: exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", p.name, p.code, code, p.outText(), p.errText())
	}
}

// commitAll makes dir a git repository of its files, one commit (build tags
// images with it).
func commitAll(dir string) error {
	for _, a := range [][]string{{"init", "-q", "-b", "main", "."}, {"add", "-A"},
		{"-c", "user.email=faults@slipway.test", "-c", "user.name=faults", "commit", "-q", "-m", "fixture"}} {
		cmd := exec.Command("git", a...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git %s in %s: %v\n%s", strings.Join(a, " "), dir, err, out)
		}
	}
	return nil
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// The app the deploy tests ship: one small HTTP service (the fixture python
// image) serving /version, the release name from the server's .env, with a
// healthcheck that passes within a second or two unless APP_HEALTHY=no.
// Its start period keeps a container that starts slowly under load
// "starting", not "unhealthy" (which fails a health gate at once).
var appFiles = map[string]string{
	"Dockerfile": "ARG BASE\nFROM ${BASE}\nCOPY serve.sh /serve.sh\n",
	"serve.sh": "#!/bin/sh\nmkdir -p /srv/www && printf '%s\\n' \"$APP_RELEASE\" > /srv/www/version && cd /srv/www && " +
		"exec python3 -m http.server 8000\n",
	"compose.yaml": `name: slwfaults
services:
  app:
    build:
      context: .
      args:
        BASE: ${SLIPWAY_FIXTURE_REGISTRY:?set SLIPWAY_FIXTURE_REGISTRY}/python:bookworm
    command: ["sh", "/serve.sh"]
    environment:
      APP_RELEASE: ${APP_RELEASE:-none}
      APP_HEALTHY: ${APP_HEALTHY:-yes}
    ports:
      - "${APP_PORT:-8000}:8000"
    healthcheck:
      test: ["CMD-SHELL", "test \"$$APP_HEALTHY\" = yes && test -s /srv/www/version"]
      interval: 1s
      timeout: 3s
      retries: 3
      start_period: 30s
    stop_grace_period: 1s
`,
}

// app builds and pushes the app once per test binary with the real build
// and push commands and returns its manifest (next to it: the pinned file).
func app(t *testing.T, env *testenv.Env) string {
	t.Helper()
	appOnce.Do(func() {
		dir := filepath.Join(binDir, "app")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			appErr = err
			return
		}
		for name, body := range appFiles {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				appErr = err
				return
			}
		}
		if appErr = commitAll(dir); appErr != nil {
			return
		}
		for _, args := range [][]string{{"build", "--registry", imagePrefix}, {"push"}} {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			cmd := exec.CommandContext(ctx, slipway, args...)
			cmd.Dir = dir
			cmd.Env = baseEnv(env)
			out, err := cmd.CombinedOutput()
			cancel()
			if err != nil {
				appErr = fmt.Errorf("slipway %s (the app fixture): %v\n%s", strings.Join(args, " "), err, out)
				return
			}
		}
		appManifest = filepath.Join(dir, "slipway-release.json")
	})
	if appErr != nil {
		t.Fatal(appErr)
	}
	return appManifest
}

// site is one test's deployment of the app on one target: its own compose
// project, deploy dir and published port.
type site struct {
	env     *testenv.Env
	tg      testenv.Target
	project string
	dir     string
	port    int
}

func newSite(t *testing.T, env *testenv.Env, tg testenv.Target, name string) *site {
	t.Helper()
	s := &site{env: env, tg: tg, project: name + runID, port: portBase + int(portCounter.Add(1))}
	s.dir = tg.Dir + "/" + s.project
	pulledOnto.Store(tg.DockerHost, true)
	s.clean(t)
	t.Cleanup(func() {
		if os.Getenv("SLIPWAY_KEEP_FAULTS") == "" {
			s.clean(t)
		}
	})
	return s
}

func (s *site) docker(args ...string) (string, error) {
	out, err := exec.Command("docker", append([]string{"-H", s.tg.DockerHost}, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// clean removes the site's containers, network and directory from the target.
func (s *site) clean(t *testing.T) {
	if ids, _ := s.docker("ps", "-aq", "--filter", "label=com.docker.compose.project="+s.project); ids != "" {
		s.docker(append([]string{"rm", "-f"}, strings.Fields(ids)...)...)
	}
	s.docker("network", "rm", s.project+"_default")
	if err := os.RemoveAll(s.dir); err != nil {
		t.Logf("removing %s: %v", s.dir, err)
	}
}

// release is one deployable release of the app on a site.
type release struct {
	name     string
	commit   string
	manifest string
	envFile  string
}

// release derives a release from the pushed app: the same pinned compose
// file and image digest, under the site's project, with its own commit and
// .env (APP_RELEASE=name, the site's port, and vars). A distinct commit per
// release is what deploy keys releases/<commit>, current and the lock on; the
// image need not differ for that.
func (s *site) release(t *testing.T, name string, vars ...string) *release {
	t.Helper()
	base := app(t, s.env)
	data, err := os.ReadFile(base)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("%s: %v", base, err)
	}
	sum := sha1.Sum([]byte(s.project + "/" + name))
	commit := hex.EncodeToString(sum[:])
	m["project"], m["commit"], m["shortCommit"] = s.project, commit, commit[:12]
	m["buildUrl"] = "https://ci.example/job/" + s.project + "/" + name + "/"
	out, _ := json.MarshalIndent(m, "", "  ")
	// Beside the base manifest: the pinned file's path is relative to it.
	path := filepath.Join(filepath.Dir(base), s.project+"-"+name+".json")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(path) })
	envFile := filepath.Join(t.TempDir(), name+".env")
	body := fmt.Sprintf("APP_RELEASE=%s\nAPP_PORT=%d\n", name, s.port)
	for _, v := range vars {
		body += v + "\n"
	}
	if err := os.WriteFile(envFile, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return &release{name: name, commit: commit, manifest: path, envFile: envFile}
}

// targetArgs are the flags naming the site on its target.
func (s *site) targetArgs() []string {
	return []string{"--host", s.tg.User + "@" + s.tg.Addr(), "--dir", s.dir,
		"--identity", s.tg.KeyFile, "--known-hosts", s.tg.KnownHosts}
}

// deployArgs: deploy r to the site, then more flags.
func (s *site) deployArgs(r *release, more ...string) []string {
	args := append([]string{"deploy"}, s.targetArgs()...)
	args = append(args, "--manifest", r.manifest, "--env-file", r.envFile)
	return append(args, more...)
}

// version is what the site serves at /version, fetched from the agent.
func (s *site) version() string {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + s.tg.Host + ":" + strconv.Itoa(s.port) + "/version")
	if err != nil {
		return "unreachable: " + err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return strings.TrimSpace(string(body))
}

// current is the commit <dir>/current points to ("" when there is none).
// Targets share the agent's file system.
func (s *site) current() string {
	l, err := os.Readlink(filepath.Join(s.dir, "current"))
	if err != nil {
		return ""
	}
	return filepath.Base(l)
}

func (s *site) lockPath() string { return filepath.Join(s.dir, ".slipway", "lock") }

func (s *site) wantNoLock(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(s.lockPath()); !errors.Is(err, os.ErrNotExist) {
		info, _ := os.ReadFile(filepath.Join(s.lockPath(), "info"))
		t.Errorf("the deploy lock %s is still there (%v): %s", s.lockPath(), err, info)
	}
}

// wantNoRemoteProcs waits up to limit for no process on the target to
// mention the site's directory: what slipway started there over SSH (compose,
// its shell scripts) ended with it. The targets share the agent's PID
// namespace, so /proc shows them.
func (s *site) wantNoRemoteProcs(t *testing.T, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		left := procsMatching(func(args []string) bool { return strings.Contains(strings.Join(args, " "), s.dir) })
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, p := range left {
				fmt.Fprintf(&b, "  pid %d uid %d: %q\n", p.pid, p.uid, p.args)
			}
			t.Errorf("%d process(es) on the target still work in %s %s after the command ended:\n%s", len(left), s.dir, limit, b.String())
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// statusJSON runs slipway status --json for the site.
func (s *site) statusJSON(t *testing.T) []struct {
	Current string
	Healthy bool
} {
	t.Helper()
	p := run(t, "", baseEnv(s.env), 2*time.Minute, append(append([]string{"status"}, s.targetArgs()...), "--json")...)
	wantCode(t, p, 0)
	var st []struct {
		Current string
		Healthy bool
	}
	if err := json.Unmarshal([]byte(p.outText()), &st); err != nil {
		t.Fatalf("slipway status --json: %v\n%s", err, p.outText())
	}
	return st
}

// releasesJSON runs slipway releases --json: the current release and the
// releases kept, newest first.
func (s *site) releasesJSON(t *testing.T) (current string, kept []string) {
	t.Helper()
	p := run(t, "", baseEnv(s.env), 2*time.Minute, append(append([]string{"releases"}, s.targetArgs()...), "--json")...)
	wantCode(t, p, 0)
	var rs []struct {
		Current  string
		Releases []struct {
			Commit  string
			Current bool
		}
	}
	if err := json.Unmarshal([]byte(p.outText()), &rs); err != nil || len(rs) != 1 {
		t.Fatalf("slipway releases --json: %v\n%s", err, p.outText())
	}
	for _, r := range rs[0].Releases {
		kept = append(kept, r.Commit)
		if r.Current && r.Commit != rs[0].Current {
			t.Errorf("slipway releases marks %s current, but current is %s", r.Commit, rs[0].Current)
		}
	}
	return rs[0].Current, kept
}

// osProc is one process seen in /proc.
type osProc struct {
	pid, ppid, uid int
	args           []string
}

// procsMatching lists the processes whose argv match.
func procsMatching(match func(args []string) bool) []osProc {
	ents, _ := os.ReadDir("/proc")
	var out []osProc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || len(data) == 0 {
			continue
		}
		args := strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")
		if !match(args) {
			continue
		}
		p := osProc{pid: pid, args: args}
		if st, err := os.ReadFile("/proc/" + e.Name() + "/status"); err == nil {
			for _, l := range strings.Split(string(st), "\n") {
				if v, ok := strings.CutPrefix(l, "PPid:"); ok {
					p.ppid, _ = strconv.Atoi(strings.TrimSpace(v))
				}
				if v, ok := strings.CutPrefix(l, "Uid:"); ok {
					if f := strings.Fields(v); len(f) > 0 {
						p.uid, _ = strconv.Atoi(f[0])
					}
				}
			}
		}
		out = append(out, p)
	}
	return out
}

// childrenOf lists the live processes whose parent is pid.
func childrenOf(pid int) []osProc {
	var out []osProc
	for _, p := range procsMatching(func([]string) bool { return true }) {
		if p.ppid == pid {
			out = append(out, p)
		}
	}
	return out
}

// registryManifest asks the registry for repo:tag's manifest: its digest, or
// "" when the registry has none (404).
func registryManifest(t *testing.T, env *testenv.Env, repo, tag string) string {
	t.Helper()
	c, err := env.RegistryHTTPClient()
	if err != nil {
		t.Fatal(err)
	}
	path := strings.TrimPrefix(repo, env.Registry+"/")
	req, _ := http.NewRequest(http.MethodHead, "https://"+env.Registry+"/v2/"+path+"/manifests/"+tag, nil)
	req.SetBasicAuth(env.RegistryUser, env.RegistryPassword)
	req.Header.Set("Accept", strings.Join([]string{
		"application/vnd.docker.distribution.manifest.v2+json",
		"application/vnd.docker.distribution.manifest.list.v2+json",
		"application/vnd.oci.image.manifest.v1+json",
		"application/vnd.oci.image.index.v1+json"}, ", "))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("asking the registry for %s:%s: %v", repo, tag, err)
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return resp.Header.Get("Docker-Content-Digest")
	case http.StatusNotFound:
		return ""
	default:
		t.Fatalf("registry: HEAD manifest %s:%s answered %s", repo, tag, resp.Status)
		return ""
	}
}

// runningContainersWith counts the agent engine's running containers whose
// command mentions s.
func runningContainersWith(t *testing.T, s string) int {
	t.Helper()
	c, base, err := testenv.EngineClient(os.Getenv("DOCKER_HOST"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Get(base + "/containers/json")
	if err != nil {
		t.Fatalf("listing the agent's containers: %v", err)
	}
	defer resp.Body.Close()
	var list []struct{ Command string }
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatalf("listing the agent's containers: %v", err)
	}
	n := 0
	for _, ct := range list {
		if strings.Contains(ct.Command, s) {
			n++
		}
	}
	return n
}
