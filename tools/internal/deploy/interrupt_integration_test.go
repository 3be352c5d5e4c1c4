package deploy

// Integration tests of issue 8's "connection cut mid-converge" and "locks"
// rows against the real test services: the sample app on target t1 over
// real SSH, the converge (`docker-compose up -d`) cut while it recreates
// the web container, the lock renewed and taken over on the real sshd.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/deploy/remote"
	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/progress"
	"github.com/slipway-dev/slipway/tools/internal/sshx"
	"github.com/slipway-dev/slipway/tools/internal/testenv"
)

// convergeCut closes the SSH connection as soon as the converge of release
// says it is (re)creating a container: the host is then mid-way between
// two releases.
type convergeCut struct {
	Conn
	release string
	once    sync.Once
	at      atomic.Pointer[time.Time]
}

func (c *convergeCut) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	if strings.Contains(cmd, "releases/"+c.release+" up -d") {
		stderr = io.MultiWriter(nilSafe(stderr), writerFunc(func(p []byte) {
			if strings.Contains(string(p), "Recreating") || strings.Contains(string(p), "Creating") {
				c.once.Do(func() {
					now := time.Now()
					c.at.Store(&now)
					c.Conn.Close()
				})
			}
		}))
	}
	return c.Conn.Run(ctx, cmd, stdin, stdout, stderr)
}

type writerFunc func([]byte)

func (f writerFunc) Write(p []byte) (int, error) { f(p); return len(p), nil }

