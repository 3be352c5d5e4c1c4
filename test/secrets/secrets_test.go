package secrets

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/test/internal/svcstate"
)

// run is one command of the pipeline, with its captured output.
type run struct {
	name           string
	stdout, stderr bytes.Buffer
	err            error
	// wantFail is the message a command run to fail must print (a wrong
	// secret: error paths are where input tends to be echoed); "" for a
	// command that must succeed.
	wantFail string
}

// TestSecretsPipelineLeaksNothing runs build -> test -> push -> deploy of the
// sample app with the real binary, the agent's engine, the htpasswd registry
// and the sshd of target t1, with four hostile secrets: the registry password
// of a user made for the run, the passphrase of the deploy key, an app secret
// in the --env-file and a build arg. None may appear in a command's output, in
// the argv of any process on the machine while the pipeline runs, in a file
// left on the agent (workspace, HOME, TMPDIR, /tmp, DOCKER_CONFIG, the
// daemons' logs and metadata) or on the server (deploy dir, the deploy user's
// home, /tmp, the engine's metadata), except the release's .env, the app's
// runtime secret file by design (mode 0600).
//
// After the deploy, a dry run and status run with the same secrets, then two
// runs with a wrong (equally hostile) secret must fail
// with their usual message and leak neither secret: a push with a wrong
// registry password and a deploy with a wrong key passphrase.
func TestSecretsPipelineLeaksNothing(t *testing.T) {
	r := setupLeakRun(t, "b")
	wrongPW := newSecret("wrong registry password", "wrg")
	wrongPass := newSecret("wrong SSH key passphrase", "xsh")
	r.ns = append(r.ns, wrongPW.needles(map[string]string{"user:password": r.regUser + ":" + wrongPW.value})...)
	r.ns = append(r.ns, wrongPass.needles(nil)...)
	deploy := []string{"deploy", "--host", r.tg.User + "@" + r.tg.Addr(), "--dir", r.deployDir, "--identity", r.keyFile,
		"--known-hosts", r.tg.KnownHosts, "--env-file", r.envFile, "--health-timeout", "4m",
		"--smoke-url", fmt.Sprintf("http://127.0.0.1:%d/healthz", r.port)}
	steps := []struct {
		args     []string
		env      map[string]string
		wantFail string
	}{
		{args: []string{"build", "-p", r.project, "--registry", r.prefix, "--pull"}},
		{args: []string{"test", "--timeout", "10m"}},
		{args: []string{"push"}},
		{args: deploy},
		// The plan a dry run prints, and status, which opens the key too.
		{args: append(append([]string{}, deploy...), "--dry-run")},
		{args: []string{"status", "--host", r.tg.User + "@" + r.tg.Addr(), "--dir", r.deployDir, "--identity", r.keyFile,
			"--known-hosts", r.tg.KnownHosts}},
		{args: []string{"push"}, env: map[string]string{"SLIPWAY_REGISTRY_PASSWORD": wrongPW.value}, wantFail: "refused the credentials"},
		{args: deploy, env: map[string]string{"SLIPWAY_SSH_PASSPHRASE": wrongPass.value}, wantFail: "SLIPWAY_SSH_PASSPHRASE"},
	}
	r.check(t, func(ctx context.Context) []*run {
		var runs []*run
		for _, st := range steps {
			x := &run{name: "slipway " + st.args[0], wantFail: st.wantFail}
			if st.args[len(st.args)-1] == "--dry-run" {
				x.name += " --dry-run"
			}
			if st.wantFail != "" {
				x.name += " with a " + strings.Join(keys(st.env), ", ") + " that is wrong"
			}
			cmd := exec.CommandContext(ctx, r.bin, st.args...)
			cmd.Dir, cmd.Env = r.ws, r.env()
			for k, v := range st.env {
				cmd.Env = append(cmd.Env, k+"="+v) // the last one wins
			}
			cmd.Stdout, cmd.Stderr = &x.stdout, &x.stderr
			t0 := time.Now()
			x.err = cmd.Run()
			runs = append(runs, x)
			t.Logf("%s: %s in %s", x.name, errOrOK(x.err), time.Since(t0).Round(100*time.Millisecond))
			if x.err != nil && x.wantFail == "" {
				break // still scan: a failing run must not leak either
			}
		}
		return runs
	})
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// jenkinsfile is the pipeline the Jenkins variant runs: Jenkinsfile.example's
// steps, with every secret a Jenkins credential (the build arg a secret-text
// credential bound around buildImages).
const jenkinsfile = `@Library('slipway@v0.1.0') _

pipeline {
    agent any
    parameters {
        string(name: 'REGISTRY', defaultValue: '')
        string(name: 'PROJECT', defaultValue: '')
        string(name: 'HOST', defaultValue: '')
        string(name: 'DIR', defaultValue: '')
        string(name: 'SMOKE', defaultValue: '')
    }
    stages {
        stage('Build') {
            steps {
                withCredentials([string(credentialsId: 'build-token', variable: 'SLW_BUILD_TOKEN')]) {
                    buildImages(registry: params.REGISTRY, projectName: params.PROJECT, pull: true, registryCredentialsId: 'registry')
                }
            }
        }
        stage('Test') {
            steps {
                runTests(timeout: '10m')
            }
        }
        stage('Push') {
            steps {
                pushImages(registryCredentialsId: 'registry')
            }
        }
        stage('Deploy') {
            steps {
                deployCompose(hosts: [params.HOST], dir: params.DIR, sshCredentialsId: 'deploy-ssh',
                              knownHostsCredentialsId: 'deploy-known-hosts', registryCredentialsId: 'registry',
                              envFileCredentialsId: 'app-env', smokeUrl: params.SMOKE, healthTimeout: '4m')
            }
        }
    }
    post {
        always {
            archiveArtifacts artifacts: 'slipway-release.json, slipway-compose.pinned.yml', allowEmptyArchive: true
        }
    }
}
`

// TestSecretsJenkinsPipelineLeaksNothing is the same run through the
// project's Jenkins harness (test/groovy/pipeline.sh: the library's steps,
// real sh, credentials bound by withCredentials into files under
// <workspace>@tmp and environment variables), with the real binary
// (SLIPWAY_BIN): what a Jenkins user runs. The pipeline log joins the
// searched logs, the workspace's @tmp and the archive the searched files.
func TestSecretsJenkinsPipelineLeaksNothing(t *testing.T) {
	if _, err := exec.LookPath("java"); err != nil {
		if _, err := os.Stat("/usr/lib/jvm/default-java/bin/java"); err != nil {
			unavailable(t, "no java: the Jenkins harness needs it (services.sh up installs groovy, which brings a JRE)")
		}
	}
	r := setupLeakRun(t, "j")
	jf := filepath.Join(r.dirs["bin"], "Jenkinsfile")
	creds := filepath.Join(r.dirs["creds"], "credentials.json")
	archive := filepath.Join(filepath.Dir(r.ws), "archive")
	if err := os.WriteFile(jf, []byte(jenkinsfile), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(creds, []byte(mustJSON(map[string]any{
		"registry":           map[string]string{"type": "usernamePassword", "username": r.regUser, "password": r.regPW.value},
		"deploy-ssh":         map[string]string{"type": "sshUserPrivateKey", "username": r.tg.User, "privateKeyFile": r.keyFile, "passphrase": r.pass.value},
		"deploy-known-hosts": map[string]string{"type": "file", "path": r.tg.KnownHosts},
		"app-env":            map[string]string{"type": "file", "path": r.envFile},
		"build-token":        map[string]string{"type": "string", "secret": r.arg.value},
	})), 0o600); err != nil {
		t.Fatal(err)
	}
	r.check(t, func(ctx context.Context) []*run {
		x := &run{name: "Jenkins pipeline log (test/groovy/pipeline.sh)"}
		cmd := exec.CommandContext(ctx, filepath.Join(r.root, "test/groovy/pipeline.sh"),
			"--workspace", r.ws, "--credentials", creds, "--archive", archive,
			"--param", "REGISTRY="+r.prefix, "--param", "PROJECT="+r.project,
			"--param", "HOST="+r.tg.Host, "--param", "DIR="+r.deployDir,
			"--param", fmt.Sprintf("SMOKE=http://127.0.0.1:%d/healthz", r.port),
			"--env", "SLIPWAY_BIN="+r.bin, "--env", "SLIPWAY_FIXTURE_REGISTRY="+r.svc.FixtureRegistry,
			jf)
		// The agent's environment holds no secret: Jenkins binds them per step.
		for _, e := range r.env() {
			if !strings.HasPrefix(e, "SLIPWAY_REGISTRY_") && !strings.HasPrefix(e, "SLIPWAY_SSH_") && !strings.HasPrefix(e, "SLW_") {
				cmd.Env = append(cmd.Env, e)
			}
		}
		cmd.Stdout, cmd.Stderr = &x.stdout, &x.stderr
		t0 := time.Now()
		x.err = cmd.Run()
		t.Logf("%s: %s in %s", x.name, errOrOK(x.err), time.Since(t0).Round(100*time.Millisecond))
		if testing.Verbose() {
			t.Logf("pipeline log (any secret redacted), last lines:\n%s", tail(redact(x.stdout.String()+x.stderr.String(), r.ns)))
		}
		return []*run{x}
	}, r.ws+"@tmp", archive)
	if _, err := os.Stat(filepath.Join(archive, "slipway-release.json")); err != nil {
		t.Errorf("the pipeline archived no slipway-release.json: %v", err)
	}
}

// leakRun is one pipeline run's secrets, names and directories.
type leakRun struct {
	svc       *services
	tg        target
	ctx       context.Context
	root      string
	project   string // compose project, unique per run
	prefix    string // registry repository prefix
	regUser   string
	port      int // the app's published port on the target
	deployDir string

	regPW, pass, app, arg, canary secret
	ns                            []needle

	// dirs: bin, creds (the credential files this test creates: the only
	// agent files allowed to hold a secret), home, tmp, docker-config, ws.
	dirs    map[string]string
	bin     string // slipway, built from the working tree
	ws      string // the sample app's git repository: the job's workspace
	keyFile string // the deploy key, encrypted with pass
	envFile string // the app's runtime .env, holding app
}

// setupLeakRun makes the run's registry user, encrypted key, env file and
// workspace (outside the sampled window: the setup is the test's own) and
// registers the cleanup. tag tells runs of different tests apart.
func setupLeakRun(t *testing.T, tag string) *leakRun {
	svc := requireServices(t)
	r := &leakRun{svc: svc, tg: svc.Targets[0], root: repoRoot(t)}
	for _, x := range svc.Targets {
		if x.Name == "t1" {
			r.tg = x
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	t.Cleanup(cancel)
	r.ctx = ctx
	id := tag + svcstate.RandHex(4)
	r.project = "slwsec" + id
	r.prefix = r.svc.Registry + "/slwsec-" + id
	r.regUser = "slwsec-" + id
	r.port = 28000 + svcstate.RandInt(1000)
	r.deployDir = r.tg.Dir + "/slwsec-" + id

	r.regPW = newSecret("registry password", "reg")
	r.pass = newSecret("SSH key passphrase", "ssh")
	r.app = newSecret("app secret (--env-file)", "app")
	r.arg = newSecret("build arg", "bld")
	r.canary = newSecret("canary", "can")
	r.ns = append(r.ns, r.regPW.needles(map[string]string{"user:password": r.regUser + ":" + r.regPW.value})...)
	r.ns = append(r.ns, r.pass.needles(nil)...)
	r.ns = append(r.ns, r.app.needles(nil)...)
	r.ns = append(r.ns, r.arg.needles(nil)...)
	r.ns = append(r.ns, r.canary.needles(map[string]string{"user:password": "u:" + r.canary.value})...)

	base := t.TempDir()
	r.dirs = map[string]string{}
	for _, d := range []string{"bin", "creds", "home", "tmp", "docker-config", "ws"} {
		r.dirs[d] = filepath.Join(base, d)
		if err := os.MkdirAll(r.dirs[d], 0o700); err != nil {
			t.Fatal(err)
		}
	}
	r.bin = filepath.Join(r.dirs["bin"], "slipway")
	build := exec.CommandContext(ctx, "go", "build", "-o", r.bin, "./tools/cmd/slipway")
	build.Dir = r.root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./tools/cmd/slipway: %v\n%s", err, out)
	}
	r.ws = filepath.Join(r.dirs["ws"], "sampleapp")
	if out, err := exec.CommandContext(ctx, filepath.Join(r.root, "test/scripts/sampleapp-repo.sh"), r.ws).CombinedOutput(); err != nil {
		t.Fatalf("sampleapp-repo.sh: %v\n%s", err, out)
	}
	// The web service gets a build arg from the environment and an app secret
	// from the server's .env: both travel the way a real project's would.
	editFile(t, filepath.Join(r.ws, "docker-compose.yml"),
		"        BASE_IMAGE: ${SLIPWAY_FIXTURE_REGISTRY:?set SLIPWAY_FIXTURE_REGISTRY}/python:bookworm\n",
		"        BASE_IMAGE: ${SLIPWAY_FIXTURE_REGISTRY:?set SLIPWAY_FIXTURE_REGISTRY}/python:bookworm\n        SLW_BUILD_TOKEN: ${SLW_BUILD_TOKEN:-}\n")
	// Positive control for the build arg: the FROM needs it (an empty FROM
	// fails the build), so a finished pipeline proves it reached the build.
	editFile(t, filepath.Join(r.ws, "web", "Dockerfile"),
		"ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n",
		"ARG BASE_IMAGE\nARG SLW_BUILD_TOKEN\nFROM ${SLW_BUILD_TOKEN:+${BASE_IMAGE}}\n")
	editFile(t, filepath.Join(r.ws, "docker-compose.yml"),
		"      APP_MESSAGE: ${APP_MESSAGE:-hello from sampleapp}\n",
		"      APP_MESSAGE: ${APP_MESSAGE:-hello from sampleapp}\n      SLW_APP_SECRET: ${SLW_APP_SECRET:-unset}\n")
	git := exec.CommandContext(ctx, "git", "-c", "commit.gpgsign=false", "commit", "-qam", "web: a build arg and an app secret")
	git.Dir = r.ws
	if out, err := git.CombinedOutput(); err != nil {
		t.Fatalf("git commit: %v\n%s", err, out)
	}

	r.keyFile = filepath.Join(r.dirs["creds"], "deploy_key")
	encryptedKey(t, r.tg, r.keyFile, r.pass.value)
	r.envFile = filepath.Join(r.dirs["creds"], "app.env")
	// A double-quoted dotenv value: \\, \" and \n are the escapes compose reads.
	q := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(r.app.value)
	if err := os.WriteFile(r.envFile, []byte(fmt.Sprintf("WEB_PORT=%d\nSLW_APP_SECRET=\"%s\"\n", r.port, q)), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Cleanup(func() {
		cleanup(t, r.svc, r.tg, r.project, r.prefix, r.deployDir, filepath.Join(r.ws, "slipway-release.json"))
	})
	addRegistryUser(t, r.svc, r.regUser, r.regPW.value)
	return r
}

// env is the pipeline's environment, the one channel for secrets. HOME,
// TMPDIR and DOCKER_CONFIG are fresh, so whatever the run writes there is
// seen, and there are no other registry credentials (the push and the
// server's pull can only use this run's user) and no ssh-agent (the key
// opens only with its passphrase).
func (r *leakRun) env() []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + r.dirs["home"],
		"USER=" + os.Getenv("USER"),
		"TMPDIR=" + r.dirs["tmp"],
		"DOCKER_CONFIG=" + r.dirs["docker-config"],
		"NO_COLOR=1",
		"SLIPWAY_FIXTURE_REGISTRY=" + r.svc.FixtureRegistry,
		"SLIPWAY_REGISTRY_USER=" + r.regUser,
		"SLIPWAY_REGISTRY_PASSWORD=" + r.regPW.value,
		"SLIPWAY_SSH_PASSPHRASE=" + r.pass.value,
		"SLW_BUILD_TOKEN=" + r.arg.value,
	}
}

// check runs pipeline while sampling every process's argv, then searches
// the logs, the argv samples and the files on both sides for the secrets,
// and asserts the run was real (deployed, serving, the secrets delivered).
func (r *leakRun) check(t *testing.T, pipeline func(ctx context.Context) []*run, extraRoots ...string) {
	ctx, tg, ns := r.ctx, r.tg, r.ns
	// The daemons' logs: only what the run appends is searched.
	logs := []string{
		filepath.Join(r.svc.StateDir, "registry", "registry.log"),
		filepath.Join(r.svc.StateDir, "agent", "dockerd.log"),
		filepath.Join(r.svc.StateDir, "targets", tg.Name, "sshd.log"),
		filepath.Join(r.svc.StateDir, "targets", tg.Name, "dockerd.log"),
	}
	offsets := map[string]int64{}
	for _, l := range logs {
		if st, err := os.Stat(l); err == nil {
			offsets[l] = st.Size()
		}
	}

	start := time.Now()
	sampler := startArgvSampler(ns, 25*time.Millisecond)
	// The sampler's own proof: a process holding the canary in its argv.
	if err := exec.CommandContext(ctx, "sh", "-c", "sleep 0.5", "canary", r.canary.value).Run(); err != nil {
		t.Fatalf("canary process: %v", err)
	}
	runs := pipeline(ctx)
	argvHits, samples, procs := sampler.Stop()
	t.Logf("argv: %d samples of every process over %s, %d distinct processes", samples, time.Since(start).Round(time.Second), procs)
	deployed := false
	for _, x := range runs {
		out := x.stdout.String() + x.stderr.String()
		failedAsWanted := x.wantFail != "" && x.err != nil && strings.Contains(out, x.wantFail)
		switch {
		case x.wantFail == "" && x.err != nil:
			t.Errorf("%s failed: %v\nstdout:\n%s\nstderr:\n%s", x.name, x.err, tail(redact(x.stdout.String(), ns)), tail(redact(x.stderr.String(), ns)))
		case x.wantFail != "" && !failedAsWanted:
			t.Errorf("%s: %s, want a failure saying %q; output:\n%s", x.name, errOrOK(x.err), x.wantFail, tail(redact(out, ns)))
		case x.wantFail == "" && (strings.HasPrefix(x.name, "slipway deploy") || strings.HasPrefix(x.name, "Jenkins")):
			deployed = true
		}
	}

	// (a) logs: every command's stdout and stderr, and what the daemons logged.
	var leaks []hit
	for _, x := range runs {
		leaks = append(leaks, scanBytes(x.name+" stdout", x.stdout.Bytes(), ns)...)
		leaks = append(leaks, scanBytes(x.name+" stderr", x.stderr.Bytes(), ns)...)
	}
	registryLog := []byte{}
	for _, l := range logs {
		if data, err := readFrom(l, offsets[l]); err == nil {
			leaks = append(leaks, scanBytes(l+" (appended during the run)", data, ns)...)
			if strings.HasSuffix(l, "registry.log") {
				registryLog = data
			}
		}
	}

	// (b) argv.
	canaryArgv, argvLeaks := only(argvHits, r.canary.name)
	if len(canaryArgv) == 0 {
		t.Errorf("the argv sampler missed the canary process (%d samples): its silence proves nothing", samples)
	}
	leaks = append(leaks, argvLeaks...)

	// (c) and (d) files. Planted canaries prove each scanned area is read.
	planted := []string{
		plant(t, filepath.Join(r.ws, ".slwsec-canary"), r.canary.value),
		plant(t, filepath.Join(r.dirs["tmp"], "canary.json"), mustJSON(map[string]string{"password": r.canary.value})),
	}
	if deployed {
		planted = append(planted, plant(t, filepath.Join(r.deployDir, ".slwsec-canary.json"),
			mustJSON(map[string]any{"auths": map[string]any{"x": map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte("u:" + r.canary.value))}}})))
	}
	home, _ := os.UserHomeDir()
	isEnvFile := func(p string) bool {
		rel, err := filepath.Rel(filepath.Join(r.deployDir, "releases"), p)
		return err == nil && !strings.HasPrefix(rel, "..") && filepath.Base(rel) == ".env" && strings.Count(rel, "/") == 1
	}
	// The engines' data roots are searched below, each with its own needles
	// (the target's containers hold the app secret by design); a checkout
	// under /tmp puts the test targets' roots inside the /tmp walk too.
	type engineRoot struct {
		dir string
		ns  []needle
	}
	var engines []engineRoot
	for _, e := range []struct {
		host string
		ns   []needle
	}{{"", ns}, {tg.DockerHost, withoutSecret(ns, r.app.name)}} {
		if dr, err := docker(ctx, e.host, "info", "--format", "{{.DockerRootDir}}"); err == nil && dr != "" {
			engines = append(engines, engineRoot{dr, e.ns})
		}
	}
	skipCreds := func(p string) bool {
		for _, e := range engines {
			if p == e.dir {
				return true
			}
		}
		return p == r.dirs["creds"] || isEnvFile(p)
	}
	// The engines' metadata (image configs, container configs): ctime-bound,
	// since they are shared. On the target the app secret is in the web
	// container's config by design (compose environment:), so it is left out
	// of that one search.
	since := scanOpts{changedSince: start.Add(-time.Second)}
	type area struct {
		root string
		ns   []needle
		o    scanOpts
	}
	areas := []area{
		{r.ws, ns, scanOpts{}},
		{r.dirs["home"], ns, scanOpts{}},
		{r.dirs["tmp"], ns, scanOpts{}},
		{r.dirs["docker-config"], ns, scanOpts{}},
		{os.TempDir(), ns, scanOpts{skip: skipCreds}},
		{"/tmp", ns, scanOpts{skip: skipCreds}},
		{"/var/tmp", ns, scanOpts{}},
		{"/dev/shm", ns, scanOpts{}},
		{r.deployDir, ns, scanOpts{skip: skipCreds}},
		{homeOf(t, tg.User), ns, scanOpts{}},
	}
	for _, d := range extraRoots {
		areas = append(areas, area{d, ns, scanOpts{skip: skipCreds}})
	}
	// The real HOME of the user running the test: where docker, git and ssh
	// keep credentials and state, read only for what changed during the run.
	for _, d := range []string{".docker", ".ssh", ".config", ".local", ".cache", ".gitconfig", ".git-credentials", ".netrc"} {
		areas = append(areas, area{filepath.Join(home, d), ns, since})
	}
	for _, e := range engines {
		for _, sub := range []string{"image", "containers"} {
			areas = append(areas, area{filepath.Join(e.dir, sub), e.ns, since})
		}
	}
	scanned := map[string]bool{}
	var fileHits []hit
	for _, a := range areas {
		if a.root == "" || scanned[a.root] {
			continue
		}
		scanned[a.root] = true
		hs, files := scanTree(a.root, a.ns, a.o)
		fileHits = append(fileHits, hs...)
		n := len(files)
		if n > 0 && n <= 12 {
			t.Logf("scanned %d files under %s: %s", n, a.root, strings.Join(files, " "))
		} else {
			t.Logf("scanned %d files under %s", n, a.root)
		}
		if n == 0 && (a.root == r.ws || a.root == r.deployDir && deployed) {
			t.Errorf("no file read under %s: the scan proves nothing", a.root)
		}
	}
	fileHits = dedup(fileHits)
	canaryFiles, fileLeaks := only(fileHits, r.canary.name)
	for _, p := range planted {
		found := false
		for _, h := range canaryFiles {
			found = found || h.where == p
		}
		if !found {
			t.Errorf("the file scan missed the planted canary %s", p)
		}
		os.Remove(p)
	}
	leaks = append(leaks, fileLeaks...)

	for _, h := range dedup(leaks) {
		t.Errorf("LEAK %s", h)
	}

	// Positive controls: the pipeline really ran with these secrets.
	if !deployed {
		t.Fatal("the pipeline did not finish; the leak checks above covered only the part that ran")
	}
	// The build arg reached the build: web's FROM is empty without it (see
	// setup), so the deploy above could not have happened otherwise.
	// The push authenticated as this run's user: its password worked.
	if !bytes.Contains(registryLog, []byte("auth.user.name="+r.regUser)) {
		t.Errorf("the registry log of the run never names user %s: were the hostile credentials used?", r.regUser)
	}
	resp, err := http.Get(fmt.Sprintf("http://%s:%d/healthz", tg.Host, r.port))
	if err != nil {
		t.Errorf("the deployed app does not answer: %v", err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET /healthz of the deployed app: %s", resp.Status)
		}
	}
	envs, _ := filepath.Glob(filepath.Join(r.deployDir, "releases", "*", ".env"))
	if len(envs) != 1 {
		t.Errorf("releases/*/.env on the server: %v, want one", envs)
	}
	for _, p := range envs {
		st, err := os.Stat(p)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v (%v), want 0600", p, st.Mode().Perm(), err)
		}
		if data, _ := os.ReadFile(p); !bytes.Contains(data, []byte(r.app.marker)) {
			t.Errorf("%s does not hold the app secret: the scan's exception covered nothing", p)
		}
	}
	// The app secret reached the container exactly, hostile characters and all.
	webID, err := docker(ctx, tg.DockerHost, "ps", "-q", "--filter", "label=com.docker.compose.project="+r.project, "--filter", "label=com.docker.compose.service=web")
	if err != nil || webID == "" {
		t.Errorf("no web container of %s on %s: %v %s", r.project, tg.Name, err, webID)
	} else if out, err := docker(ctx, tg.DockerHost, "inspect", "--format", "{{json .Config.Env}}", strings.Fields(webID)[0]); err != nil {
		t.Errorf("docker inspect web: %v", err)
	} else {
		var env []string
		_ = json.Unmarshal([]byte(out), &env)
		got := ""
		for _, e := range env {
			if v, ok := strings.CutPrefix(e, "SLW_APP_SECRET="); ok {
				got = v
			}
		}
		if got != r.app.value {
			t.Errorf("the web container's SLW_APP_SECRET is not the --env-file value (%d bytes, marker present: %v; want %d bytes)",
				len(got), strings.Contains(got, r.app.marker), len(r.app.value))
		}
	}
}

