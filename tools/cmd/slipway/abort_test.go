package main

// Jenkins aborts (issue 16): an aborted build's `sh` step gets SIGTERM on
// every process of the step (the shell, slipway, tee), one after another in
// an order that varies, up to 5 s each. These tests run the script the
// library's steps generate (src/slipway/Cli.groovy, Cli.script) and kill it
// that way, then do what the step does after an interruption (Runner
// afterInterrupt): wait for the exit file, `rollback --repair` unless the
// binary ended cleanly, `status`. Every documented-correct outcome is
// accepted (rolled back within the grace: 130 or 4; out of grace: 5, or no
// exit code, and the repair restores); no timing is asserted.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// stepScript is Cli.script's output for argv (no docker config, stdout shown).
func stepScript(run string, argv []string) string {
	q := func(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
	words := []string{q(slipway)}
	for _, a := range argv {
		words = append(words, q(a))
	}
	cmd := strings.Join(words, " ")
	return strings.Join([]string{
		"set +x +e",
		"run=" + q(run),
		`rm -rf "$run" && mkdir -p "$run" || exit 1`,
		`SLIPWAY_LOG_FILE="$run/log"; SLIPWAY_EXIT_FILE="$run/exit"; SLIPWAY_CANCEL_GRACE="${SLIPWAY_CANCEL_GRACE:-4s}"`,
		`export SLIPWAY_LOG_FILE SLIPWAY_EXIT_FILE SLIPWAY_CANCEL_GRACE`,
		`{ ` + cmd + ` >"$run/stdout"; echo "$?" >"$run/rc"; } 2>&1 | { trap '' TERM; exec tee "$run/stderr"; }`,
		`rc=$(cat "$run/rc" 2>/dev/null); [ -n "$rc" ] || rc=1`,
		`cat "$run/stdout"`,
		`tail -n 40 "$run/stderr" >"$run/stderr.tail" 2>/dev/null`,
		`exit "$rc"`,
	}, "\n") + "\n"
}

func procState(pid int) (state byte, pgid int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	f := strings.Fields(s[i+1:])
	if len(f) < 3 {
		return 0, 0, false
	}
	pgid, _ = strconv.Atoi(f[2])
	return f[0][0], pgid, true
}

func alive(pid int) bool {
	st, _, ok := procState(pid)
	return ok && st != 'Z' && st != 'X'
}

// stepProcs lists the step's live processes by role.
func stepProcs(pgid int) map[string]int {
	out := map[string]int{}
	for _, p := range procsMatching(func([]string) bool { return true }) {
		if st, g, ok := procState(p.pid); !ok || g != pgid || st == 'Z' {
			continue
		}
		switch {
		case p.pid == pgid:
			out["shell"] = p.pid
		case p.args[0] == slipway:
			out["slipway"] = p.pid
		case filepath.Base(p.args[0]) == "tee":
			out["tee"] = p.pid
		}
	}
	return out
}

// abortStep kills the step as Jenkins does: SIGTERM to each process in
// order, waiting up to 5 s for it to end; what ignores it (tee) is killed.
func abortStep(t *testing.T, pgid int, order []string) {
	procs := stepProcs(pgid)
	for _, role := range order {
		pid, ok := procs[role]
		if !ok || !alive(pid) {
			continue
		}
		syscall.Kill(pid, syscall.SIGTERM)
		for end := time.Now().Add(5 * time.Second); alive(pid) && time.Now().Before(end); {
			time.Sleep(50 * time.Millisecond)
		}
		if alive(pid) && role != "slipway" {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func readExitFile(run string) string {
	b, _ := os.ReadFile(filepath.Join(run, "exit"))
	return strings.TrimSpace(string(b))
}

// afterAbort does what the step does after the interruption and returns
// the binary's exit code ("" when it left none).
func afterAbort(t *testing.T, s *site, runDir string, limit time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(limit)
	code := readExitFile(runDir)
	for code == "" && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		code = readExitFile(runDir)
	}
	if code == "" {
		// The binary is dead or stuck; the step does not wait for ever either.
		if pid := findSlipway(runDir); pid > 0 {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	switch code {
	case "0", "1", "2":
	default:
		p := run(t, "", baseEnv(s.env), 5*time.Minute, append(append([]string{"rollback"}, s.targetArgs()...), "--repair", "--lock-wait", "2m")...)
		t.Logf("exit %q; rollback --repair exit %d:\n%s", code, p.code, p.errText())
		wantCode(t, p, 0)
	}
	return code
}

func findSlipway(run string) int {
	for _, p := range procsMatching(func(a []string) bool { return a[0] == slipway }) {
		env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", p.pid))
		if strings.Contains(string(env), "SLIPWAY_EXIT_FILE="+filepath.Join(run, "exit")) && alive(p.pid) {
			return p.pid
		}
	}
	return 0
}

// wantWhole: the site serves the release current names, no lock, no
// marker, status exit 0 and nothing left changed.
func (s *site) wantWhole(t *testing.T, rels ...*release) {
	t.Helper()
	cur := s.current()
	var name string
	for _, r := range rels {
		if r.commit == cur {
			name = r.name
		}
	}
	if name == "" {
		t.Fatalf("current -> %q, none of the releases deployed", cur)
	}
	// A compose command the killed run left on the server may still be
	// converging the same release for a moment: wait for the condition.
	got := s.version()
	for end := time.Now().Add(2 * time.Minute); got != name && time.Now().Before(end); got = s.version() {
		time.Sleep(500 * time.Millisecond)
	}
	if got != name {
		t.Errorf("serving %q, but current names %s", got, name)
	}
	s.wantNoLock(t)
	if _, err := os.Stat(filepath.Join(s.dir, ".slipway", "deploying")); err == nil {
		t.Error(".slipway/deploying left")
	}
	p := run(t, "", baseEnv(s.env), 2*time.Minute, append(append([]string{"status"}, s.targetArgs()...), "--json")...)
	wantCode(t, p, 0)
	var st []struct {
		LeftChanged bool
		Interrupted bool
		Services    []struct{ Service, State string }
	}
	if err := json.Unmarshal([]byte(p.outText()), &st); err != nil || len(st) != 1 {
		t.Fatalf("status --json: %v\n%s", err, p.outText())
	}
	if st[0].LeftChanged || st[0].Interrupted || len(st[0].Services) != 1 || st[0].Services[0].State != "serving" {
		t.Errorf("status after the abort: %+v", st[0])
	}
}

// TestJenkinsAbortDuringDeploy aborts a deploy waiting in its health gate
// after it changed the host (v2 never gets healthy), with recreate and
// rolling, on Compose v1 (t1) and v2 (t3), killing the shell first,
// slipway first, or tee first.
func TestJenkinsAbortDuringDeploy(t *testing.T) {
	env := needBinary(t)
	orders := map[string][]string{
		"shell_first":   {"shell", "slipway", "tee"},
		"slipway_first": {"slipway", "shell", "tee"},
		"tee_first":     {"tee", "slipway", "shell"},
	}
	for _, tgName := range []string{"t1", "t3"} {
		tg := env.Target(t, tgName)
		for _, strategy := range []string{"recreate", "rolling"} {
			for _, order := range []string{"shell_first", "slipway_first", "tee_first"} {
				if order == "tee_first" && (strategy != "recreate" || tg.Compose != "v1") {
					continue // one run of this order: tee ignores TERM, so it differs least
				}
				name := fmt.Sprintf("%s_%s_%s", strategy, tg.Compose, order)
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					s := newSite(t, env, tg, "slwab"+strings.ReplaceAll(strings.ReplaceAll(name, "_", ""), "first", ""))
					v1 := s.release(t, "v1")
					v2 := s.release(t, "v2", "APP_HEALTHY=no")
					wantCode(t, run(t, "", baseEnv(env), 5*time.Minute, s.deployArgs(v1, "--strategy", strategy)...), 0)

					runDir := filepath.Join(t.TempDir(), "run")
					cmd := shCommand(stepScript(runDir, s.deployArgs(v2, "--strategy", strategy, "--health-timeout", "5m")), baseEnv(env))
					if err := cmd.Start(); err != nil {
						t.Fatal(err)
					}
					done := make(chan struct{})
					go func() { cmd.Wait(); close(done) }()
					t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); <-done })
					logFile := filepath.Join(runDir, "log")
					for end := time.Now().Add(3 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
						// The host has changed: recreate waits in its health gate,
						// rolling has stopped the old container (stop-first: a
						// fixed port) and starts the new one.
						b, _ := os.ReadFile(logFile)
						if strings.Contains(string(b), "waiting for "+s.project) || strings.Contains(string(b), ": stop of ") {
							break
						}
						if time.Now().After(end) {
							t.Fatalf("the v2 deploy never reached its health gate:\n%s", b)
						}
					}
					abortStep(t, cmd.Process.Pid, orders[order])
					code := afterAbort(t, s, runDir, 3*time.Minute)
					log, _ := os.ReadFile(logFile)
					t.Logf("slipway exit %q; its log:\n%s", code, log)
					switch code {
					case "130", "4", "5", "":
					default:
						t.Errorf("exit %q after the abort: want 130 or 4 (rolled back), 5 or none (repaired)", code)
					}
					if code == "130" && !strings.Contains(string(log), "rolled back") {
						t.Errorf("exit 130 but the log does not say it rolled back")
					}
					s.wantWhole(t, v1, v2)
				})
			}
		}
	}
}

