// Package remote holds the server-side operations of a deploy, each one shell
// script run over one SSH connection: probing Docker and Compose, the deploy
// lock, the atomic release upload, the credential-scoped pull, compose, the
// container inspection behind the health gate, the `current` switch and pruning.
//
// The scripts are POSIX sh and need nothing on the server but coreutils, tar,
// Docker and Compose. Nothing secret is ever part of a command line: secrets
// travel on a session's stdin.
package remote

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/slipway-dev/slipway/tools/internal/progress"
	"github.com/slipway-dev/slipway/tools/internal/sshx"
)

// Conn is what the operations need from an SSH connection: commands (one
// session each) and TCP connections opened from the server's side. *sshx.Conn
// implements it; unit tests use a fake running `sh -c` locally.
type Conn interface {
	Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// ComposeKind is the Compose flavour found on the server.
type ComposeKind string

// Compose flavours: the v2 CLI plugin or the v1 Python tool.
const (
	ComposeV2 ComposeKind = "v2"
	ComposeV1 ComposeKind = "v1"
)

// Host runs the operations on one server. Dir is absolute after Probe.
// With DryRun set, read-only operations still run (so the plan is accurate),
// while every change is printed to Plan instead of being made.
type Host struct {
	Name    string
	Conn    Conn
	Dir     string
	Project string
	Kind    ComposeKind
	DryRun  bool
	Plan    io.Writer
	Log     *progress.Logger
	// Lib, when set, runs compose commands through Compose's own code over
	// the engine API instead of a Compose on the server.
	Lib Library
	// eng, when set (UseEngineAPI), carries reads, pulls and image removal
	// through the engine API instead of the docker CLI on the server.
	eng *engineConn
}

// Facts are what Probe found on the server.
type Facts struct {
	Dir           string      // absolute deploy directory
	DirExists     bool        //
	Writable      bool        // Dir (or its nearest existing parent) is writable
	DockerVersion string      // engine version
	Compose       ComposeKind // "" when neither flavour exists
	ComposeVer    string      // v2 only (v1's version costs a Python start-up)
	// EngineSocket is the engine's socket as the SSH user's docker CLI would
	// use it: DOCKER_HOST's when that is unix://, else the default.
	EngineSocket string
	Current      string // commit `current` points to, "" if none
	// Project is the compose project the current release runs under, from
	// its release.json; "" when there is no current release (or it has none).
	Project string
}

// ErrNoDocker and friends classify Probe failures (nothing changed: exit 1).
var (
	ErrNoDocker  = errors.New("docker not found on the server")
	ErrNoEngine  = errors.New("docker engine not reachable on the server")
	ErrNoCompose = errors.New("compose not found on the server")
)

// q quotes one word for the remote shell.
func q(s string) string { return sshx.Quote(s) }

// randHex returns n random bytes in hex, for temp names and lock tokens.
func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// RandToken is a fresh random token (lock ownership, temp names).
func RandToken() string { return randHex(8) }

// resolveDir is the shell snippet setting $d to the absolute deploy directory:
// "~", "~/x" and relative paths are under the remote user's home, as scp does.
func resolveDir(dir string) string {
	return "d=" + q(dir) + `
case "$d" in
  "~") d=$HOME ;;
  "~/"*) d=$HOME/${d#"~/"} ;;
  /*) ;;
  *) d=$HOME/$d ;;
esac
`
}

// dirVar sets $d to the (already absolute) deploy directory.
func (h *Host) dirVar() string { return "d=" + q(h.Dir) + "\n" }

// run runs a script; its stderr goes to the host's log line by line, stdout is returned.
func (h *Host) run(ctx context.Context, op, script string, stdin io.Reader) ([]byte, error) {
	var out bytes.Buffer
	w := h.logWriter()
	defer w.Close()
	err := h.Conn.Run(ctx, label(op)+script, stdin, &out, w)
	return out.Bytes(), concise(err)
}

// runQuiet runs a script and keeps its stderr out of the log (it is still in
// the *sshx.ExitError on failure).
func (h *Host) runQuiet(ctx context.Context, op, script string, stdin io.Reader) ([]byte, error) {
	var out bytes.Buffer
	err := h.Conn.Run(ctx, label(op)+script, stdin, &out, nil)
	return out.Bytes(), concise(err)
}

// exitError is a remote script's non-zero exit, told without the script
// (the step's own error says which step it was): the status and the last
// lines of its stderr.
type exitError struct{ ee *sshx.ExitError }

func (e *exitError) Error() string {
	msg := fmt.Sprintf("exit status %d", e.ee.Code)
	if e.ee.Signal != "" {
		msg = "killed by signal " + e.ee.Signal
	}
	if tail := tailLines(e.ee.Stderr, 5); tail != "" {
		msg += ": " + tail
	}
	return msg
}

func (e *exitError) Unwrap() error { return e.ee }

func concise(err error) error {
	var ee *sshx.ExitError
	if errors.As(err, &ee) {
		return &exitError{ee}
	}
	return err
}

// tailLines keeps the last n non-empty lines of s, joined by " | ".
func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	var keep []string
	for i := len(lines) - 1; i >= 0 && len(keep) < n; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			keep = append([]string{l}, keep...)
		}
	}
	return strings.Join(keep, " | ")
}

