package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/slipway-dev/slipway/tools/internal/owner"
	"strconv"
	"strings"
	"sync"
	"time"
)

// LockInfo is what <dir>/.slipway/lock/info holds: who deploys, from which
// build, since when. Token identifies the holder, so that releasing never
// removes a lock another deploy took over.
type LockInfo struct {
	Owner    string `json:"owner"` // user@agent-host
	PID      int    `json:"pid"`
	BuildURL string `json:"buildUrl,omitempty"`
	Command  string `json:"command,omitempty"`
	Time     string `json:"time"` // RFC 3339, the agent's clock
	Token    string `json:"token"`
	// Origin proves, from the same machine, that the holder died: its lock
	// is then taken over at once instead of after the TTL.
	Origin owner.Origin `json:"origin,omitzero"`
}

// LockHeldError says who holds the lock; it is returned when --lock-wait expires.
type LockHeldError struct {
	Info LockInfo
	Age  time.Duration // by the server's clock
}

func (e *LockHeldError) Error() string {
	owner := e.Info.Owner
	if owner == "" {
		owner = "an unknown deploy"
	}
	if e.Info.PID != 0 {
		owner += fmt.Sprintf(" (pid %d)", e.Info.PID)
	}
	since := e.Info.Time
	if since == "" {
		since = "?"
	}
	build := e.Info.BuildURL
	if build == "" {
		build = "no build URL"
	}
	return fmt.Sprintf("lock held by %s since %s (build %s); wait, or run slipway unlock if that deploy is dead", owner, since, build)
}

// ErrLockHeld matches a *LockHeldError with errors.Is.
var ErrLockHeld = errors.New("deploy lock held")

// Is makes errors.Is(err, ErrLockHeld) true.
func (e *LockHeldError) Is(target error) bool { return target == ErrLockHeld }

// Lock is a held deploy lock.
type Lock struct {
	mu    sync.Mutex
	h     *Host
	token string
}

// lockState is one attempt's outcome.
type lockState struct {
	acquired bool
	info     LockInfo
	age      time.Duration
}

// tryLock makes one atomic attempt: the info file is written into a private
// directory which is then renamed onto <dir>/.slipway/lock; rename(2) fails
// when the lock directory exists (it is never empty), so exactly one deploy wins.
func (h *Host) tryLock(ctx context.Context, info []byte) (*lockState, error) {
	script := h.dirVar() + `s="$d/.slipway"; l="$s/lock"; t="$s/.lock-` + randHex(6) + `"
mkdir -p "$s" || exit 3
mkdir "$t" || exit 3
cat > "$t/info" || { rm -rf "$t"; exit 3; }
if mv -T "$t" "$l" 2>/dev/null; then echo acquired; exit 0; fi
rm -rf "$t"
now=$(date +%s)
m=$(stat -c %Y "$l/info" 2>/dev/null || stat -c %Y "$l" 2>/dev/null || echo "$now")
echo "age=$((now - m))"
cat "$l/info" 2>/dev/null
exit 0
`
	out, err := h.runQuiet(ctx, "lock", script, strings.NewReader(string(info)))
	if err != nil {
		if ExitCode(err) == 3 {
			return nil, fmt.Errorf("creating the lock in %s/.slipway (is --dir writable by the SSH user?): %w", h.Dir, err)
		}
		return nil, fmt.Errorf("taking the deploy lock: %w", err)
	}
	return parseLockOutput(out), nil
}

func parseLockOutput(out []byte) *lockState {
	s := string(out)
	if strings.HasPrefix(s, "acquired") {
		return &lockState{acquired: true}
	}
	st := &lockState{}
	first, rest, _ := strings.Cut(s, "\n")
	if v, ok := strings.CutPrefix(first, "age="); ok {
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
			st.age = time.Duration(n) * time.Second
		}
	}
	_ = json.Unmarshal([]byte(strings.TrimSpace(rest)), &st.info)
	return st
}

