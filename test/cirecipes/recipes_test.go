package cirecipes

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/test/internal/svcstate"
)

// pin is resources/slipway/release.json's linux-amd64 entry.
type pin struct {
	Version, URL, Archive, SHA256 string
}

func readPin(t *testing.T, root string) pin {
	var rel struct {
		Version   string
		URL       string
		Platforms map[string]struct{ Archive, Sha256 string }
	}
	data, err := os.ReadFile(filepath.Join(root, "resources/slipway/release.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &rel); err != nil {
		t.Fatalf("resources/slipway/release.json: %v", err)
	}
	p := rel.Platforms["linux-amd64"]
	if p.Sha256 == "" {
		t.Fatal("resources/slipway/release.json pins no linux-amd64 archive")
	}
	return pin{rel.Version, rel.URL, p.Archive, p.Sha256}
}

type recipe struct {
	name, file, short string
	run               func(*ciRun) error
}

var recipes = []recipe{
	{"GitHubActions", "github-actions.yml", "gh", (*ciRun).github},
	{"GitLabCI", ".gitlab-ci.yml", "gl", (*ciRun).gitlab},
	{"TravisCI", ".travis.yml", "tr", (*ciRun).travis},
	{"PlainShell", "pipeline.sh", "sh", (*ciRun).plain},
}

// TestRecipesPinAndGuards checks what the runs cannot: every recipe pins the
// release.json binary (version, URL template, linux-amd64 archive sha256),
// the deploys are serialized where the CI can (GitHub concurrency:, GitLab
// resource_group:), GitLab shows the JUnit report, and no GitHub run: script
// holds a ${{ secrets.* }} (it would be written into the step's script file).
func TestRecipesPinAndGuards(t *testing.T) {
	root := svcstate.RepoRoot(t)
	p := readPin(t, root)
	for _, rc := range recipes {
		data, err := os.ReadFile(filepath.Join(root, "docs/ci", rc.file))
		if err != nil {
			t.Fatal(err)
		}
		for what, v := range map[string]string{"version": p.Version, "URL template": p.URL, "linux-amd64 sha256": p.SHA256} {
			if !bytes.Contains(data, []byte(v)) {
				t.Errorf("docs/ci/%s does not pin release.json's %s %s: update it with the release", rc.file, what, v)
			}
		}
	}
	doc, _ := load(t, filepath.Join(root, "docs/ci/github-actions.yml"))
	jobs := asMap(doc["jobs"])
	deploy := asMap(jobs["deploy"])
	conc := asMap(deploy["concurrency"])
	if str(conc["group"]) == "" || conc["cancel-in-progress"] != false {
		t.Errorf("github-actions.yml: the deploy job needs concurrency: {group: ..., cancel-in-progress: false}, has %v", deploy["concurrency"])
	}
	for name, j := range jobs {
		for i, s := range asMap(j)["steps"].([]any) {
			if strings.Contains(str(asMap(s)["run"]), "secrets.") {
				t.Errorf("github-actions.yml: jobs.%s step %d: run: names a secret; pass it through env:", name, i+1)
			}
		}
	}
	gl, _ := load(t, filepath.Join(root, "docs/ci/.gitlab-ci.yml"))
	if str(asMap(gl["deploy"])["resource_group"]) == "" {
		t.Error(".gitlab-ci.yml: the deploy job has no resource_group")
	}
	if str(asMap(asMap(asMap(gl["pipeline"])["artifacts"])["reports"])["junit"]) == "" {
		t.Error(".gitlab-ci.yml: the pipeline job reports no JUnit")
	}
	if out, err := exec.Command("sh", "-n", filepath.Join(root, "docs/ci/pipeline.sh")).CombinedOutput(); err != nil {
		t.Errorf("pipeline.sh: sh -n: %v: %s", err, out)
	}
}

// world is what every recipe's runs share.
type world struct {
	svc           *svcstate.Services
	tg            svcstate.Target
	root, id      string
	pin           pin
	goodURL       string // mirror URL template serving the real archive
	badURL        string // serving a tampered archive
	goodSHA       string
	marker        string // the tampered binary creates it when run
	regUser       string
	regPW         string
	key           string
	knownHosts    string
	hostKey       string
	appSecret     string
	ns            []needle
	portBase      int
	outputs       map[string][]byte // recipe/scenario -> CI log
	scanRoots     []string
	mu            chan struct{}
	ctx           context.Context
	cleanupPrefix string
	base          string // the runs' directories: kept until the scan at the end
}

// TestRecipes runs every recipe in four scenarios, each in a fresh checkout
// of the sample app: a tampered download (refused before anything runs), a
// failing test on the default branch (stops before push), a pull request or
// other branch (builds and tests; pushes and deploys nothing), and a push to
// the default branch (pushes, deploys; the app serves). The secrets (registry
// password of a user made for the run, deploy key, app env) are searched in
// every CI log, in every process's argv sampled during the runs, and in the
// files the runs leave (workspaces, homes, temps, artifacts).
func TestRecipes(t *testing.T) {
	svc := svcstate.Require(t)
	w := &world{svc: svc, tg: svc.Target("t1"), root: svcstate.RepoRoot(t), id: svcstate.RandHex(3), outputs: map[string][]byte{}, mu: make(chan struct{}, 1)}
	w.pin = readPin(t, w.root)
	ctx, cancel := context.WithTimeout(context.Background(), 35*time.Minute)
	defer cancel()
	w.ctx = ctx
	w.cleanupPrefix = svc.Registry + "/slwci-" + w.id

	base := t.TempDir()
	w.base = filepath.Join(base, "runs")
	bin := filepath.Join(base, "slipway")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./tools/cmd/slipway")
	build.Dir = w.root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./tools/cmd/slipway: %v\n%s", err, out)
	}
	binData, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	good := tarGz(t, binData)
	sum := sha256.Sum256(good)
	w.goodSHA = hex.EncodeToString(sum[:])
	w.marker = filepath.Join(base, "tampered-binary-ran")
	bad := tarGz(t, []byte("#!/bin/sh\ntouch '"+w.marker+"'\necho 'slipway (tampered)'\n"))
	archive := "slipway_" + w.pin.Version + "_linux_amd64.tar.gz"
	if archive != w.pin.Archive {
		t.Fatalf("release.json names the linux-amd64 archive %s; the recipes build the name %s", w.pin.Archive, archive)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/good/v"+w.pin.Version+"/"+archive, func(rw http.ResponseWriter, _ *http.Request) { rw.Write(good) })
	mux.HandleFunc("/tampered/v"+w.pin.Version+"/"+archive, func(rw http.ResponseWriter, _ *http.Request) { rw.Write(bad) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	w.goodURL = srv.URL + "/good/v{version}/{archive}"
	w.badURL = srv.URL + "/tampered/v{version}/{archive}"

	w.regUser = "slwci-" + w.id
	w.regPW = "Pw%" + svcstate.RandHex(10) + "$(id)`x'"
	keyData, err := os.ReadFile(w.tg.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	w.key = string(keyData)
	kh, err := os.ReadFile(w.tg.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	w.knownHosts = strings.TrimSpace(string(kh))
	fp, err := exec.CommandContext(ctx, "ssh-keygen", "-lf", w.tg.KnownHosts).Output()
	if err != nil || len(strings.Fields(string(fp))) < 2 {
		t.Fatalf("ssh-keygen -lf %s: %v: %s", w.tg.KnownHosts, err, fp)
	}
	w.hostKey = strings.Fields(string(fp))[1]
	w.appSecret = "app-" + svcstate.RandHex(16)
	canary := "canary-" + svcstate.RandHex(16)
	w.ns = append(w.ns, needlesOf("registry password", w.regPW,
		map[string]string{"base64 user:password": base64.StdEncoding.EncodeToString([]byte(w.regUser + ":" + w.regPW))})...)
	w.ns = append(w.ns, needlesOf("deploy key", strings.TrimSpace(w.key), nil)...)
	w.ns = append(w.ns, needlesOf("app secret", w.appSecret, nil)...)
	w.ns = append(w.ns, needlesOf("canary", canary, nil)...)
	w.portBase = 29000 + svcstate.RandInt(900)
	svc.AddRegistryUser(t, w.regUser, w.regPW)

	sampler := startArgvSampler(w.ns)
	defer sampler.Stop()
	// The sampler's own proof: a process holding the canary in its argv,
	// kept alive until the sampler has seen it.
	proof := exec.Command("sh", "-c", "sleep 600; :", "canary", canary) // "; :": no exec into sleep, which would drop the argv
	if err := proof.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(2 * time.Minute); ; {
		hits, _ := sampler.seen()
		if len(hits) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Error("the argv sampler did not see the canary process in 2 minutes: its silence proves nothing")
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	proof.Process.Kill()
	proof.Wait()
	canaryHits, _ := sampler.seen()

	t.Run("recipes", func(t *testing.T) {
		for i, rc := range recipes {
			t.Run(rc.name, func(t *testing.T) {
				t.Parallel()
				w.runRecipe(t, rc, i)
			})
		}
	})

	hits, samples := sampler.seen()
	t.Logf("argv: %d samples of every process", samples)
	var leaks []string
	for _, h := range hits {
		if !contains(canaryHits, h) {
			leaks = append(leaks, h)
		}
	}
	for name, out := range w.outputs {
		leaks = append(leaks, scan(name+" log", out, w.ns)...)
	}
	files := 0
	for _, root := range w.scanRoots {
		h, n := scanTree(root, w.ns, nil)
		leaks = append(leaks, h...)
		files += n
	}
	t.Logf("files left by the runs: %d searched", files)
	if files == 0 {
		t.Error("no file was searched: the scan proves nothing")
	}
	for _, l := range leaks {
		t.Errorf("secret leaked: %s", l)
	}
}

// scenario is one pipeline run of a recipe.
type scenario struct {
	name   string
	branch string // the checkout's branch
	pr     bool   // a pull/merge request (else a push)
	env    []string
	pins   map[string]string
}

func (w *world) runRecipe(t *testing.T, rc recipe, idx int) {
	tg := w.tg
	port := w.portBase + idx
	project := "slwci" + w.id + rc.short
	deployDir := fmt.Sprintf("%s/slwci-%s-%s", tg.Dir, w.id, rc.short)
	prefix := fmt.Sprintf("%s-%s", w.cleanupPrefix, rc.short)
	var manifests []string
	t.Cleanup(func() { w.cleanup(t, project, prefix, deployDir, manifests) })

	appEnv := fmt.Sprintf("WEB_PORT=%d\nSLWCI_APP_SECRET=%s", port, w.appSecret)
	settings := map[string]string{
		"SLIPWAY_REGISTRY_USER":     w.regUser,
		"SLIPWAY_REGISTRY_PASSWORD": w.regPW,
		"SLIPWAY_DEPLOY_HOST":       tg.User + "@" + tg.Addr(),
		"SLIPWAY_DEPLOY_DIR":        deployDir,
		"SLIPWAY_SMOKE_URL":         fmt.Sprintf("http://127.0.0.1:%d/healthz", port),
	}
	secret := map[string]bool{"SLIPWAY_REGISTRY_PASSWORD": true, "SLIPWAY_SSH_KEY": true, "SLIPWAY_KNOWN_HOSTS": true, "SLIPWAY_APP_ENV": true}
	files := map[string]bool{}
	switch rc.short {
	case "tr": // one-line settings: base64 and a fingerprint
		settings["SLIPWAY_SSH_KEY_B64"] = base64.StdEncoding.EncodeToString([]byte(w.key))
		settings["SLIPWAY_APP_ENV_B64"] = base64.StdEncoding.EncodeToString([]byte(appEnv + "\n"))
		settings["SLIPWAY_HOST_KEY"] = w.hostKey
	case "gl": // File variables
		files = map[string]bool{"SLIPWAY_SSH_KEY": true, "SLIPWAY_KNOWN_HOSTS": true, "SLIPWAY_APP_ENV": true}
		settings["SLIPWAY_SSH_KEY"] = w.key
		settings["SLIPWAY_KNOWN_HOSTS"] = w.knownHosts + "\n"
		settings["SLIPWAY_APP_ENV"] = appEnv + "\n"
	default:
		settings["SLIPWAY_SSH_KEY"] = w.key
		settings["SLIPWAY_KNOWN_HOSTS"] = w.knownHosts
		settings["SLIPWAY_APP_ENV"] = appEnv
	}
	goodPins := map[string]string{"SLIPWAY_DOWNLOAD_URL": w.goodURL, "SLIPWAY_SHA256": w.goodSHA}
	badPins := map[string]string{"SLIPWAY_DOWNLOAD_URL": w.badURL, "SLIPWAY_SHA256": w.goodSHA}

	scenarios := []scenario{
		{name: "tampered", branch: "main", pins: badPins},
		{name: "failingtest", branch: "main", pins: goodPins, env: []string{"SAMPLEAPP_FAIL_TEST=1"}},
		{name: "other", branch: "feature/x", pr: rc.short != "sh" && rc.short != "gl", pins: goodPins},
		{name: "main", branch: "main", pins: goodPins},
	}
	for n, sc := range scenarios {
		if t.Failed() {
			return // a failed scenario leaves state the next would misread
		}
		dir := filepath.Join(w.base, rc.short, sc.name)
		w.addScanRoot(dir)
		ws := filepath.Join(dir, "ws")
		sha := w.checkout(t, ws, sc.branch, rc.short == "gl" || rc.short == "tr" || sc.pr)
		s := map[string]string{"SLIPWAY_REGISTRY": prefix + "-" + sc.name}
		for k, v := range settings {
			s[k] = v
		}
		r := &ciRun{t: t, ctx: w.ctx, recipe: filepath.Join(w.root, "docs/ci", rc.file), ws: ws, dir: dir,
			settings: s, secret: secret, files: files, pins: sc.pins,
			ev: event{branch: sc.branch, defaultBranch: "main", sha: sha, build: 40 + n},
			base: append([]string{"PATH=" + os.Getenv("PATH"), "USER=" + os.Getenv("USER"), "NO_COLOR=1",
				"SLIPWAY_FIXTURE_REGISTRY=" + w.svc.FixtureRegistry, "COMPOSE_PROJECT_NAME=" + project}, sc.env...)}
		if sc.pr {
			r.ev.pr = 7
		}
		t0 := time.Now()
		err := rc.run(r)
		out := r.out.Bytes()
		w.mu <- struct{}{}
		w.outputs[rc.name+" "+sc.name] = out
		<-w.mu
		t.Logf("%s %s: %v in %s; ran: %s", rc.name, sc.name, errOr(err), time.Since(t0).Round(time.Second), strings.Join(r.jobLog, "; "))
		fail := func(format string, args ...any) {
			t.Errorf("%s %s: %s\nCI log (secrets redacted), last lines:\n%s", rc.name, sc.name, fmt.Sprintf(format, args...), tail(redact(string(out), w.ns)))
		}
		m, merr := readManifest(filepath.Join(ws, "slipway-release.json"))
		if merr == nil {
			manifests = append(manifests, filepath.Join(ws, "slipway-release.json"))
		}
		switch sc.name {
		case "tampered":
			if err == nil {
				fail("the pipeline passed with a tampered download")
			}
			if _, serr := os.Stat(w.marker); serr == nil {
				fail("the tampered binary ran")
			}
			if merr == nil {
				fail("slipway build ran after a tampered download")
			}
			if !bytes.Contains(out, []byte("FAILED")) && !bytes.Contains(out, []byte("checksum")) {
				fail("no checksum failure in the log")
			}
		case "failingtest":
			if err == nil {
				fail("the pipeline passed although a test failed")
			}
			if merr != nil {
				fail("no release manifest: did build run? %v", merr)
			}
			// The failure is the test's (not, say, an unhealthy dependency).
			var sum struct {
				Failed   []string
				Services map[string]struct{ Outcome string }
			}
			if data, rerr := os.ReadFile(filepath.Join(ws, "test-results", "summary.json")); rerr != nil || json.Unmarshal(data, &sum) != nil {
				fail("no test-results/summary.json: %v", rerr)
			} else if sum.Services["tests"].Outcome != "failed" {
				fail("summary.json: the tests service's outcome is %q (failed: %v), want failed", sum.Services["tests"].Outcome, sum.Failed)
			}
			w.assertNotPushed(t, fail, m)
			w.assertNotDeployed(fail, deployDir)
		case "other":
			if err != nil {
				fail("the pipeline failed: %v", err)
				continue
			}
			if merr != nil {
				fail("no release manifest: %v", merr)
				continue
			}
			if m.Branch != sc.branch {
				fail("the manifest's branch is %q, want %q (the CI's variables mapped to BRANCH_NAME)", m.Branch, sc.branch)
			}
			w.assertNotPushed(t, fail, m)
			w.assertNotDeployed(fail, deployDir)
			w.assertJUnit(r, fail)
		case "main":
			if err != nil {
				fail("the pipeline failed: %v", err)
				continue
			}
			if merr != nil {
				fail("no release manifest: %v", merr)
				continue
			}
			if m.Branch != "main" || m.Commit != sha {
				fail("the manifest says branch %q commit %q, want main %s", m.Branch, m.Commit, sha)
			}
			if rc.short != "sh" && m.BuildNumber != fmt.Sprint(r.ev.build) {
				fail("the manifest's build number is %q, want the CI's %d", m.BuildNumber, r.ev.build)
			}
			w.assertPushed(t, fail, m, sha)
			w.assertServes(t, fail, deployDir, sha, port)
			if rc.short != "gh" {
				w.assertJUnit(r, fail)
			}
		}
	}
}

func (w *world) addScanRoot(dir string) {
	w.mu <- struct{}{}
	w.scanRoots = append(w.scanRoots, dir)
	<-w.mu
}

// checkout makes ws a fresh clone-like repository of the sample app on
// branch (a commit of its own for a branch other than main), detached if the
// CI checks out the commit rather than the branch. Returns HEAD.
func (w *world) checkout(t *testing.T, ws, branch string, detach bool) string {
	run := func(args ...string) string {
		cmd := exec.CommandContext(w.ctx, args[0], args[1:]...)
		cmd.Dir = filepath.Dir(ws)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v", strings.Join(args, " "), err)
		}
		return strings.TrimSpace(string(out))
	}
	if err := os.MkdirAll(filepath.Dir(ws), 0o700); err != nil {
		t.Fatal(err)
	}
	sha := run(filepath.Join(w.root, "test/scripts/sampleapp-repo.sh"), ws)
	if branch != "main" {
		run("git", "-C", ws, "checkout", "-q", "-b", branch)
		sha = run(filepath.Join(w.root, "test/scripts/sampleapp-repo.sh"), ws, "9.9.9-feature")
	}
	if detach {
		run("git", "-C", ws, "checkout", "-q", "--detach")
	}
	return sha
}
