package deploy

// Logic tests of the lock's renewal and of the interrupted-deploy marker,
// against the fake host (fake_test.go). The real-target versions are in
// interrupt_integration_test.go.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/deploy/remote"
	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/progress"
)

func TestRenewInterval(t *testing.T) {
	for _, c := range []struct{ ttl, want time.Duration }{
		{DefaultLockTTL, time.Minute}, // 5m/4 = 75s, capped
		{2 * time.Minute, 30 * time.Second},
		{2 * time.Second, time.Second}, // 0.5s, raised
		{-1, time.Minute},              // never stale: still renewed
	} {
		if got := remote.RenewInterval(c.ttl); got != c.want {
			t.Errorf("RenewInterval(%s) = %s, want %s", c.ttl, got, c.want)
		}
	}
}

func (h *fakeHost) lockFile() string { return filepath.Join(h.dir(), ".slipway", "lock", "info") }

// stealLock replaces the lock's info with another deploy's, as a takeover would.
func (h *fakeHost) stealLock(t *testing.T) {
	info := `{"owner":"bob@agent9","pid":77,"time":"2030-01-02T03:04:05Z","token":"someone-else"}`
	if err := os.WriteFile(h.lockFile(), []byte(info), 0o644); err != nil {
		t.Error(err)
	}
}

func TestLockRenewedWhileHeld(t *testing.T) {
	h := newFakeHost(t, "t1")
	wantCode(t, deployTo(t, release(t, "v1", nil), []*fakeHost{h}, nil), 0)
	// A deploy that holds the lock for 8s with a 4s TTL: renewed every 1s.
	first := make(chan run)
	go func() {
		first <- deployTo(t, release(t, "v2", nil), []*fakeHost{h}, func(o *Options) {
			o.LockTTL, o.PreDeploy = 4*time.Second, "web: sleep 8"
		})
	}()
	var held time.Time
	for i := 0; i < 400 && held.IsZero(); i++ {
		if _, err := os.Stat(h.lockFile()); err == nil {
			held = time.Now()
		}
		time.Sleep(10 * time.Millisecond)
	}
	if held.IsZero() {
		t.Fatal("the first deploy never took the lock")
	}
	time.Sleep(5500 * time.Millisecond) // past the TTL: unrenewed, it would be stale
	st, err := os.Stat(h.lockFile())
	if err != nil {
		t.Fatalf("lock gone while the deploy runs: %v", err)
	}
	if age := time.Since(st.ModTime()); age > 4*time.Second {
		t.Errorf("lock info last touched %s ago, want renewed about every second", age)
	}
	r := deployTo(t, release(t, "v3", nil), []*fakeHost{h}, func(o *Options) { o.LockTTL = 4 * time.Second })
	wantCode(t, r, exit.Failed)
	if !strings.Contains(r.err.Error(), "lock held by") || strings.Contains(r.stderr, "stale deploy lock") {
		t.Errorf("the renewed lock was taken over or not reported: %v\n%s", r.err, r.stderr)
	}
	wantCode(t, <-first, 0)
	if h.current() != commitOf("v2") {
		t.Errorf("current -> %s, want v2", h.current())
	}
	if _, err := os.Stat(h.lockFile()); err == nil {
		t.Error("lock left after the deploy")
	}
}

func TestNegativeTTLNeverStale(t *testing.T) {
	h := newFakeHost(t, "t1")
	wantCode(t, deployTo(t, release(t, "v1", nil), []*fakeHost{h}, nil), 0)
	os.MkdirAll(filepath.Dir(h.lockFile()), 0o755)
	h.stealLock(t)
	old := time.Now().Add(-48 * time.Hour)
	os.Chtimes(h.lockFile(), old, old)
	r := deployTo(t, release(t, "v2", nil), []*fakeHost{h}, func(o *Options) { o.LockTTL = -1 })
	wantCode(t, r, exit.Failed)
	if !strings.Contains(r.err.Error(), "lock held by bob@agent9") {
		t.Errorf("error: %v", r.err)
	}
	if h.current() != commitOf("v1") {
		t.Error("current moved")
	}
}