// AcquireLock takes <dir>/.slipway/lock, polling for up to wait while another
// deploy holds it. A lock older than ttl (ttl > 0) is taken over with a
// warning. A dry run only reports whether the lock is free.
func (h *Host) AcquireLock(ctx context.Context, info LockInfo, wait, ttl time.Duration) (*Lock, error) {
	if info.Token == "" {
		info.Token = RandToken()
	}
	if h.DryRun {
		st, err := h.ReadLock(ctx)
		if err != nil {
			return nil, err
		}
		if st != nil {
			h.Planf("lock %s/.slipway/lock is held: %s", h.Dir, (&LockHeldError{Info: st.Info, Age: st.Age}).Error())
		} else {
			h.Planf("take lock %s/.slipway/lock (mkdir -p %s/.slipway, then an atomic rename), release it at the end", h.Dir, h.Dir)
		}
		return &Lock{h: h, token: info.Token}, nil
	}
	data, err := json.Marshal(info)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(wait)
	announced := false
	for {
		st, err := h.tryLock(ctx, data)
		if err != nil {
			return nil, err
		}
		if st.acquired {
			return &Lock{h: h, token: info.Token}, nil
		}
		held := &LockHeldError{Info: st.info, Age: st.age}
		if st.info.Origin.Dead() {
			h.logf("warning: taking over the deploy lock of a deploy that is gone (%s exited on this machine): %s", st.info.Origin, held.Error())
			if err := h.breakLock(ctx, st.info.Token); err != nil {
				return nil, err
			}
			continue
		}
		if ttl > 0 && st.age > ttl {
			h.logf("warning: taking over a stale deploy lock (%s old, over the %s TTL): %s", st.age, ttl, held.Error())
			if err := h.breakLock(ctx, st.info.Token); err != nil {
				return nil, err
			}
			continue
		}
		if !time.Now().Before(deadline) {
			return nil, held
		}
		if !announced {
			h.logf("waiting up to %s for the deploy lock: %s", time.Until(deadline).Round(time.Second), held.Error())
			announced = true
		}
		t := time.NewTimer(lockPoll(time.Until(deadline)))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("waiting for the deploy lock: %w", ctx.Err())
		case <-t.C:
		}
	}
}

func lockPoll(left time.Duration) time.Duration {
	const p = time.Second
	if left < p && left > 0 {
		return left
	}
	return p
}

// breakLock removes a stale lock, but only if it still holds token (another
// deploy may have taken it over meanwhile).
func (h *Host) breakLock(ctx context.Context, token string) error {
	script := h.dirVar() + `l="$d/.slipway/lock"; t="$d/.slipway/.stale-` + randHex(6) + `"
if [ -z ` + q(token) + ` ] || grep -qF ` + q(`"token":"`+token+`"`) + ` "$l/info" 2>/dev/null; then
  mv -T "$l" "$t" 2>/dev/null && rm -rf "$t"
fi
exit 0`
	if _, err := h.runQuiet(ctx, "break stale lock", script, nil); err != nil {
		return fmt.Errorf("removing the stale deploy lock: %w", err)
	}
	return nil
}

// Release removes the lock if it is still this deploy's. Call it with a fresh
// bounded context even after the deploy's context was cancelled.
func (l *Lock) Release(ctx context.Context) error {
	if l == nil {
		return nil
	}
	return l.ReleaseOn(ctx, l.host())
}

// ReleaseOn releases the lock through another Host value for the same server
// (a new connection, when the one that took it died).
func (l *Lock) ReleaseOn(ctx context.Context, h *Host) error {
	if h.DryRun {
		return nil
	}
	script := h.dirVar() + `l="$d/.slipway/lock"
if grep -qF ` + q(`"token":"`+l.token+`"`) + ` "$l/info" 2>/dev/null; then rm -rf "$l"; fi`
	if _, err := h.runQuiet(ctx, "unlock", script, nil); err != nil {
		return fmt.Errorf("releasing the deploy lock %s/.slipway/lock (run slipway unlock if it stays): %w", h.Dir, err)
	}
	return nil
}

// LockStatus is a lock as found on the server.
type LockStatus struct {
	Info LockInfo
	Age  time.Duration
}

