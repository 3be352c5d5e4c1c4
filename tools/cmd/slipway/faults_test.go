package main

// Whole-command fault tests: the real slipway binary against the real test
// services, with the faults a CI agent meets (concurrent deploys, a deploy
// killed while it holds the lock, SIGTERM from an aborted Jenkins build in the
// middle of a deploy, a push and a build). Each test is a row of RELIABILITY.md.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/testenv"
)

// convergence records, from outside slipway, when each release's `compose
// up` ran on the target (its processes, seen in /proc) and when <dir>/current
// switched to it, as numbered samples: each sample reads the processes first,
// then current, so a compose up seen in a sample before the one where current
// first shows the previous release certainly ran before that switch, however
// late the sampler runs.
type convergence struct {
	s        *site
	quit     chan struct{}
	done     chan struct{}
	mu       sync.Mutex
	at       []time.Time    // sample -> when it was taken
	upFirst  map[string]int // commit -> first sample with its compose up running
	maxUps   int            // most releases with a compose up running in one sample
	switches []switchSeen
}

type switchSeen struct {
	commit string
	sample int // the first sample where current named it
}

func watchConvergence(s *site) *convergence {
	w := &convergence{s: s, quit: make(chan struct{}), done: make(chan struct{}), upFirst: map[string]int{}}
	go func() {
		defer close(w.done)
		for {
			w.sample()
			select {
			case <-w.quit:
				w.sample()
				return
			case <-time.After(25 * time.Millisecond):
			}
		}
	}()
	return w
}

// upRelease returns the release a `compose -p <project> -f
// <dir>/releases/<commit>/compose.yaml ... up` command line converges.
func upRelease(project string, args []string) (string, bool) {
	proj, up, file := false, false, ""
	for i, a := range args {
		switch {
		case a == "-p" && i+1 < len(args) && args[i+1] == project:
			proj = true
		case a == "-f" && i+1 < len(args):
			file = args[i+1]
		case a == "up":
			up = true
		}
	}
	if !proj || !up || !strings.Contains(file, "/releases/") {
		return "", false
	}
	return filepath.Base(filepath.Dir(file)), true
}

func (w *convergence) sample() {
	now := time.Now()
	active := map[string]bool{}
	for _, p := range procsMatching(func(args []string) bool { _, ok := upRelease(w.s.project, args); return ok }) {
		c, _ := upRelease(w.s.project, p.args)
		active[c] = true
	}
	cur := w.s.current() // after the processes: see the type's comment
	w.mu.Lock()
	defer w.mu.Unlock()
	i := len(w.at)
	w.at = append(w.at, now)
	for c := range active {
		if _, ok := w.upFirst[c]; !ok {
			w.upFirst[c] = i
		}
	}
	w.maxUps = max(w.maxUps, len(active))
	if cur != "" && (len(w.switches) == 0 || w.switches[len(w.switches)-1].commit != cur) {
		w.switches = append(w.switches, switchSeen{cur, i})
	}
}

func (w *convergence) stop() {
	close(w.quit)
	<-w.done
}

