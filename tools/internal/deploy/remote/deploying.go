package remote

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/slipway-dev/slipway/tools/internal/owner"
	"strings"
	"time"
)

// Deploying is <dir>/.slipway/deploying: written under the lock before a
// deploy or rollback starts converging the host, removed when the host is
// consistent again (on the new release, or back on the previous one). Found
// by a later deploy, it means one died mid-converge (connection cut, agent
// killed) and the containers may run a mix of two releases while `current`
// still names the previous one.
type Deploying struct {
	Command  string `json:"command"`            // deploy, rollback
	Release  string `json:"release"`            // what it was converging to
	Previous string `json:"previous,omitempty"` // `current` when it started
	Owner    string `json:"owner"`
	PID      int    `json:"pid"`
	BuildURL string `json:"buildUrl,omitempty"`
	Time     string `json:"time"`            // RFC 3339, the agent's clock
	Token    string `json:"token,omitempty"` // the lock token it held
	// Fresh: releases/<Release> was uploaded by that run, so it never served
	// here; the run that repairs the host removes it (else a later rollback
	// could pick a release that was never healthy).
	Fresh bool `json:"fresh,omitempty"`
	// Origin of the process that wrote it (see owner.Origin.Dead).
	Origin owner.Origin `json:"origin,omitzero"`
}

// String names what was (or is being) converged, by whom and when.
func (m *Deploying) String() string {
	prev := m.Previous
	if prev == "" {
		prev = "none"
	}
	s := fmt.Sprintf("%s of release %s (previous %s) by %s", m.Command, shortName(m.Release), shortName(prev), m.Owner)
	if m.PID != 0 {
		s += fmt.Sprintf(" (pid %d)", m.PID)
	}
	s += " started " + m.Time
	if m.BuildURL != "" {
		s += " (build " + m.BuildURL + ")"
	}
	return s
}

func shortName(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}

// WriteDeploying writes the marker atomically (a temp file renamed).
func (h *Host) WriteDeploying(ctx context.Context, m Deploying) error {
	if m.Time == "" {
		m.Time = time.Now().UTC().Format(time.RFC3339)
	}
	if h.DryRun {
		h.Planf("write %s/.slipway/deploying (removed when the host is consistent again)", h.Dir)
		return nil
	}
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	script := h.dirVar() + `s="$d/.slipway"; t="$s/.deploying-` + randHex(6) + `"
mkdir -p "$s" && cat > "$t" && mv -f "$t" "$s/deploying" || { rm -f "$t"; exit 3; }`
	if _, err := h.runQuiet(ctx, "mark deploying", script, strings.NewReader(string(data))); err != nil {
		return fmt.Errorf("writing %s/.slipway/deploying (is --dir writable by the SSH user?): %w", h.Dir, err)
	}
	return nil
}

// ClearDeploying removes the marker.
func (h *Host) ClearDeploying(ctx context.Context) error {
	if h.DryRun {
		return nil
	}
	if _, err := h.runQuiet(ctx, "clear deploying", h.dirVar()+`rm -f "$d/.slipway/deploying"`, nil); err != nil {
		return fmt.Errorf("removing %s/.slipway/deploying: %w", h.Dir, err)
	}
	return nil
}

// ReadDeploying returns the marker, or nil when there is none. An
// unreadable marker is still reported (with what could be parsed).
func (h *Host) ReadDeploying(ctx context.Context) (*Deploying, error) {
	script := h.dirVar() + `f="$d/.slipway/deploying"
[ -e "$f" ] || exit 0
echo present
cat "$f" 2>/dev/null
exit 0`
	out, err := h.runQuiet(ctx, "read deploying", script, nil)
	if err != nil {
		return nil, fmt.Errorf("reading %s/.slipway/deploying: %w", h.Dir, err)
	}
	rest, ok := strings.CutPrefix(string(out), "present\n")
	if !ok {
		return nil, nil
	}
	m := &Deploying{}
	if err := json.Unmarshal([]byte(strings.TrimSpace(rest)), m); err != nil {
		m.Command, m.Owner = "a deploy", "an unknown owner"
	}
	return m, nil
}

// WaitComposeIdle waits, up to timeout, until no compose command of the
// project on a release of this directory runs on the server any more: one
// that a cut connection left running goes on converging (sshd does not stop
// it), and a converge started beside it would race it. It reports whether
// it had to wait; without pgrep on the server it returns at once.
func (h *Host) WaitComposeIdle(ctx context.Context, timeout time.Duration) (bool, error) {
	if h.DryRun || h.Project == "" {
		return false, nil
	}
	// The pattern is assembled at run time, so that this script's own
	// command line does not match it.
	script := h.dirVar() + `p=` + q(h.Project) + `
command -v pgrep >/dev/null 2>&1 || { echo idle; exit 0; }
pat="-p $p -f $d/releases/"
end=$(( $(date +%s) + ` + fmt.Sprint(int(timeout.Seconds())) + ` ))
w=
while pgrep -u "$(id -u)" -f -- "$pat" >/dev/null 2>&1; do
  if [ "$(date +%s)" -ge "$end" ]; then echo busy; exit 0; fi
  w=waited; sleep 1
done
echo "idle $w"`
	out, err := h.runQuiet(ctx, "wait for compose", script, nil)
	if err != nil {
		return false, fmt.Errorf("looking for compose commands still running on the server: %w", err)
	}
	switch s := strings.TrimSpace(string(out)); {
	case s == "busy":
		return true, fmt.Errorf("a compose command of project %s from an interrupted run is still running on the server after %s", h.Project, timeout)
	case strings.HasSuffix(s, "waited"):
		return true, nil
	}
	return false, nil
}