// ReadLock returns the lock's holder, or nil when the lock is free.
func (h *Host) ReadLock(ctx context.Context) (*LockStatus, error) {
	script := h.dirVar() + `l="$d/.slipway/lock"
[ -e "$l" ] || exit 0
now=$(date +%s)
m=$(stat -c %Y "$l/info" 2>/dev/null || stat -c %Y "$l" 2>/dev/null || echo "$now")
echo "age=$((now - m))"
cat "$l/info" 2>/dev/null
exit 0`
	out, err := h.runQuiet(ctx, "read lock", script, nil)
	if err != nil {
		return nil, fmt.Errorf("reading the deploy lock: %w", err)
	}
	if len(strings.TrimSpace(string(out))) == 0 {
		return nil, nil
	}
	st := parseLockOutput(out)
	return &LockStatus{Info: st.info, Age: st.age}, nil
}

// ForceUnlock removes the lock whoever holds it, returning what it held (nil if free).
func (h *Host) ForceUnlock(ctx context.Context) (*LockStatus, error) {
	st, err := h.ReadLock(ctx)
	if err != nil || st == nil {
		return st, err
	}
	if h.DryRun {
		h.Planf("rm -rf %s/.slipway/lock", h.Dir)
		return st, nil
	}
	if err := h.breakLock(ctx, ""); err != nil {
		return st, err
	}
	return st, nil
}

func (h *Host) logf(format string, a ...any) {
	if h.Log != nil {
		h.Log.Printf(format, a...)
	}
}

// ErrLockLost says the lock's info no longer holds this deploy's token:
// another deploy took it over (it found it stale) or someone ran unlock.
var ErrLockLost = errors.New("the deploy lock is no longer this deploy's")

// Renew touches the lock's info, so that its age (its mtime) stays below
// every TTL while this deploy runs, but only while it still holds this
// deploy's token. It returns ErrLockLost when it does not.
func (l *Lock) Renew(ctx context.Context) error {
	h := l.host()
	if h.DryRun {
		return nil
	}
	script := h.dirVar() + `i="$d/.slipway/lock/info"
if grep -qF ` + q(`"token":"`+l.token+`"`) + ` "$i" 2>/dev/null; then touch "$i" && echo renewed; else echo lost; fi`
	out, err := h.runQuiet(ctx, "renew lock", script, nil)
	if err != nil {
		return fmt.Errorf("renewing the deploy lock %s/.slipway/lock: %w", h.Dir, err)
	}
	if strings.TrimSpace(string(out)) != "renewed" {
		return fmt.Errorf("%w (%s/.slipway/lock holds another token: taken over as stale, or removed by slipway unlock)", ErrLockLost, h.Dir)
	}
	return nil
}

// Token is the holder token this deploy wrote into the lock's info.
func (l *Lock) Token() string { return l.token }

// SetHost moves the lock's renewal and release to another Host value for
// the same server (a new connection, when the one that took it died).
func (l *Lock) SetHost(h *Host) {
	l.mu.Lock()
	l.h = h
	l.mu.Unlock()
}

func (l *Lock) host() *Host {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.h
}

// RenewInterval is how often a held lock is renewed: a quarter of the TTL,
// so that three renewals in a row may fail (a slow or briefly cut
// connection) before another deploy may take it over, bounded to 1s..1m.
// A negative TTL (never stale for this deploy) still renews every minute:
// another deploy's --lock-ttl decides whether it takes the lock over.
func RenewInterval(ttl time.Duration) time.Duration {
	iv := ttl / 4
	switch {
	case ttl <= 0 || iv > time.Minute:
		return time.Minute
	case iv < time.Second:
		return time.Second
	}
	return iv
}

// KeepAlive renews the lock every interval until the returned stop is
// called (stop waits for a renewal in flight). onLost is called once, from
// the renewal goroutine, when the lock turns out to be someone else's;
// renewal then stops. Failures to reach the server are logged and retried
// at the next tick.
func (l *Lock) KeepAlive(interval time.Duration, onLost func(error)) (stop func()) {
	if l == nil || l.h.DryRun {
		return func() {}
	}
	// Stopping cancels a renewal in flight: the release follows at once.
	parent, cancelAll := context.WithCancel(context.Background())
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-parent.Done():
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(parent, max(interval, 10*time.Second))
			err := l.Renew(ctx)
			cancel()
			switch {
			case parent.Err() != nil:
				return
			case errors.Is(err, ErrLockLost):
				if onLost != nil {
					onLost(err)
				}
				return
			case err != nil:
				l.host().logf("warning: %v (retrying in %s)", err, interval)
			}
		}
	}()
	return func() {
		cancelAll()
		<-finished
	}
}
