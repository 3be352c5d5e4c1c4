package deploy

// Integration test of a deploy to several hosts: targets t1, t2 and t3, each
// its own sshd and dockerd in a network namespace, the sample app rolled out
// with the rolling strategy batch by batch.

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/progress"
	"github.com/slipway-dev/slipway/tools/internal/testenv"
)

func TestIntegrationMultiHost(t *testing.T) {
	tenv := rollFixtures(t)
	if len(tenv.Targets) < 3 {
		t.Fatalf("want 3 SSH targets, have %d", len(tenv.Targets))
	}
	tgs := tenv.Targets[:3]
	project, port := siteName("slwmulti")
	s := newRollSite(t, tenv, project, port, tgs...)
	s.release(t, "v1", rollSpec{Web: rollFix.web1, DBRev: "1"})
	// The release's web exits on t2 only: DOCKER_HOST, which each target's
	// sshd sets, names its engine's socket (.../targets/t2/docker.sock).
	s.release(t, "broken-on-t2", rollSpec{Web: rollFix.web2, DBRev: "1", BreakOn: "/" + tgs[1].Name + "/"})

	t.Run("three hosts at once", func(t *testing.T) {
		r := s.deploy(t, "v1", "rolling", func(o *Options) { o.Parallel = 3 })
		wantCode(t, r, 0)
		for _, tg := range tgs {
			if got := s.version(tg); got != "1.0.0" {
				t.Errorf("%s serves %q, want 1.0.0", tg.Name, got)
			}
			if got := s.current(tg); got != s.commit["v1"] {
				t.Errorf("%s: current -> %q, want v1", tg.Name, got)
			}
		}
		if len(r.res.Hosts) != 3 {
			t.Fatalf("result has %d hosts", len(r.res.Hosts))
		}
		for _, h := range r.res.Hosts {
			if h.Status != StatusDeployed || h.Handshakes != 1 {
				t.Errorf("%s: %s, %d handshakes", h.Host, h.Status, h.Handshakes)
			}
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	t.Run("broken middle host stops the rollout and rolls back the first", func(t *testing.T) {
		third := s.containers(t, tgs[2])
		// Every host must answer with a healthy version (old or new) at
		// every sample while the rollout runs and is rolled back: the
		// rolling strategy starts each new container beside the old one.
		poll := pollVersions(s, tgs, 100*time.Millisecond, "1.0.0", "2.0.0")
		r := s.deploy(t, "broken-on-t2", "rolling", nil) // one host at a time
		samples := poll()
		bad := 0
		seen := map[string]int{}
		for _, smp := range samples {
			seen[smp.host+" "+smp.got]++
			if !smp.ok {
				bad++
				if bad <= 10 {
					t.Errorf("%s at %s: %q, want a healthy version", smp.host, smp.at.Format("15:04:05.000"), smp.got)
				}
			}
		}
		t.Logf("polled every host every 100ms during the deploy: %d samples, %d without a healthy version; answers %v", len(samples), bad, seen)
		if len(samples) < 3*10 {
			t.Errorf("only %d samples", len(samples))
		}
		if seen[tgs[0].Host+" 2.0.0"] == 0 {
			t.Errorf("the first host was never seen on the new release: the polling missed the rollout")
		}
		wantCode(t, r, exit.RolledBack)
		want := []string{StatusRolledBack, StatusRolledBack, StatusSkipped}
		for i, h := range r.res.Hosts {
			if h.Status != want[i] {
				t.Errorf("host %d (%s): %s, want %s", i+1, h.Host, h.Status, want[i])
			}
		}
		for _, tg := range tgs {
			if got := s.version(tg); got != "1.0.0" {
				t.Errorf("%s serves %q, want 1.0.0", tg.Name, got)
			}
			if got := s.current(tg); got != s.commit["v1"] {
				t.Errorf("%s: current -> %q, want v1", tg.Name, got)
			}
		}
		if after := s.containers(t, tgs[2]); fmt.Sprint(after) != fmt.Sprint(third) {
			t.Errorf("the third host was touched: %v -> %v", third, after)
		}
		if !strings.Contains(r.stderr, "web: broken on purpose on this host") {
			t.Errorf("the failing container's log lines were not printed")
		}
		// The per-host table at the end.
		i := strings.LastIndex(r.stderr, "HOST")
		if i < 0 {
			t.Fatalf("no result table in the log")
		}
		table := r.stderr[i:]
		for j, tg := range tgs {
			if !strings.Contains(table, tg.Host) || !strings.Contains(table, want[j]) {
				t.Errorf("result table does not show %s as %s:\n%s", tg.Host, want[j], table)
			}
		}
		if !strings.Contains(r.err.Error(), tgs[1].Host) {
			t.Errorf("error does not name the broken host: %v", r.err)
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	t.Run("canary, then a batch of two; on-failure stop leaves the good hosts", func(t *testing.T) {
		r := s.deploy(t, "broken-on-t2", "rolling", func(o *Options) { o.Canary, o.Parallel, o.OnFailure = true, 2, "stop" })
		wantCode(t, r, exit.LeftChanged)
		want := []string{StatusDeployed, StatusRolledBack, StatusDeployed}
		versions := []string{"2.0.0", "1.0.0", "2.0.0"}
		for i, h := range r.res.Hosts {
			if h.Status != want[i] {
				t.Errorf("host %d (%s): %s, want %s", i+1, h.Host, h.Status, want[i])
			}
			if got := s.version(tgs[i]); got != versions[i] {
				t.Errorf("%s serves %q, want %s", tgs[i].Name, got, versions[i])
			}
		}
		if !strings.Contains(r.err.Error(), "left on the new release (--on-failure stop)") {
			t.Errorf("error: %v", r.err)
		}
	})
}

type versionSample struct {
	host, got string
	at        time.Time
	ok        bool
}

// pollVersions GETs /version on every host every interval until the
// returned stop is called, which returns the samples.
func pollVersions(s *rollSite, tgs []testenv.Target, interval time.Duration, healthy ...string) (stop func() []versionSample) {
	done := make(chan struct{})
	var mu sync.Mutex
	var out []versionSample
	var wg sync.WaitGroup
	for _, tg := range tgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(interval)
			defer t.Stop()
			for {
				at := time.Now()
				got := s.version(tg)
				smp := versionSample{host: tg.Host, got: got, at: at, ok: slices.Contains(healthy, got)}
				mu.Lock()
				out = append(out, smp)
				mu.Unlock()
				select {
				case <-done:
					return
				case <-t.C:
				}
			}
		}()
	}
	return func() []versionSample {
		close(done)
		wg.Wait()
		return out
	}
}

// TestRolloutBench is test/bench/rollout.sh (make bench): it runs only with
// SLIPWAY_ROLLOUT_BENCH=1 and prints TARGET lines. Measured: requests
// dropped by a rolling and by a recreate update of the sample app under
// continuous load through its proxy, and the wall time of one update on
// every target at --parallel N against the same update on each target one
// after another (the fan-out must not be serial). FANOUT_HOSTS=N uses the
// first N targets only; FANOUT_ONLY=1 skips the drop counts.
func TestRolloutBench(t *testing.T) {
	if os.Getenv("SLIPWAY_ROLLOUT_BENCH") != "1" {
		t.Skip("a benchmark: run it with SLIPWAY_ROLLOUT_BENCH=1 (test/bench/rollout.sh)")
	}
	tenv := rollFixtures(t)
	tgs := tenv.Targets
	if v := os.Getenv("FANOUT_HOSTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > len(tgs) {
			t.Fatalf("FANOUT_HOSTS=%q: want a number 1..%d (the targets in env.json; SLIPWAY_TARGETS=N test/scripts/services.sh up starts more)", v, len(tgs))
		}
		tgs = tgs[:n]
	}
	project, port := siteName("slwbench")
	s := newRollSite(t, tenv, project, port, tgs...)
	s.release(t, "v1", rollSpec{Web: rollFix.web1, DBRev: "1"})
	s.release(t, "v2", rollSpec{Web: rollFix.web2, DBRev: "2"})
	everywhere := func(o *Options) { o.Parallel = len(tgs) }
	// The first deploy pulls every image and initialises every database:
	// three hosts at a time, so that 10 cold hosts on 2 CPUs stay within
	// the health gate's timeout (not measured).
	wantCode(t, s.deploy(t, "v1", "recreate", func(o *Options) { o.Parallel = min(3, len(tgs)) }), 0)

	one := func(tg testenv.Target) func(*Options) {
		return func(o *Options) {
			o.Hosts = []string{tg.User + "@" + tg.Addr()}
		}
	}
	if os.Getenv("FANOUT_ONLY") != "1" {
		// Drops, on the first target alone.
		r, st := s.underLoad(t, tgs[0], rollMinRequests, func() run { return s.deploy(t, "v2", "rolling", one(tgs[0])) })
		wantCode(t, r, 0)
		verdict := "met"
		if st.Failed != 0 || st.Last != "2.0.0" {
			verdict = "MISSED"
		}
		fmt.Printf("TARGET rolling-drops: %d of %d requests dropped, new version serving at the end: %v (target 0): %s\n", st.Failed, st.Total(), st.Last == "2.0.0", verdict)
		r, st = s.underLoad(t, tgs[0], rollMinRequests, func() run { return s.deploy(t, "v1", "recreate", one(tgs[0])) })
		wantCode(t, r, 0)
		fmt.Printf("TARGET recreate-drops: %d of %d requests dropped by the recreate strategy on the same setup (for comparison, no target)\n", st.Failed, st.Total())
	}

	// Fan-out. Both sides start from v1 with v2's images already on every
	// host, so neither counts a pull the other does not.
	wantCode(t, s.deploy(t, "v2", "recreate", everywhere), 0)
	wantCode(t, s.deploy(t, "v1", "recreate", everywhere), 0)
	var seq time.Duration
	var seqHosts []string
	for _, tg := range tgs {
		start := time.Now()
		r := s.deploy(t, "v2", "recreate", one(tg))
		wantCode(t, r, 0)
		seq += time.Since(start)
		seqHosts = append(seqHosts, hostSeconds(r))
	}
	wantCode(t, s.deploy(t, "v1", "recreate", everywhere), 0)
	// The parallel run's log with each line's time since its start, to see
	// where the time goes (the phases of every host).
	var plog bytes.Buffer
	start := time.Now()
	r := s.deploy(t, "v2", "recreate", func(o *Options) {
		everywhere(o)
		o.Log = progress.New(stampWriter{w: &plog, start: start})
	})
	wantCode(t, r, 0)
	par := time.Since(start)
	ratio := par.Seconds() / seq.Seconds()
	verdict := "met"
	if ratio > 0.4 {
		verdict = "MISSED"
	}
	fmt.Printf("fan-out: one after another, per host: %s\n", strings.Join(seqHosts, " "))
	fmt.Printf("fan-out: at --parallel %d, per host: %s\n", len(tgs), hostSeconds(r))
	fmt.Printf("fan-out: log of the parallel run (seconds since its start):\n%s", plog.String())
	fmt.Printf("TARGET fanout-ratio: %d hosts at --parallel %d took %.1fs vs %.1fs one after another = %.2fx (perfect overlap %.2fx; target <= 0.40x at 10 hosts, measured with the %d test targets there are, which share this machine's %d CPUs): %s\n",
		len(tgs), len(tgs), par.Seconds(), seq.Seconds(), ratio, 1/float64(len(tgs)), len(tgs), runtime.NumCPU(), verdict)
}

// hostSeconds lists each host's deploy time from a result.
func hostSeconds(r run) string {
	var b []string
	for _, h := range r.res.Hosts {
		b = append(b, fmt.Sprintf("%s=%.1fs", h.Host, h.Seconds))
	}
	return strings.Join(b, " ")
}

// stampWriter prefixes each line with the seconds since start.
type stampWriter struct {
	w     io.Writer
	start time.Time
}

func (s stampWriter) Write(p []byte) (int, error) {
	for _, line := range strings.SplitAfter(string(p), "\n") {
		if line != "" {
			fmt.Fprintf(s.w, "%6.2f %s", time.Since(s.start).Seconds(), line)
		}
	}
	return len(p), nil
}