// label starts every script with a comment naming the step, so that an error
// quoting the command line (abbreviated) says which step it was.
func label(op string) string { return "# slipway " + op + "\n" }

func (h *Host) logWriter() io.WriteCloser {
	if h.Log == nil {
		return nopWriteCloser{io.Discard}
	}
	return h.Log.Writer()
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// Planf prints a change that a dry run would make.
func (h *Host) Planf(format string, a ...any) {
	if h.Plan == nil {
		return
	}
	msg := fmt.Sprintf(format, a...)
	for _, line := range strings.Split(strings.TrimRight(msg, "\n"), "\n") {
		fmt.Fprintf(h.Plan, "[%s] %s\n", h.Name, line)
	}
}

// ExitCode returns the remote exit status in err, or -1 if err is not a remote exit.
func ExitCode(err error) int {
	var ee *sshx.ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return -1
}

// Probe finds the deploy directory, Docker, Compose and the current release.
// It changes nothing.
func (h *Host) Probe(ctx context.Context) (*Facts, error) {
	script := resolveDir(h.Dir) + `echo "dir=$d"
if [ -d "$d" ]; then echo exists=1; [ -w "$d" ] && echo writable=1
else
  p=$d; while [ ! -e "$p" ]; do p=$(dirname "$p"); done
  [ -d "$p" ] && [ -w "$p" ] && echo writable=1
fi
echo "dockerhost=${DOCKER_HOST:-}"
if command -v docker >/dev/null 2>&1; then
  if v=$(docker version --format '{{.Server.Version}}' 2>&1); then echo "docker=$v"
  else echo "dockererr=$(printf '%s' "$v" | tr '\n' ' ')"; fi
  if v=$(docker compose version --short 2>/dev/null); then echo "compose=v2"; echo "composever=$v"
  elif command -v docker-compose >/dev/null 2>&1; then echo "compose=v1"; fi
fi
c=$(readlink "$d/current" 2>/dev/null) && echo "current=$c"
if [ -r "$d/current/release.json" ]; then
  while IFS= read -r l; do
    case $l in '  "project": "'*) l=${l#'  "project": "'}; echo "project=${l%%\"*}"; break ;; esac
  done < "$d/current/release.json"
fi
exit 0
`
	out, err := h.runQuiet(ctx, "probe", script, nil)
	if err != nil {
		return nil, fmt.Errorf("probing the server: %w", err)
	}
	f := &Facts{}
	var dockerErr string
	for _, line := range strings.Split(string(out), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		switch k {
		case "dir":
			f.Dir = v
		case "exists":
			f.DirExists = true
		case "writable":
			f.Writable = true
		case "dockerhost":
			f.EngineSocket = engineSocket(strings.TrimSpace(v))
		case "docker":
			f.DockerVersion = strings.TrimSpace(v)
		case "dockererr":
			dockerErr = strings.TrimSpace(v)
		case "compose":
			f.Compose = ComposeKind(v)
		case "composever":
			f.ComposeVer = strings.TrimSpace(v)
		case "current":
			f.Current = releaseName(v)
		case "project":
			f.Project = strings.TrimSpace(v)
		}
	}
	if f.Dir == "" {
		return nil, fmt.Errorf("probing the server: unexpected output %q", abbreviate(string(out), 200))
	}
	h.Dir = f.Dir
	h.Kind = f.Compose
	switch {
	case f.DockerVersion == "" && dockerErr == "":
		return f, fmt.Errorf("%w: install Docker Engine (and Compose) on the server and make sure the SSH user can run `docker`", ErrNoDocker)
	case f.DockerVersion == "":
		return f, fmt.Errorf("%w: `docker version` said: %s; check that the engine runs and that the SSH user may use it (docker group, DOCKER_HOST)", ErrNoEngine, dockerErr)
	case f.Compose == "":
		return f, fmt.Errorf("%w: install the Compose plugin (`docker compose`, preferred) or docker-compose v1 on the server", ErrNoCompose)
	}
	return f, nil
}

// engineSocket is the socket path of a server's DOCKER_HOST value; a
// non-unix DOCKER_HOST (tcp://) is not reachable through the SSH
// connection's stream-local channels, so the default socket is tried.
func engineSocket(dockerHost string) string {
	if p, ok := strings.CutPrefix(dockerHost, "unix://"); ok && p != "" {
		return p
	}
	return "/var/run/docker.sock"
}

// releaseName turns a `current` link target (releases/<commit>, maybe
// absolute) into the release name.
func releaseName(target string) string {
	target = strings.TrimRight(strings.TrimSpace(target), "/")
	if i := strings.LastIndexByte(target, '/'); i >= 0 {
		return target[i+1:]
	}
	return target
}

// ComposeArgs is the compose command line (words) for a release directory:
// every compose command names the project, the release's file and directory,
// so containers and named volumes carry over between releases.
func (h *Host) ComposeArgs(release string, args ...string) []string {
	rel := h.Dir + "/releases/" + release
	var base []string
	if h.Kind == ComposeV1 {
		base = []string{"docker-compose"}
	} else {
		base = []string{"docker", "compose"}
	}
	base = append(base, "-p", h.Project, "-f", rel+"/compose.yaml", "--project-directory", rel)
	return append(base, args...)
}

// Compose runs a compose command for release; output goes to the log. A
// change: a dry run prints it.
func (h *Host) Compose(ctx context.Context, release string, args ...string) error {
	if h.Lib != nil {
		return fmt.Errorf("compose %s: %w", strings.Join(args, " "), ErrNeedsComposeCLI)
	}
	cmd := sshx.QuoteArgs(h.ComposeArgs(release, args...)...)
	if h.DryRun {
		h.Planf("%s", cmd)
		return nil
	}
	// Compose v1 reads .env from the project directory; cd there as well so
	// that relative paths in a user's hook behave as in the release.
	script := "cd " + q(h.Dir+"/releases/"+release) + " && " + cmd
	if _, err := h.run(ctx, "compose", script, nil); err != nil {
		name := "docker compose"
		if h.Kind == ComposeV1 {
			name = "docker-compose"
		}
		return fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return nil
}

// SwitchCurrent points <dir>/current at releases/<release> atomically
// (a new symlink renamed over the old one).
func (h *Host) SwitchCurrent(ctx context.Context, release string) error {
	script := h.dirVar() + `cd "$d" && ln -sfn ` + q("releases/"+release) + ` .current.tmp && mv -T .current.tmp current`
	if h.DryRun {
		h.Planf("switch %s/current -> releases/%s (ln -sfn + mv -T)", h.Dir, release)
		return nil
	}
	if _, err := h.runQuiet(ctx, "switch current", script, nil); err != nil {
		return fmt.Errorf("switching %s/current to %s: %w", h.Dir, release, err)
	}
	return nil
}

// RemoveCurrent deletes the current link (a first release taken down again).
func (h *Host) RemoveCurrent(ctx context.Context) error {
	if h.DryRun {
		h.Planf("rm -f %s/current", h.Dir)
		return nil
	}
	if _, err := h.runQuiet(ctx, "remove current", h.dirVar()+`rm -f "$d/current"`, nil); err != nil {
		return fmt.Errorf("removing %s/current: %w", h.Dir, err)
	}
	return nil
}

// RemoveRelease deletes releases/<release> (a release that never became
// current, after a failed deploy).
func (h *Host) RemoveRelease(ctx context.Context, release string) error {
	if h.DryRun {
		h.Planf("rm -rf %s/releases/%s", h.Dir, release)
		return nil
	}
	script := h.dirVar() + `c=$(readlink "$d/current" 2>/dev/null || true)
[ "${c##*/}" = ` + q(release) + ` ] && exit 0
rm -rf "$d/releases/"` + q(release)
	if _, err := h.runQuiet(ctx, "remove release", script, nil); err != nil {
		return fmt.Errorf("removing release %s: %w", release, err)
	}
	return nil
}

func abbreviate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
