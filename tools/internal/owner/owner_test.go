package owner

import (
	"os/exec"
	"testing"
	"time"
)

func TestSelfIsLocalAndAlive(t *testing.T) {
	o := Self()
	if !o.Local() {
		t.Fatalf("Self() = %+v is not Local", o)
	}
	if o.Dead() {
		t.Fatalf("this process (%v) judged dead", o)
	}
	reused := o
	reused.Start++
	if !reused.Dead() {
		t.Errorf("a pid with another start time (a reused pid) must be dead: %+v", reused)
	}
	other := o
	other.BootID = "another-boot"
	if other.Local() || other.Dead() {
		t.Errorf("an origin from another boot must be neither local nor judged dead: %+v", other)
	}
	if (Origin{PID: o.PID}).Dead() {
		t.Error("an origin without boot id/namespace/start (older slipway) must never be judged dead")
	}
}

// TestZombieAndGoneChild kills a child and checks it while it is a zombie
// (not reaped yet: as under a PID 1 that does not reap), then after reaping.
func TestZombieAndGoneChild(t *testing.T) {
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	o := of(procRoot, cmd.Process.Pid)
	if !o.Local() || o.Dead() {
		t.Fatalf("running child %+v: want local and alive", o)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		st, err := readStat(procRoot, o.PID)
		if err != nil {
			t.Fatalf("the unreaped child vanished: %v", err)
		}
		if st.state == 'Z' {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("child never became a zombie (state %c)", st.state)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !o.Dead() {
		t.Errorf("a zombie owner %+v must be dead", o)
	}
	_ = cmd.Wait()
	if !o.Dead() {
		t.Errorf("a reaped owner %+v must be dead", o)
	}
}

func TestParseStat(t *testing.T) {
	line := "1234 (a) b) weird) S 1 1 1 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 10 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n"
	st, err := parseStat(line)
	if err != nil || st.state != 'S' || st.start != 98765 {
		t.Fatalf("parseStat = %+v, %v; want state S start 98765", st, err)
	}
	for _, bad := range []string{"", "1 (x", "1 (x) S 1 2"} {
		if _, err := parseStat(bad); err == nil {
			t.Errorf("parseStat(%q): want an error", bad)
		}
	}
}
