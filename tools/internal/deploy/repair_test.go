package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/deploy/remote"
	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/grace"
	"github.com/slipway-dev/slipway/tools/internal/owner"
	"github.com/slipway-dev/slipway/tools/internal/progress"
)

// deadOrigin is the origin of a process of this machine that has exited.
func deadOrigin(t *testing.T) owner.Origin {
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	o := owner.Of(cmd.Process.Pid)
	cmd.Process.Kill()
	cmd.Wait()
	if !o.Dead() {
		t.Fatalf("origin %+v of a reaped child not judged dead", o)
	}
	return o
}

// writeAbortedRun leaves what an aborted deploy of release leaves when its
// rollback ran out of grace: its fresh upload, its marker and its lock
// (just renewed: young, far from any TTL), both naming a dead owner.
func (h *fakeHost) writeAbortedRun(t *testing.T, release, previous string, o owner.Origin) {
	if err := os.MkdirAll(filepath.Join(h.dir(), "releases", release), 0o755); err != nil {
		t.Fatal(err)
	}
	m := remote.Deploying{Command: "deploy", Release: release, Previous: previous, Owner: "jenkins@agent1", PID: o.PID,
		Time: "2030-01-02T03:04:05Z", Token: "aborted-token", Fresh: true, Origin: o}
	data, _ := json.Marshal(m)
	os.MkdirAll(filepath.Dir(h.marker()), 0o755)
	if err := os.WriteFile(h.marker(), data, 0o644); err != nil {
		t.Fatal(err)
	}
	li, _ := json.Marshal(remote.LockInfo{Owner: "jenkins@agent1", PID: o.PID, Time: "2030-01-02T03:04:05Z", Token: "aborted-token", Origin: o})
	os.MkdirAll(filepath.Dir(h.lockFile()), 0o755)
	if err := os.WriteFile(h.lockFile(), li, 0o644); err != nil {
		t.Fatal(err)
	}
}

func repair(t *testing.T, h *fakeHost) (string, error) {
	var out, log bytes.Buffer
	_, err := Rollback(context.Background(), RollbackOptions{Target: Target{Hosts: []string{"t1"}, Dir: "app", Dial: fakeDial(h)},
		HealthTimeout: 5 * time.Second, Repair: true, Stdout: &out, Log: progress.New(&log), Getenv: credsEnv})
	return log.String(), err
}

func TestRepairAfterAbort(t *testing.T) {
	h := newFakeHost(t, "t1")
	wantCode(t, deployTo(t, release(t, "v1", nil), []*fakeHost{h}, nil), 0)
	aborted := commitOf("v2")
	h.writeAbortedRun(t, aborted, commitOf("v1"), deadOrigin(t))

	tg := Target{Hosts: []string{"t1"}, Dir: "app", Dial: fakeDial(h)}
	var out bytes.Buffer
	sts, err := Status(context.Background(), InfoOptions{Target: tg, Stdout: &out, Log: progress.Discard()})
	if exit.Code(err) != exit.LeftChanged || !sts[0].Interrupted || !sts[0].LockOwnerDead {
		t.Errorf("status before the repair: want exit 5, INTERRUPTED, dead lock owner: %v %+v", err, sts)
	}
	for _, want := range []string{"INTERRUPTED", "LOCK LEFT", "services: db serving, web serving"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status output lacks %q:\n%s", want, out.String())
		}
	}

	// The lock is young: only its dead owner lets the repair take it over.
	log, err := repair(t, h)
	if err != nil {
		t.Fatalf("repair: %v\n%s", err, log)
	}
	for _, want := range []string{"taking over the deploy lock of a deploy that is gone", "repairing an interrupted deploy",
		"removed release " + short(aborted) + " uploaded by the interrupted deploy (it never served here)",
		"repaired: release " + short(commitOf("v1")) + " (current) is serving again"} {
		if !strings.Contains(log, want) {
			t.Errorf("repair log lacks %q:\n%s", want, log)
		}
	}
	if h.current() != commitOf("v1") || h.runningRelease() != commitOf("v1") {
		t.Errorf("after the repair: current %s, running %s", h.current(), h.runningRelease())
	}
	for _, d := range h.releases() {
		if d == aborted {
			t.Error("the aborted upload is still in releases/")
		}
	}
	for _, p := range []string{h.marker(), filepath.Dir(h.lockFile())} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s left after the repair", p)
		}
	}
	if sts, err := Status(context.Background(), InfoOptions{Target: tg, Stdout: &out, Log: progress.Discard()}); err != nil || sts[0].LeftChanged {
		t.Errorf("status after the repair: %v %+v", err, sts)
	}

	// A whole host: nothing to do.
	log, err = repair(t, h)
	if err != nil || !strings.Contains(log, "nothing to repair") || h.current() != commitOf("v1") {
		t.Errorf("repair of a whole host: %v\n%s", err, log)
	}
}