// TestConcurrentDeploysOneHost starts 20 deploys of one app to one host at
// once, half waiting for the lock, half not. Exactly one may converge at a
// time (checked from outside: the target's compose processes and its current
// symlink), each deploy either succeeds or is refused naming the lock's
// holder, the successful releases switch in the order they converged, the
// last one stays current, and no lock is left.
func TestConcurrentDeploysOneHost(t *testing.T) {
	t.Parallel()
	env := needBinary(t)
	s := newSite(t, env, env.Target(t, "t1"), "slwconc")
	const n = 20
	rels := make([]*release, n)
	byCommit := map[string]*release{}
	for i := range rels {
		rels[i] = s.release(t, fmt.Sprintf("r%02d", i))
		byCommit[rels[i].commit] = rels[i]
	}
	w := watchConvergence(s)
	start0 := time.Now()
	procs := make([]*proc, n)
	for i, r := range rels {
		wait := "0s"
		if i%2 == 0 {
			wait = "8m" // long enough to queue behind every other deploy, on a loaded machine too
		}
		procs[i] = start(t, "", baseEnv(env), s.deployArgs(r, "--lock-wait", wait, "--health-timeout", "2m")...)
	}
	for _, p := range procs {
		if !p.wait(12 * time.Minute) {
			p.cmd.Process.Kill()
			<-p.done
			t.Errorf("slipway %s still running after 12 minutes; killed\n%s", p.name, p.errText())
		}
	}
	w.stop()
	t.Logf("20 deploys ended in %s (%d samples of the target)", time.Since(start0).Round(time.Millisecond), len(w.at))

	ok := map[string]bool{}
	refused := 0
	for i, p := range procs {
		r, stderr := rels[i], p.errText()
		switch {
		case p.code == 0:
			ok[r.commit] = true
		case p.code == exit.Failed && strings.Contains(stderr, "lock held by"):
			refused++
			if i%2 == 0 {
				t.Errorf("%s (--lock-wait 8m) was refused instead of waiting:\n%s", r.name, stderr)
			}
		default:
			if strings.Contains(stderr, "connection reset") || strings.Contains(stderr, "handshake") {
				t.Errorf("%s: the SSH connection failed under 20 simultaneous deploys (sshd MaxStartups, or no dial retry in sshx?): exit %d\n%s", r.name, p.code, stderr)
			} else {
				t.Errorf("%s: exit %d, want 0, or 1 with \"lock held by\":\n%s", r.name, p.code, stderr)
			}
		}
	}
	t.Logf("%d deployed, %d refused because the lock was held", len(ok), refused)
	if len(ok) == 0 {
		t.Fatal("no deploy succeeded")
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	// Logged, not asserted: one /proc scan is not atomic. The ordering
	// check below is.
	t.Logf("at most %d release(s) had a compose up running in one sample", w.maxUps)
	// The successful releases, in the order their compose up began.
	var order []string
	for c := range ok {
		if _, seen := w.upFirst[c]; !seen {
			t.Errorf("release %s deployed, but its compose up was never seen on the target", byCommit[c].name)
			continue
		}
		order = append(order, c)
	}
	sort.Slice(order, func(i, j int) bool { return w.upFirst[order[i]] < w.upFirst[order[j]] })
	switched := map[string]int{}
	for _, sw := range w.switches {
		if _, again := switched[sw.commit]; again {
			t.Errorf("current switched back to %s", nameOf(byCommit, sw.commit))
		}
		switched[sw.commit] = sw.sample
		if !ok[sw.commit] {
			t.Errorf("current pointed at %s, a release whose deploy did not succeed", nameOf(byCommit, sw.commit))
		}
	}
	for c := range w.upFirst {
		if !ok[c] {
			t.Errorf("compose up ran for %s, whose deploy did not succeed", nameOf(byCommit, c))
		}
	}
	// One at a time: a release's compose up begins only after the previous
	// one's deploy switched current (the lock covers up, gate and switch).
	for i := 1; i < len(order); i++ {
		prev, next := order[i-1], order[i]
		sw, seen := switched[prev]
		switch {
		case !seen:
			t.Errorf("%s converged but current never pointed at it", byCommit[prev].name)
		case w.upFirst[next] < sw:
			t.Errorf("%s ran compose up at %s, before %s switched current (seen at %s): two deploys converged at once",
				byCommit[next].name, w.at[w.upFirst[next]].Format("15:04:05.000"), byCommit[prev].name, w.at[sw].Format("15:04:05.000"))
		}
	}
	var seq, want []string
	for _, sw := range w.switches {
		seq = append(seq, nameOf(byCommit, sw.commit))
	}
	for _, c := range order {
		want = append(want, byCommit[c].name)
	}
	if strings.Join(seq, " ") != strings.Join(want, " ") {
		t.Errorf("current switched through %v, want the converge order %v", seq, want)
	}

	if len(order) == 0 {
		t.Fatal("no successful deploy was seen converging on the target")
	}
	last := order[len(order)-1]
	if got := s.current(); got != last {
		t.Errorf("current -> %s, want the last release to converge, %s", nameOf(byCommit, got), byCommit[last].name)
	}
	if cur, _ := s.releasesJSON(t); cur != last {
		t.Errorf("slipway releases: current %s, want %s", nameOf(byCommit, cur), byCommit[last].name)
	}
	st := s.statusJSON(t)
	if len(st) != 1 || st[0].Current != last || !st[0].Healthy {
		t.Errorf("slipway status: %+v, want current %s and healthy", st, last)
	}
	if got := s.version(); got != byCommit[last].name {
		t.Errorf("serving %q, want %q", got, byCommit[last].name)
	}
	s.wantNoLock(t)
	s.wantNoRemoteProcs(t, 10*time.Second)
}

func nameOf(m map[string]*release, commit string) string {
	if r, ok := m[commit]; ok {
		return r.name
	}
	if commit == "" {
		return "(none)"
	}
	return commit
}

// TestKilledHolderLockTakenOverAfterTTL kills -9 a deploy that holds the lock
// (waiting in its health gate), then deploys again with --lock-wait longer
// than --lock-ttl: the second deploy takes the dead holder's lock over with a
// warning, succeeds, serves, and leaves no lock.
func TestKilledHolderLockTakenOverAfterTTL(t *testing.T) {
	t.Parallel()
	env := needBinary(t)
	s := newSite(t, env, env.Target(t, "t1"), "slwkill")
	stuck := s.release(t, "stuck", "APP_HEALTHY=no") // its health gate never passes
	good := s.release(t, "good")
	const ttl = "4s"

	holder := start(t, "", baseEnv(env), s.deployArgs(stuck, "--health-timeout", "5m", "--lock-ttl", ttl)...)
	if !holder.waitStderr("waiting for "+s.project, 2*time.Minute) {
		t.Fatalf("the first deploy never reached its health gate:\n%s", holder.errText())
	}
	info, err := os.ReadFile(filepath.Join(s.lockPath(), "info"))
	if err != nil || !strings.Contains(string(info), fmt.Sprintf(`"pid":%d`, holder.cmd.Process.Pid)) {
		t.Fatalf("the deploy in its health gate does not hold the lock %s: %v %s", s.lockPath(), err, info)
	}
	holder.cmd.Process.Kill() // SIGKILL: no cleanup of any kind
	killed := time.Now()
	<-holder.done
	if _, err := os.Stat(s.lockPath()); err != nil {
		t.Fatalf("the lock vanished although its holder was killed -9: %v", err)
	}

	second := run(t, "", baseEnv(env), 5*time.Minute,
		s.deployArgs(good, "--lock-wait", "2m", "--lock-ttl", ttl, "--health-timeout", "2m")...)
	t.Logf("the second deploy:\n%s", second.errText())
	wantCode(t, second, 0)
	testenv.Recovery(t, second.ended.Sub(killed))
	// The holder ran on this machine and is gone: its lock is taken over at
	// once (its recorded origin proves it dead), not only after the TTL.
	if !strings.Contains(second.errText(), "taking over the deploy lock of a deploy that is gone") {
		t.Errorf("no warning about taking over the dead holder's lock:\n%s", second.errText())
	}
	if got := s.version(); got != "good" {
		t.Errorf("serving %q, want \"good\"", got)
	}
	if got := s.current(); got != good.commit {
		t.Errorf("current -> %q, want %s", got, good.commit)
	}
	// The killed deploy's upload never served: the repairing deploy removes
	// it, so that no later rollback can pick it.
	if !strings.Contains(second.errText(), "an earlier deploy was interrupted mid-converge") {
		t.Errorf("the second deploy did not report the interrupted one:\n%s", second.errText())
	}
	if _, err := os.Stat(filepath.Join(s.dir, "releases", stuck.commit)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the killed deploy's release is still in releases/: %v", err)
	}
	s.wantNoLock(t)
	s.wantNoRemoteProcs(t, 10*time.Second)
}

// TestSIGTERMDuringDeploy sends SIGTERM (what Jenkins sends when a build is
// aborted) to a deploy waiting in its health gate, after it replaced the
// running release: it exits 130 having rolled back, the previous release
// serves again, the lock is released and nothing it started on the target is
// left running.
func TestSIGTERMDuringDeploy(t *testing.T) {
	t.Parallel()
	env := needBinary(t)
	s := newSite(t, env, env.Target(t, "t1"), "slwterm")
	v1 := s.release(t, "v1")
	v2 := s.release(t, "v2", "APP_HEALTHY=no")

	first := run(t, "", baseEnv(env), 5*time.Minute, s.deployArgs(v1, "--health-timeout", "2m")...)
	wantCode(t, first, 0)
	if got := s.version(); got != "v1" {
		t.Fatalf("after deploying v1: serving %q", got)
	}

	// A grace long enough for the whole rollback under any load: this test
	// asserts the rolled-back outcome (abort_test.go accepts every outcome
	// of the short grace the Jenkins steps set).
	p := start(t, "", baseEnv(env, "SLIPWAY_CANCEL_GRACE=10m"), s.deployArgs(v2, "--health-timeout", "5m")...)
	if !p.waitStderr("waiting for "+s.project, 2*time.Minute) {
		t.Fatalf("the v2 deploy never reached its health gate:\n%s", p.errText())
	}
	// The host has changed: v2's container answers (its healthcheck fails).
	deadline := time.Now().Add(time.Minute)
	for s.version() != "v2" {
		if time.Now().After(deadline) {
			t.Fatalf("v2 never served while its deploy waited in the health gate (serving %q)", s.version())
		}
		time.Sleep(100 * time.Millisecond)
	}
	sig := p.signal(t, syscall.SIGTERM)
	if !p.wait(3 * time.Minute) {
		t.Fatalf("deploy still running 3 minutes after SIGTERM:\n%s", p.errText())
	}
	testenv.Recovery(t, p.ended.Sub(sig))
	stderr := p.errText()
	t.Logf("the cancelled deploy:\n%s", stderr)
	wantCode(t, p, exit.Cancelled)
	if !strings.Contains(stderr, "cancel") {
		t.Errorf("stderr does not say the deploy was cancelled:\n%s", stderr)
	}
	if !strings.Contains(stderr, "rolling back to release "+v1.commit[:12]) || !strings.Contains(stderr, "rolled back") {
		t.Errorf("stderr does not say it rolled back to v1 (%s):\n%s", v1.commit[:12], stderr)
	}
	if got := s.version(); got != "v1" {
		t.Errorf("serving %q after the cancelled deploy, want v1", got)
	}
	if got := s.current(); got != v1.commit {
		t.Errorf("current -> %q, want v1 %s", got, v1.commit)
	}
	s.wantNoLock(t)
	s.wantNoRemoteProcs(t, 10*time.Second)
}

// TestSIGTERMDuringPush sends SIGTERM to a push while a large layer is being
// uploaded: it exits 130 promptly, leaves no child process, records no digest
// and writes no pinned compose file (nothing looks pushed), the registry got
// no manifest for the tag; a second push then succeeds.
func TestSIGTERMDuringPush(t *testing.T) {
	t.Parallel()
	env := needBinary(t)
	dir := t.TempDir()
	token := randHex(8)
	writeFiles(t, dir, map[string]string{
		// 150 MB of random bytes: gzip cannot shrink them, so the upload
		// takes seconds; the token gives a layer neither the build cache
		// nor the registry has from an earlier run.
		"Dockerfile": "ARG BASE\nFROM ${BASE}\nRUN echo " + token + " > /token && head -c 150000000 /dev/urandom > /blob\n",
		"compose.yaml": "name: slwbigpush\nservices:\n  big:\n    build:\n      context: .\n      args:\n" +
			"        BASE: ${SLIPWAY_FIXTURE_REGISTRY}/debian:bookworm\n",
	})
	if err := commitAll(dir); err != nil {
		t.Fatal(err)
	}
	b := run(t, dir, baseEnv(env), 5*time.Minute, "build", "--registry", imagePrefix)
	wantCode(t, b, 0)
	manifestPath := filepath.Join(dir, "slipway-release.json")
	pinnedPath := filepath.Join(dir, "slipway-compose.pinned.yml")
	img := readService(t, manifestPath, "big")
	t.Cleanup(func() { _ = exec.Command("docker", "rmi", "-f", img.Image+":"+img.Tags[0]).Run() })

	p := start(t, dir, baseEnv(env), "push")
	if !p.waitStderr("The push refers to repository", 2*time.Minute) {
		t.Fatalf("the push never started:\n%s", p.errText())
	}
	time.Sleep(time.Second) // into the upload of the big layer
	select {
	case <-p.done:
		t.Fatalf("the push ended before SIGTERM (exit %d): the layer uploads too fast here to test this\n%s", p.code, p.errText())
	default:
	}
	kids := childrenOf(p.cmd.Process.Pid)
	sig := p.signal(t, syscall.SIGTERM)
	if !p.wait(60 * time.Second) {
		t.Fatalf("push still running 60 s after SIGTERM:\n%s", p.errText())
	}
	t.Logf("push exited %s after SIGTERM", p.ended.Sub(sig).Round(time.Millisecond))
	wantCode(t, p, exit.Cancelled)
	for _, k := range kids {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", k.pid)); err == nil {
			t.Errorf("child process %d %q of the push still runs", k.pid, k.args)
		}
	}
	if left := procsMatching(func(args []string) bool {
		j := strings.Join(args, " ")
		return strings.Contains(j, "push") && strings.Contains(j, img.Image)
	}); len(left) > 0 {
		t.Errorf("a push process is left: %+v", left)
	}
	if _, err := os.Stat(pinnedPath); err == nil {
		t.Errorf("the cancelled push wrote the pinned compose file %s", pinnedPath)
	}
	if got := readService(t, manifestPath, "big"); got.Digest != "" {
		t.Errorf("the cancelled push recorded a digest: %s", got.Digest)
	}
	if m := readManifest(t, manifestPath); m.PinnedCompose != "" {
		t.Errorf("the cancelled push recorded pinnedCompose %q", m.PinnedCompose)
	}
	// The engine must have stopped uploading too, not finished behind our
	// back: give it more than the whole push would take, then ask the registry.
	time.Sleep(10 * time.Second)
	if d := registryManifest(t, env, img.Image, img.Tags[0]); d != "" {
		t.Errorf("the registry has %s:%s (%s) although the push was cancelled: the engine went on pushing", img.Image, img.Tags[0], d)
	}

	again := run(t, dir, baseEnv(env), 5*time.Minute, "push")
	wantCode(t, again, 0)
	if _, err := os.Stat(pinnedPath); err != nil {
		t.Errorf("the second push wrote no pinned compose file: %v", err)
	}
	got := readService(t, manifestPath, "big")
	if reg := registryManifest(t, env, img.Image, img.Tags[0]); got.Digest == "" || reg != got.Digest {
		t.Errorf("after the second push: manifest digest %q, registry %q", got.Digest, reg)
	}
}