func withoutSecret(ns []needle, name string) []needle {
	var out []needle
	for _, n := range ns {
		if n.secret != name {
			out = append(out, n)
		}
	}
	return out
}

// cleanup removes the run's app, volume, network, images and directory from
// the target, its images from the agent and its manifests from the registry.
func cleanup(t *testing.T, svc *services, tg target, project, prefix, deployDir, manifestPath string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if ids, _ := docker(ctx, tg.DockerHost, "ps", "-aq", "--filter", "label=com.docker.compose.project="+project); ids != "" {
		docker(ctx, tg.DockerHost, append([]string{"rm", "-f"}, strings.Fields(ids)...)...)
	}
	docker(ctx, tg.DockerHost, "volume", "rm", "-f", project+"_dbdata")
	docker(ctx, tg.DockerHost, "network", "rm", project+"_default")
	for _, host := range []string{tg.DockerHost, ""} {
		if imgs, _ := docker(ctx, host, "images", "--format", "{{.Repository}}:{{.Tag}}", "--filter", "reference="+prefix+"/*"); imgs != "" {
			docker(ctx, host, append([]string{"rmi", "-f"}, strings.Fields(imgs)...)...)
		}
		if imgs, _ := docker(ctx, host, "images", "-q", "--filter", "reference="+prefix+"/*"); imgs != "" {
			docker(ctx, host, append([]string{"rmi", "-f"}, strings.Fields(imgs)...)...)
		}
	}
	if err := os.RemoveAll(deployDir); err != nil {
		t.Logf("removing %s: %v", deployDir, err)
	}
	// The pushed manifests, so the shared registry does not grow with each run.
	var m struct {
		Services map[string]struct{ Image, Digest string }
	}
	data, err := os.ReadFile(manifestPath)
	if err != nil || json.Unmarshal(data, &m) != nil {
		return
	}
	c, err := svc.RegistryClient()
	if err != nil {
		return
	}
	for _, s := range m.Services {
		repo, ok := strings.CutPrefix(s.Image, svc.Registry+"/")
		if !ok || s.Digest == "" {
			continue
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodDelete, "https://"+svc.Registry+"/v2/"+repo+"/manifests/"+s.Digest, nil)
		req.SetBasicAuth(svc.RegistryUser, svc.RegistryPassword)
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
		}
	}
}

func editFile(t *testing.T, path, old, new string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(data), old) != 1 {
		t.Fatalf("%s: %q is not there exactly once (the sample app changed?)", path, old)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(data), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

func plant(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatalf("planting a canary: %v", err)
	}
	return path
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// homeOf is user's home directory from /etc/passwd (the targets' deploy user
// is a local user of this machine).
func homeOf(t *testing.T, user string) string {
	t.Helper()
	data, err := os.ReadFile("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Split(l, ":")
		if len(f) > 5 && f[0] == user {
			return f[5]
		}
	}
	t.Fatalf("no user %s in /etc/passwd", user)
	return ""
}

func readFrom(path string, off int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return nil, err
	}
	return io.ReadAll(io.LimitReader(f, maxScanSize))
}

func errOrOK(err error) string {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &ee):
		return fmt.Sprintf("exit %d", ee.ExitCode())
	default:
		return err.Error()
	}
}

func tail(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > 40 {
		lines = append([]string{"..."}, lines[len(lines)-40:]...)
	}
	return strings.Join(lines, "\n")
}