func TestLockLostBeforeConvergeChangesNothing(t *testing.T) {
	h := newFakeHost(t, "t1")
	wantCode(t, deployTo(t, release(t, "v1", nil), []*fakeHost{h}, nil), 0)
	var once sync.Once
	h.onCmd = func(cmd string) {
		if strings.Contains(cmd, "tar -x") { // during the upload
			once.Do(func() { h.stealLock(t) })
		}
	}
	r := deployTo(t, release(t, "v2", nil), []*fakeHost{h}, nil)
	wantCode(t, r, exit.Failed)
	if !strings.Contains(r.err.Error(), "no longer this deploy's") || !strings.Contains(r.err.Error(), "not converging") {
		t.Errorf("error: %v", r.err)
	}
	if h.current() != commitOf("v1") || h.runningRelease() != commitOf("v1") {
		t.Errorf("host changed: current %s, running %s", h.current(), h.runningRelease())
	}
	for _, d := range h.releases() {
		if d == commitOf("v2") {
			t.Error("the upload of the deploy that lost its lock was kept")
		}
	}
	data, err := os.ReadFile(h.lockFile())
	if err != nil || !strings.Contains(string(data), "someone-else") {
		t.Errorf("the other deploy's lock was removed: %q %v", data, err)
	}
	if _, err := os.Stat(filepath.Join(h.dir(), ".slipway", "deploying")); err == nil {
		t.Error("a deploying marker was written")
	}
}

func TestLockLostDuringConvergeWarns(t *testing.T) {
	h := newFakeHost(t, "t1")
	wantCode(t, deployTo(t, release(t, "v1", nil), []*fakeHost{h}, nil), 0)
	var once sync.Once
	h.onCmd = func(cmd string) {
		if strings.Contains(cmd, "run --rm") { // the hook, after the last check
			once.Do(func() { h.stealLock(t) })
		}
	}
	r := deployTo(t, release(t, "v2", nil), []*fakeHost{h}, func(o *Options) {
		o.LockTTL, o.PreDeploy = 2*time.Second, "web: sleep 4"
	})
	wantCode(t, r, 0)
	if !strings.Contains(r.stderr, "no longer this deploy's") || !strings.Contains(r.stderr, "another deploy may be changing this host") {
		t.Errorf("no warning about the lost lock:\n%s", r.stderr)
	}
	data, err := os.ReadFile(h.lockFile())
	if err != nil || !strings.Contains(string(data), "someone-else") {
		t.Errorf("the other deploy's lock was released by this one: %q %v", data, err)
	}
}

func (h *fakeHost) marker() string { return filepath.Join(h.dir(), ".slipway", "deploying") }

func TestDeployingMarker(t *testing.T) {
	h := newFakeHost(t, "t1")
	wantCode(t, deployTo(t, release(t, "v1", nil), []*fakeHost{h}, nil), 0)
	// The hook runs mid-converge: the marker names this deploy then.
	r := deployTo(t, release(t, "v2", nil), []*fakeHost{h}, func(o *Options) { o.PreDeploy = "web: cp ../../.slipway/deploying marker-seen" })
	wantCode(t, r, 0)
	data, err := os.ReadFile(filepath.Join(h.dir(), "releases", commitOf("v2"), "marker-seen"))
	var m remote.Deploying
	if err != nil || json.Unmarshal(data, &m) != nil || m.Release != commitOf("v2") || m.Previous != commitOf("v1") || m.Command != "deploy" ||
		m.PID != os.Getpid() || m.BuildURL == "" || m.Token == "" {
		t.Errorf("marker during the converge: %s %v", data, err)
	}
	if _, err := os.Stat(h.marker()); err == nil {
		t.Error("marker left after a successful deploy")
	}
	// Rolled back cleanly: no marker either.
	r = deployTo(t, release(t, "v3", map[string]string{"fake.state": "exited"}), []*fakeHost{h}, nil)
	wantCode(t, r, exit.RolledBack)
	if _, err := os.Stat(h.marker()); err == nil {
		t.Error("marker left after a clean rollback")
	}
	if r.res.Hosts[0].Interrupted != "" || strings.Contains(r.stderr, "interrupted") {
		t.Errorf("a clean run reported an interrupted one:\n%s", r.stderr)
	}
}

