// Package composecli runs the agent's Compose CLI: `docker compose` (v2+) when
// the plugin answers, else the standalone `docker-compose` (v1). slipway uses
// it only for what Compose alone knows how to do (build test-only images,
// create a stack's networks, volumes and containers, take it down); waiting,
// logs and copying go through the Engine API so they never parse CLI output.
package composecli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/progress"
)

// EnvOverride names the environment variable that forces a Compose command,
// e.g. "docker-compose" or "docker compose" (tests, odd installations).
const EnvOverride = "SLIPWAY_COMPOSE"

// CLI is a detected Compose command.
type CLI struct {
	Argv    []string // command and fixed leading args: ["docker", "compose"] or ["docker-compose"]
	Version string   // as printed by `version --short`, e.g. "2.29.1" or "1.29.2"
	Major   int      // 1 for docker-compose v1, 2+ for the plugin
}

// V1 reports whether this is the legacy Python docker-compose, whose file
// schema and flags differ (no top-level name:, no depends_on.required).
func (c *CLI) V1() bool { return c.Major < 2 }

func (c *CLI) String() string { return strings.Join(c.Argv, " ") + " " + c.Version }

// Detect finds the Compose CLI: $SLIPWAY_COMPOSE if set, else `docker compose`
// v2+, else `docker-compose`. The error says how to install one.
func Detect(ctx context.Context) (*CLI, error) {
	if o := strings.TrimSpace(os.Getenv(EnvOverride)); o != "" {
		c, err := probe(ctx, strings.Fields(o))
		if err != nil {
			return nil, fmt.Errorf("%s=%q: %w", EnvOverride, o, err)
		}
		return c, nil
	}
	var errs []string
	for _, argv := range [][]string{{"docker", "compose"}, {"docker-compose"}} {
		c, err := probe(ctx, argv)
		if err == nil {
			return c, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		errs = append(errs, fmt.Sprintf("%s: %v", strings.Join(argv, " "), err))
	}
	return nil, fmt.Errorf("no Docker Compose found (%s): install the compose plugin (docker compose v2) or docker-compose v1",
		strings.Join(errs, "; "))
}

var versionRE = regexp.MustCompile(`v?(\d+)\.(\d+)(\.\d+)?`)

// probe asks argv for its version. A standalone executable's answer is
// cached by its path, size and modification time: docker-compose v1 is a
// Python program that takes most of a second to say its version, on every run.
func probe(ctx context.Context, argv []string) (*CLI, error) {
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return nil, fmt.Errorf("%s not on PATH", argv[0])
	}
	key := ""
	if len(argv) == 1 {
		if st, err := os.Stat(path); err == nil {
			key = fmt.Sprintf("%s|%d|%d", path, st.Size(), st.ModTime().UnixNano())
			if v, ok := readCache()[key]; ok {
				if c, err := parseVersion(argv, v); err == nil {
					return c, nil
				}
			}
		}
	}
	c, err := run(ctx, argv)
	if err == nil && key != "" {
		writeCache(key, c.Version)
	}
	return c, err
}

func run(ctx context.Context, argv []string) (*CLI, error) {
	args := append(append([]string{}, argv[1:]...), "version", "--short")
	cmd := exec.CommandContext(ctx, argv[0], args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errb.String())
		if msg == "" {
			msg = err.Error()
		}
		return nil, errors.New(firstLine(msg))
	}
	return parseVersion(argv, out.String())
}