// shCommand runs script with sh in its own process group, as the agent runs
// a step's script.
func shCommand(script string, env []string) *exec.Cmd {
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

// TestDeadPipeNeitherKillsNorLosesTheLog runs slipway with stdout and
// stderr on a pipe whose reader is gone (a tee Jenkins terminated): it must
// not die of SIGPIPE, its log must be whole in SLIPWAY_LOG_FILE and its exit
// code in SLIPWAY_EXIT_FILE.
func TestDeadPipeNeitherKillsNorLosesTheLog(t *testing.T) {
	if binBuildFail != "" {
		t.Fatal(binBuildFail)
	}
	for _, withLog := range []bool{false, true} {
		t.Run(fmt.Sprintf("log_file=%v", withLog), func(t *testing.T) {
			dir := t.TempDir()
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			r.Close() // the reader is gone before the first line
			env := append(os.Environ(), "HOME="+dir, "SLIPWAY_EXIT_FILE="+filepath.Join(dir, "exit"))
			if withLog {
				env = append(env, "SLIPWAY_LOG_FILE="+filepath.Join(dir, "log"))
			}
			// A usage error: written to stderr (the dead pipe) at the end.
			cmd := exec.Command(slipway, "deploy", "--host", "app1")
			cmd.Env, cmd.Stdout, cmd.Stderr = env, w, w
			err = cmd.Run()
			w.Close()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
				t.Fatalf("slipway with a dead stderr: %v (want exit 2, not killed by SIGPIPE)", err)
			}
			if got := readExitFile(dir); got != "2" {
				t.Errorf("exit file %q, want 2", got)
			}
			if withLog {
				b, err := os.ReadFile(filepath.Join(dir, "log"))
				if err != nil || !strings.Contains(string(b), "slipway: error: ") || !strings.Contains(string(b), "--dir") {
					t.Errorf("log file lacks the error line: %q %v", b, err)
				}
			}
		})
	}
}