func nilSafe(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// cutDial wraps the site's dial: the first connection gets a convergeCut;
// with refuse set, every dial after the cut fails (the host unreachable).
func cutDial(base DialFunc, release string, refuse bool) (DialFunc, *convergeCut, *atomic.Int32) {
	cut := &convergeCut{release: release}
	var n atomic.Int32
	return func(ctx context.Context, host string, o sshx.Options) (Conn, error) {
		if n.Add(1) == 1 {
			c, err := base(ctx, host, o)
			if err != nil {
				return nil, err
			}
			cut.Conn = c
			return cut, nil
		}
		if refuse && cut.at.Load() != nil {
			return nil, fmt.Errorf("dial tcp %s: connect: no route to host (refused by the test after the cut)", host)
		}
		return base(ctx, host, o)
	}, cut, &n
}

func (s *rollSite) marker(tg testenv.Target) string {
	return filepath.Join(s.dir(tg), ".slipway", "deploying")
}
func (s *rollSite) lockDir(tg testenv.Target) string {
	return filepath.Join(s.dir(tg), ".slipway", "lock")
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// waitServing polls the site's /version until it answers want (or a minute
// passes) and returns when it did.
func (s *rollSite) waitServing(t *testing.T, tg testenv.Target, want string) time.Time {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		got := s.version(tg)
		if got == want {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("serving %q, want %q", got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestIntegrationInterruptedDeploy(t *testing.T) {
	tenv := rollFixtures(t)
	tg := tenv.Targets[0]
	project, port := siteName("slwcut")
	s := newRollSite(t, tenv, project, port, tg)
	s.release(t, "v1", rollSpec{Web: rollFix.web1, DBRev: "1"})
	s.release(t, "v2", rollSpec{Web: rollFix.web2, DBRev: "1"})
	wantCode(t, s.deploy(t, "v1", "recreate", nil), 0)
	s.waitServing(t, tg, "1.0.0")

	t.Run("connection cut during converge rolls back over a new connection", func(t *testing.T) {
		dial, cut, dials := cutDial(s.target().Dial, s.commit["v2"], false)
		r := s.deploy(t, "v2", "recreate", func(o *Options) { o.Dial = dial })
		at := cut.at.Load()
		if at == nil {
			t.Fatalf("the converge never printed Creating/Recreating: nothing was cut\n%s", r.stderr)
		}
		wantCode(t, r, exit.RolledBack)
		back := s.waitServing(t, tg, "1.0.0")
		testenv.Recovery(t, back.Sub(*at))
		// The compose command the cut left running on the server must not
		// finish its converge after the rollback (slipway waits for it).
		for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
			if got := s.version(tg); got != "1.0.0" {
				t.Fatalf("after the rollback the host went to %q", got)
			}
		}
		if h := r.res.Hosts[0]; h.Status != StatusRolledBack || h.Handshakes != 2 || dials.Load() != 2 {
			t.Errorf("host %s with %d handshakes over %d dials: want rolled-back over a second connection", h.Status, h.Handshakes, dials.Load())
		}
		if !strings.Contains(r.stderr, "reconnecting to roll back") {
			t.Errorf("the log does not say it reconnected")
		}
		if got := s.current(tg); got != s.commit["v1"] {
			t.Errorf("current -> %s, want v1", got)
		}
		if exists(s.lockDir(tg)) || exists(s.marker(tg)) {
			t.Errorf("left on the host: lock %v, deploying marker %v", exists(s.lockDir(tg)), exists(s.marker(tg)))
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	t.Run("connection cut during converge and host unreachable: the next deploy repairs", func(t *testing.T) {
		dial, cut, _ := cutDial(s.target().Dial, s.commit["v2"], true)
		r := s.deploy(t, "v2", "recreate", func(o *Options) { o.Dial = dial })
		at := cut.at.Load()
		if at == nil {
			t.Fatalf("nothing was cut\n%s", r.stderr)
		}
		wantCode(t, r, exit.LeftChanged)
		if !strings.Contains(r.err.Error(), "the next slipway deploy or rollback on this host detects it") {
			t.Errorf("error does not say what repairs the host: %v", r.err)
		}
		// Nothing could be cleaned up over the refused dials: the marker and
		// the lock (last renewed before the cut) stay on the host.
		if !exists(s.marker(tg)) || !exists(s.lockDir(tg)) {
			t.Fatalf("after the cut: marker %v, lock %v; want both left", exists(s.marker(tg)), exists(s.lockDir(tg)))
		}
		sts, err := Status(context.Background(), InfoOptions{Target: s.target(), Stdout: io.Discard, Log: progress.Discard()})
		// The run that left the marker is this test process (alive) and its
		// lock is fresh: status sees a converge, not provably an interrupted
		// one, so it may exit 0; 5 once the lock ages past the TTL.
		if (err != nil && exit.Code(err) != exit.LeftChanged) || sts[0].Deploying == nil || sts[0].Deploying.Release != s.commit["v2"] {
			t.Errorf("status does not show the converge: %v %+v", err, sts)
		}
		// The next deploy waits for the dead run's lock to go stale (a short
		// TTL here; 5m by default), warns, and converges the host.
		r = s.deploy(t, "v2", "recreate", func(o *Options) { o.LockTTL, o.LockWait = 3*time.Second, 2*time.Minute })
		wantCode(t, r, 0)
		back := s.waitServing(t, tg, "2.0.0")
		testenv.Recovery(t, back.Sub(*at))
		for _, want := range []string{"stale deploy lock", "an earlier deploy was interrupted mid-converge", "which repairs it"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("log lacks %q", want)
			}
		}
		if h := r.res.Hosts[0]; h.Interrupted == "" || h.Previous != s.commit["v1"] {
			t.Errorf("result %+v: want the interrupted run named and v1 as previous", h)
		}
		if got := s.current(tg); got != s.commit["v2"] {
			t.Errorf("current -> %s, want v2", got)
		}
		if exists(s.lockDir(tg)) || exists(s.marker(tg)) {
			t.Errorf("left on the host: lock %v, marker %v", exists(s.lockDir(tg)), exists(s.marker(tg)))
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	t.Run("killed holder: lock and marker taken over after the TTL", func(t *testing.T) {
		// A deploy killed with -9 mid-converge: it took the lock, wrote its
		// marker, and its connection vanished without a release.
		h := s.remoteHost(t, tg)
		if _, err := h.AcquireLock(context.Background(), remote.LockInfo{Owner: "killed@agent", PID: 4242, Time: time.Now().UTC().Format(time.RFC3339)}, 0, time.Minute); err != nil {
			t.Fatal(err)
		}
		st, _ := h.ReadLock(context.Background())
		if err := h.WriteDeploying(context.Background(), remote.Deploying{Command: "deploy", Release: s.commit["v1"], Previous: s.commit["v2"], Owner: "killed@agent", PID: 4242, Token: st.Info.Token}); err != nil {
			t.Fatal(err)
		}
		h.Conn.(Conn).Close()
		killed := time.Now()
		const ttl = 4 * time.Second
		r := s.deploy(t, "v1", "recreate", func(o *Options) { o.LockTTL, o.LockWait = ttl, 2*time.Minute })
		wantCode(t, r, 0)
		back := s.waitServing(t, tg, "1.0.0")
		testenv.Recovery(t, back.Sub(killed))
		if back.Sub(killed) < ttl {
			t.Errorf("served again %s after the kill: the lock was taken over before its %s TTL", back.Sub(killed), ttl)
		}
		for _, want := range []string{"stale deploy lock", "killed@agent", "an earlier deploy was interrupted mid-converge"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("log lacks %q", want)
			}
		}
		if exists(s.lockDir(tg)) || exists(s.marker(tg)) {
			t.Errorf("left on the host: lock %v, marker %v", exists(s.lockDir(tg)), exists(s.marker(tg)))
		}
	})

	t.Run("lock renewed over SSH outlives its TTL, then is taken over once renewal stops", func(t *testing.T) {
		const ttl = 3 * time.Second
		h1 := s.remoteHost(t, tg)
		l1, err := h1.AcquireLock(context.Background(), remote.LockInfo{Owner: "renewer@agent", PID: 1}, 0, ttl)
		if err != nil {
			t.Fatal(err)
		}
		var lost atomic.Bool
		stop := l1.KeepAlive(remote.RenewInterval(ttl), func(error) { lost.Store(true) })
		time.Sleep(2*ttl + time.Second)
		h2 := s.remoteHost(t, tg)
		_, err = h2.AcquireLock(context.Background(), remote.LockInfo{Owner: "other@agent", PID: 2}, 0, ttl)
		if !errors.Is(err, remote.ErrLockHeld) {
			t.Fatalf("a lock renewed every %s was not held after %s: %v", remote.RenewInterval(ttl), 2*ttl+time.Second, err)
		}
		stop()
		stopped := time.Now()
		l2, err := h2.AcquireLock(context.Background(), remote.LockInfo{Owner: "other@agent", PID: 2}, time.Minute, ttl)
		if err != nil {
			t.Fatalf("the unrenewed lock was not taken over: %v", err)
		}
		testenv.Recovery(t, time.Since(stopped))
		if err := l1.Renew(context.Background()); !errors.Is(err, remote.ErrLockLost) {
			t.Errorf("renewing the taken-over lock: %v, want ErrLockLost", err)
		}
		if lost.Load() {
			t.Errorf("renewal reported the lock lost while it was held")
		}
		if err := l2.Release(context.Background()); err != nil || exists(s.lockDir(tg)) {
			t.Errorf("release: %v, lock left %v", err, exists(s.lockDir(tg)))
		}
	})
}

// remoteHost is a probed remote.Host on a new SSH connection to tg (closed
// at the end of the test).
func (s *rollSite) remoteHost(t *testing.T, tg testenv.Target) *remote.Host {
	t.Helper()
	target := s.target()
	host := tg.User + "@" + tg.Addr()
	c, err := target.Dial(context.Background(), host, target.SSH)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	h := &remote.Host{Name: host, Conn: c, Dir: s.dir(tg), Log: progress.New(testWriter{t})}
	if _, err := h.Probe(context.Background()); err != nil {
		t.Fatal(err)
	}
	return h
}