// writeDeadRun leaves what a deploy killed mid-converge leaves: its marker
// (and, with lock, its lock, last renewed age ago).
func (h *fakeHost) writeDeadRun(t *testing.T, release, previous string, lock bool, age time.Duration) {
	m := remote.Deploying{Command: "deploy", Release: release, Previous: previous, Owner: "carol@agent3", PID: 999,
		BuildURL: "https://ci.example/job/shop/41/", Time: "2030-01-02T03:04:05Z", Token: "dead-token"}
	data, _ := json.Marshal(m)
	os.MkdirAll(filepath.Dir(h.marker()), 0o755)
	if err := os.WriteFile(h.marker(), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if lock {
		os.MkdirAll(filepath.Dir(h.lockFile()), 0o755)
		os.WriteFile(h.lockFile(), []byte(`{"owner":"carol@agent3","pid":999,"time":"2030-01-02T03:04:05Z","token":"dead-token"}`), 0o644)
		old := time.Now().Add(-age)
		os.Chtimes(h.lockFile(), old, old)
	}
}

func TestInterruptedDeployDetectedAndRepaired(t *testing.T) {
	h := newFakeHost(t, "t1")
	wantCode(t, deployTo(t, release(t, "v1", nil), []*fakeHost{h}, nil), 0)
	h.writeDeadRun(t, commitOf("v2"), commitOf("v1"), true, 10*time.Minute)

	// status shows it (the lock is past the default TTL: nobody renews it).
	var out bytes.Buffer
	sts, err := Status(context.Background(), InfoOptions{Target: Target{Hosts: []string{"t1"}, Dir: "app", Dial: fakeDial(h)}, Stdout: &out, Log: progress.Discard()})
	if exit.Code(err) != exit.LeftChanged || !sts[0].Interrupted || !sts[0].LeftChanged || sts[0].Deploying == nil || sts[0].Deploying.Owner != "carol@agent3" {
		t.Errorf("status: want exit 5 and INTERRUPTED: %v %+v", err, sts)
	}
	if !strings.Contains(out.String(), "INTERRUPTED: deploy of release "+short(commitOf("v2"))) {
		t.Errorf("status output:\n%s", out.String())
	}

	r := deployTo(t, release(t, "v2", nil), []*fakeHost{h}, nil)
	wantCode(t, r, 0)
	for _, want := range []string{"stale deploy lock", "an earlier deploy was interrupted mid-converge", "carol@agent3", "converges release " + short(commitOf("v2")) + ", which repairs it"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("log lacks %q:\n%s", want, r.stderr)
		}
	}
	if r.res.Hosts[0].Interrupted == "" || r.res.Hosts[0].Previous != commitOf("v1") {
		t.Errorf("result: %+v", r.res.Hosts[0])
	}
	if h.current() != commitOf("v2") || h.runningRelease() != commitOf("v2") {
		t.Errorf("current %s, running %s", h.current(), h.runningRelease())
	}
	if _, err := os.Stat(h.marker()); err == nil {
		t.Error("marker left after the repairing deploy")
	}

	// A rollback detects one too.
	h.writeDeadRun(t, commitOf("v9"), commitOf("v2"), false, 0)
	var rout, rlog bytes.Buffer
	_, err = Rollback(context.Background(), RollbackOptions{Target: Target{Hosts: []string{"t1"}, Dir: "app", Dial: fakeDial(h)}, HealthTimeout: 3 * time.Second,
		Stdout: &rout, Log: progress.New(&rlog), Getenv: credsEnv})
	if err != nil {
		t.Fatalf("rollback: %v\n%s", err, rlog.String())
	}
	if !strings.Contains(rlog.String(), "an earlier deploy was interrupted") || !strings.Contains(rlog.String(), "this rollback converges release "+short(commitOf("v1"))) {
		t.Errorf("rollback log:\n%s", rlog.String())
	}
	if _, err := os.Stat(h.marker()); err == nil || h.current() != commitOf("v1") {
		t.Errorf("after the rollback: marker %v, current %s", err, h.current())
	}
}