func parseVersion(argv []string, out string) (*CLI, error) {
	m := versionRE.FindStringSubmatch(out)
	if m == nil {
		return nil, fmt.Errorf("unrecognised version output %q", strings.TrimSpace(out))
	}
	major, _ := strconv.Atoi(m[1])
	if len(argv) == 2 && major < 2 {
		// `docker compose` v1 ("compose-cli" of Docker Desktop 2020) is not the
		// Compose v2 plugin; use docker-compose instead.
		return nil, fmt.Errorf("version %s is not Compose v2", m[0])
	}
	return &CLI{Argv: argv, Version: strings.TrimPrefix(m[0], "v"), Major: major}, nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// Project is what every compose command of one stack shares.
type Project struct {
	Name       string   // passed as -p
	Files      []string // passed as -f, in order
	ProjectDir string   // passed as --project-directory when set
	Env        []string // the child's environment; nil means os.Environ()
	// Log receives the command's output line by line; nil discards it.
	Log *progress.Logger
}

// Command returns the exec.Cmd for `compose -p NAME -f F... ARGS`, bound to
// ctx: on cancellation the child gets SIGTERM, then SIGKILL after 10 s.
func (c *CLI) Command(ctx context.Context, p Project, args ...string) *exec.Cmd {
	full := append([]string{}, c.Argv[1:]...)
	if p.Name != "" {
		full = append(full, "-p", p.Name)
	}
	for _, f := range p.Files {
		full = append(full, "-f", f)
	}
	if p.ProjectDir != "" {
		full = append(full, "--project-directory", p.ProjectDir)
	}
	full = append(full, args...)
	cmd := exec.CommandContext(ctx, c.Argv[0], full...)
	cmd.Env = p.Env
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	if !c.V1() {
		// Plain lines for the Jenkins log (v1 draws progress only on a TTY).
		cmd.Env = append(cmd.Env, "COMPOSE_PROGRESS=plain", "COMPOSE_ANSI=never")
	}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// Run runs a compose command, streaming its output to p.Log. The error names
// the command and carries the last lines of its output, so a failure is
// explained even when the log is not at hand.
func (c *CLI) Run(ctx context.Context, p Project, args ...string) error {
	cmd := c.Command(ctx, p, args...)
	tail := &tailBuffer{max: 12}
	var w io.Writer = tail
	if p.Log != nil {
		lw := p.Log.Writer()
		defer lw.Close()
		w = io.MultiWriter(lw, tail)
	}
	cmd.Stdout, cmd.Stderr = w, w
	err := cmd.Run()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s %s: %w", c.Argv[len(c.Argv)-1], strings.Join(args, " "), ctx.Err())
	}
	out := strings.Join(tail.lines(), "\n")
	if out != "" {
		out = ":\n" + out
	}
	return fmt.Errorf("%s %s: %w%s", strings.Join(c.Argv, " "), strings.Join(args, " "), err, out)
}

// tailBuffer keeps the last max lines written to it.
type tailBuffer struct {
	max  int
	buf  []string
	part []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.part = append(t.part, p...)
	for {
		i := bytes.IndexByte(t.part, '\n')
		if i < 0 {
			break
		}
		t.add(strings.TrimRight(string(t.part[:i]), "\r"))
		t.part = t.part[i+1:]
	}
	return len(p), nil
}

func (t *tailBuffer) add(line string) {
	if strings.TrimSpace(line) == "" {
		return
	}
	t.buf = append(t.buf, line)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
}

func (t *tailBuffer) lines() []string {
	if len(t.part) > 0 {
		t.add(string(t.part))
		t.part = nil
	}
	return t.buf
}

// cacheFile holds the versions probe learnt; a missing or unwritable cache
// only costs the probe.
func cacheFile() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "slipway", "compose-version.json")
}

func readCache() map[string]string {
	m := map[string]string{}
	if f := cacheFile(); f != "" {
		if data, err := os.ReadFile(f); err == nil {
			_ = json.Unmarshal(data, &m)
		}
	}
	return m
}

func writeCache(key, version string) {
	f := cacheFile()
	if f == "" {
		return
	}
	m := readCache()
	if len(m) > 20 {
		m = map[string]string{} // old installs: start over rather than grow
	}
	m[key] = version
	data, err := json.Marshal(m)
	if err != nil || os.MkdirAll(filepath.Dir(f), 0o755) != nil {
		return
	}
	tmp, err := os.CreateTemp(filepath.Dir(f), ".compose-version-*")
	if err != nil {
		return
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if werr != nil || cerr != nil || os.Rename(tmp.Name(), f) != nil {
		os.Remove(tmp.Name())
	}
}