// A marker naming the release that is current (the aborted deploy's
// switch happened): the repair keeps it and says so.
func TestRepairKeepsCurrentRelease(t *testing.T) {
	h := newFakeHost(t, "t1")
	wantCode(t, deployTo(t, release(t, "v1", nil), []*fakeHost{h}, nil), 0)
	wantCode(t, deployTo(t, release(t, "v2", nil), []*fakeHost{h}, nil), 0)
	h.writeAbortedRun(t, commitOf("v2"), commitOf("v1"), deadOrigin(t))
	log, err := repair(t, h)
	if err != nil {
		t.Fatalf("repair: %v\n%s", err, log)
	}
	if strings.Contains(log, "removed release") || !strings.Contains(log, "kept release "+short(commitOf("v2"))) {
		t.Errorf("repair log must keep the current release and not claim to remove it:\n%s", log)
	}
	if h.current() != commitOf("v2") || h.runningRelease() != commitOf("v2") {
		t.Errorf("current %s, running %s", h.current(), h.runningRelease())
	}
}

func TestRepairRefusesTo(t *testing.T) {
	_, err := Rollback(context.Background(), RollbackOptions{Target: Target{Hosts: []string{"t1"}, Dir: "app"}, To: "abcd", Repair: true,
		Stdout: &bytes.Buffer{}, Log: progress.Discard()})
	if exit.Code(err) != exit.Usage {
		t.Errorf("--repair with --to: %v, want exit 2", err)
	}
}

// A service of current without a container (the issue's "no api container
// at all"), with no marker: status says MISSING and exits 5; the repair
// converges current, and status is clean again.
func TestStatusMissingService(t *testing.T) {
	h := newFakeHost(t, "t1")
	wantCode(t, deployTo(t, release(t, "v1", nil), []*fakeHost{h}, nil), 0)
	st := h.engine()
	var kept []fakeContainer
	for _, c := range st.Containers {
		if c.Service != "web" {
			kept = append(kept, c)
		}
	}
	st.Containers = kept
	if err := st.save(h.state); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	sts, err := Status(context.Background(), InfoOptions{Target: Target{Hosts: []string{"t1"}, Dir: "app", Dial: fakeDial(h)}, Stdout: &out, Log: progress.Discard()})
	if exit.Code(err) != exit.LeftChanged || !sts[0].LeftChanged || sts[0].Interrupted {
		t.Errorf("status with web gone: want exit 5, left changed, not interrupted: %v %+v", err, sts)
	}
	if !strings.Contains(out.String(), "MISSING: service web has no container") || !strings.Contains(out.String(), "db serving, web missing") {
		t.Errorf("status output:\n%s", out.String())
	}
	log, err := repair(t, h)
	if err != nil || !strings.Contains(log, "repairing: service web has no container") {
		t.Fatalf("repair: %v\n%s", err, log)
	}
	if _, err := Status(context.Background(), InfoOptions{Target: Target{Hosts: []string{"t1"}, Dir: "app", Dial: fakeDial(h)}, Stdout: &out, Log: progress.Discard()}); err != nil {
		t.Errorf("status after the repair: %v\n%s", err, log)
	}
}

// An interruption whose grace is used up before the rollback can start
// (SIGTERM under heavy load): exit 5, the marker (and the lock) left; once
// the process is gone, rollback --repair restores the previous release.
func TestInterruptOutOfGraceThenRepair(t *testing.T) {
	h := newFakeHost(t, "t1")
	wantCode(t, deployTo(t, release(t, "v1", nil), []*fakeHost{h}, nil), 0)
	ctx, cancel := context.WithCancelCause(context.Background())
	var out, errb bytes.Buffer
	o := Options{Target: Target{Hosts: []string{"t1"}, Dir: "app", Dial: fakeDial(h)}, Manifest: release(t, "v2", map[string]string{"fake.health": "starting"}),
		HealthTimeout: time.Minute, Stdout: &out, Log: progress.New(&errb), Getenv: credsEnv}
	go func() {
		for h.runningRelease() != commitOf("v2") {
			time.Sleep(20 * time.Millisecond)
		}
		cancel(&grace.Interrupted{Signal: syscall.SIGTERM, At: time.Now().Add(-time.Minute), Grace: time.Second})
	}()
	_, err := Deploy(ctx, o)
	if exit.Code(err) != exit.LeftChanged {
		t.Fatalf("exit %d (%v), want 5: the grace was used up\n%s", exit.Code(err), err, errb.String())
	}
	if _, err := os.Stat(h.marker()); err != nil {
		t.Fatalf("the marker must stay for the repair: %v", err)
	}
	// The process exits: its lock (if the release did not get through) now
	// names a dead owner.
	if data, err := os.ReadFile(h.lockFile()); err == nil {
		var li remote.LockInfo
		json.Unmarshal(data, &li)
		li.Origin = deadOrigin(t)
		data, _ = json.Marshal(li)
		os.WriteFile(h.lockFile(), data, 0o644)
	}
	log, err := repair(t, h)
	if err != nil {
		t.Fatalf("repair: %v\n%s", err, log)
	}
	if h.current() != commitOf("v1") || h.runningRelease() != commitOf("v1") {
		t.Errorf("after the repair: current %s, running %s\n%s", h.current(), h.runningRelease(), log)
	}
	for _, d := range h.releases() {
		if d == commitOf("v2") {
			t.Errorf("the aborted upload is still in releases/:\n%s", log)
		}
	}
	for _, p := range []string{h.marker(), filepath.Dir(h.lockFile())} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s left after the repair", p)
		}
	}
}