func TestConnectionDiesMidConverge(t *testing.T) {
	t.Run("rolled back over a new connection", func(t *testing.T) {
		h := newFakeHost(t, "t1")
		wantCode(t, deployTo(t, release(t, "v1", nil), []*fakeHost{h}, nil), 0)
		h.killOn = "releases/" + commitOf("v2") + " up -d"
		r := deployTo(t, release(t, "v2", nil), []*fakeHost{h}, nil)
		wantCode(t, r, exit.RolledBack)
		if hr := r.res.Hosts[0]; hr.Status != StatusRolledBack || hr.Handshakes != 2 {
			t.Errorf("host: %s, %d handshakes (want rolled-back over a second connection)", hr.Status, hr.Handshakes)
		}
		if !strings.Contains(r.stderr, "reconnecting to roll back") {
			t.Errorf("log:\n%s", r.stderr)
		}
		if h.current() != commitOf("v1") || h.runningRelease() != commitOf("v1") {
			t.Errorf("current %s, running %s", h.current(), h.runningRelease())
		}
		for _, p := range []string{h.marker(), filepath.Dir(h.lockFile())} {
			if _, err := os.Stat(p); err == nil {
				t.Errorf("%s left", p)
			}
		}
	})
	t.Run("host unreachable, then the next deploy repairs", func(t *testing.T) {
		h := newFakeHost(t, "t1")
		wantCode(t, deployTo(t, release(t, "v1", nil), []*fakeHost{h}, nil), 0)
		h.killOn, h.killRefuses = "releases/"+commitOf("v2")+" up -d", true
		r := deployTo(t, release(t, "v2", nil), []*fakeHost{h}, nil)
		wantCode(t, r, exit.LeftChanged)
		if !strings.Contains(r.err.Error(), "the next slipway deploy or rollback on this host detects it") {
			t.Errorf("error: %v", r.err)
		}
		// Nothing could be cleaned up: the marker and the lock stay.
		for _, p := range []string{h.marker(), h.lockFile()} {
			if _, err := os.Stat(p); err != nil {
				t.Errorf("%s: %v", p, err)
			}
		}
		h.mu.Lock()
		h.refuse = false
		h.mu.Unlock()
		r = deployTo(t, release(t, "v2", nil), []*fakeHost{h}, func(o *Options) { o.LockTTL, o.LockWait = time.Second, 10*time.Second })
		wantCode(t, r, 0)
		if !strings.Contains(r.stderr, "an earlier deploy was interrupted mid-converge") || !strings.Contains(r.stderr, "stale deploy lock") {
			t.Errorf("log:\n%s", r.stderr)
		}
		if h.current() != commitOf("v2") || h.runningRelease() != commitOf("v2") {
			t.Errorf("current %s, running %s", h.current(), h.runningRelease())
		}
		for _, p := range []string{h.marker(), filepath.Dir(h.lockFile())} {
			if _, err := os.Stat(p); err == nil {
				t.Errorf("%s left", p)
			}
		}
	})
}

// The release an interrupted deploy uploaded never served: the repairing
// deploy removes it, so a later rollback cannot pick it. A release that
// existed before the interrupted run (Fresh false) stays.
func TestInterruptedFreshReleaseIsRemoved(t *testing.T) {
	for _, fresh := range []bool{true, false} {
		t.Run(fmt.Sprintf("fresh=%v", fresh), func(t *testing.T) {
			h := newFakeHost(t, "t1")
			wantCode(t, deployTo(t, release(t, "v1", nil), []*fakeHost{h}, nil), 0)
			stuck := commitOf("v9")
			if err := os.MkdirAll(filepath.Join(h.dir(), "releases", stuck), 0o755); err != nil {
				t.Fatal(err)
			}
			m := remote.Deploying{Command: "deploy", Release: stuck, Previous: commitOf("v1"), Owner: "carol@agent3", PID: 999,
				Time: "2030-01-02T03:04:05Z", Token: "dead-token", Fresh: fresh}
			data, _ := json.Marshal(m)
			os.MkdirAll(filepath.Dir(h.marker()), 0o755)
			if err := os.WriteFile(h.marker(), data, 0o644); err != nil {
				t.Fatal(err)
			}
			r := deployTo(t, release(t, "v2", nil), []*fakeHost{h}, nil)
			wantCode(t, r, 0)
			want := []string{commitOf("v1"), commitOf("v2")}
			if !fresh {
				want = append(want, stuck)
			}
			got := h.releases()
			sort.Strings(got)
			sort.Strings(want)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("releases/ = %v, want %v\n%s", got, want, r.stderr)
			}
			if fresh && !strings.Contains(r.stderr, "removed release "+short(stuck)+" uploaded by the interrupted deploy") {
				t.Errorf("log:\n%s", r.stderr)
			}
			if h.current() != commitOf("v2") {
				t.Errorf("current %s", h.current())
			}
		})
	}
}