// TestSIGTERMDuringBuild sends SIGTERM to slipway build while a RUN step
// runs: exit 130, no manifest written, and the engine stops the build
// container rather than leaving it running.
func TestSIGTERMDuringBuild(t *testing.T) {
	t.Parallel()
	env := needBinary(t)
	dir := t.TempDir()
	// The RUN's output is the marker; its command text (which BuildKit's
	// progress shows too) is not: the test waits for the step to execute.
	hex := randHex(6)
	marker := "slwfaults-build-" + hex
	writeFiles(t, dir, map[string]string{
		"Dockerfile": "ARG BASE\nFROM ${BASE}\nRUN echo slwfaults-build-\"\"" + hex + " && sleep 600\n",
		"compose.yaml": "name: slwslowbuild\nservices:\n  slow:\n    build:\n      context: .\n      args:\n" +
			"        BASE: ${SLIPWAY_FIXTURE_REGISTRY}/debian:bookworm\n",
	})
	if err := commitAll(dir); err != nil {
		t.Fatal(err)
	}
	p := start(t, dir, baseEnv(env), "build", "--registry", imagePrefix)
	if !p.waitStderr(marker, 2*time.Minute) {
		t.Fatalf("the RUN step never ran:\n%s", p.errText())
	}
	sig := p.signal(t, syscall.SIGTERM)
	if !p.wait(60 * time.Second) {
		t.Fatalf("build still running 60 s after SIGTERM:\n%s", p.errText())
	}
	t.Logf("build exited %s after SIGTERM", p.ended.Sub(sig).Round(time.Millisecond))
	wantCode(t, p, exit.Cancelled)
	if _, err := os.Stat(filepath.Join(dir, "slipway-release.json")); err == nil {
		t.Errorf("the cancelled build wrote a manifest")
	}
	deadline := time.Now().Add(60 * time.Second)
	// The classic builder runs the step in a container, BuildKit in a
	// process of its own: neither may outlive the cancelled build.
	for runningContainersWith(t, hex) > 0 || processesWith(t, hex) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the build step (%s) still runs 60 s after the build was cancelled", hex)
		}
		time.Sleep(500 * time.Millisecond)
	}
	testenv.Recovery(t, time.Since(sig))
}

type manifestFile struct {
	PinnedCompose string                   `json:"pinnedCompose"`
	Services      map[string]manifestImage `json:"services"`
}

type manifestImage struct {
	Image  string   `json:"image"`
	Tags   []string `json:"tags"`
	Digest string   `json:"digest"`
}

func readManifest(t *testing.T, path string) manifestFile {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m manifestFile
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

func readService(t *testing.T, path, svc string) manifestImage {
	t.Helper()
	s, ok := readManifest(t, path).Services[svc]
	if !ok || len(s.Tags) == 0 {
		t.Fatalf("%s has no service %s with a tag", path, svc)
	}
	return s
}

// processesWith counts the processes whose command line contains s.
func processesWith(t *testing.T, s string) int {
	t.Helper()
	dirs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range dirs {
		b, err := os.ReadFile(f)
		if err == nil && strings.Contains(string(b), s) {
			n++
		}
	}
	return n
}
