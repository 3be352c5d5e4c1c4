// Command reliability runs the reliability and security suite (the tests
// that inject faults and hostile input into real parts, listed in rows.go)
// several times and writes RELIABILITY.md: per row what was done, how many
// times, what held, and how long recovery took.
//
//	go run ./test/reliability [-runs 3] [-out RELIABILITY.md] [-only REGEXP]
//
// test/scripts/reliability.sh (make reliability) starts the services first.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	runs := flag.Int("runs", 3, "times to run each row (rows may set their own)")
	out := flag.String("out", "RELIABILITY.md", "file to write")
	only := flag.String("only", "", "run only the rows whose test or fault matches this regexp (the report then has only those)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *runs, *out, *only); err != nil {
		fmt.Fprintln(os.Stderr, "reliability:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, runs int, out, only string) error {
	selected := rows
	if only != "" {
		re, err := regexp.Compile(only)
		if err != nil {
			return fmt.Errorf("-only: %w", err)
		}
		selected = nil
		for _, r := range rows {
			if re.MatchString(r.Test) || re.MatchString(r.Fault) || re.MatchString(strings.Join(r.Cmd, " ")) {
				selected = append(selected, r)
			}
		}
	}
	start := time.Now()
	res := newResults()
	for _, g := range groups(selected, runs) {
		fmt.Fprintf(os.Stderr, "reliability: go test -count %d -run '%s' %s\n", g.runs, g.pattern(), g.pkg)
		t0 := time.Now()
		if err := res.goTest(ctx, g); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "reliability:   done in %s\n", time.Since(t0).Round(time.Second))
	}
	for _, r := range selected {
		if len(r.Cmd) == 0 {
			continue
		}
		n := r.Runs
		if n == 0 {
			n = runs
		}
		for i := 0; i < n; i++ {
			fmt.Fprintf(os.Stderr, "reliability: %s (%d/%d)\n", strings.Join(r.Cmd, " "), i+1, n)
			res.command(ctx, r.Cmd)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	var b bytes.Buffer
	report(&b, selected, res, runs, time.Since(start))
	if err := os.WriteFile(out, b.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "reliability: wrote %s in %s\n", out, time.Since(start).Round(time.Second))
	if bad := res.failedRows(selected); len(bad) > 0 {
		return fmt.Errorf("%d rows did not hold every time: %s", len(bad), strings.Join(bad, "; "))
	}
	return nil
}

// group is one go test invocation: the top-level tests of one package run
// the same number of times (subtests need their parent's earlier steps).
type group struct {
	pkg   string
	runs  int
	tests []string
}

func (g group) pattern() string { return "^(" + strings.Join(g.tests, "|") + ")$" }

func groups(rs []Row, runs int) []group {
	idx := map[string]int{}
	var gs []group
	for _, r := range rs {
		if r.Pkg == "" {
			continue
		}
		n := r.Runs
		if n == 0 {
			n = runs
		}
		key := r.Pkg + "#" + strconv.Itoa(n)
		i, ok := idx[key]
		if !ok {
			i = len(gs)
			idx[key] = i
			gs = append(gs, group{pkg: r.Pkg, runs: n})
		}
		top, _, _ := strings.Cut(r.Test, "/")
		if !contains(gs[i].tests, top) {
			gs[i].tests = append(gs[i].tests, top)
		}
	}
	return gs
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// outcome is what happened to one test (or command) over all its runs.
type outcome struct {
	pass, fail, skip int
	recovery         []time.Duration
	execs            int64 // fuzz inputs tried (commands only)
	lastFail         string
}

type results struct {
	byTest map[string]*outcome // "pkg test"
	byCmd  map[string]*outcome
}

func newResults() *results {
	return &results{byTest: map[string]*outcome{}, byCmd: map[string]*outcome{}}
}

func (r *results) test(pkg, name string) *outcome {
	k := pkg + " " + name
	o := r.byTest[k]
	if o == nil {
		o = &outcome{}
		r.byTest[k] = o
	}
	return o
}

// event is one line of go test -json.
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

var recoveryLine = regexp.MustCompile(`RECOVERY (\S+)`)

func (r *results) goTest(ctx context.Context, g group) error {
	cmd := exec.CommandContext(ctx, "go", "test", "-json", "-count", strconv.Itoa(g.runs), "-timeout", "60m", "-run", g.pattern(), g.pkg)
	cmd.Env = append(os.Environ(), "SLIPWAY_REQUIRE_SERVICES=1")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	if err := r.parse(g.pkg, stdout); err != nil {
		return err
	}
	_ = cmd.Wait() // failures are counted per test; the report shows them
	return ctx.Err()
}

// parse reads go test -json from rd; pkg is the package as the rows name it.
func (r *results) parse(pkg string, rd io.Reader) error {
	logs := map[string]*strings.Builder{}
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Test == "" {
			continue
		}
		switch e.Action {
		case "output":
			if m := recoveryLine.FindStringSubmatch(e.Output); m != nil {
				if d, err := time.ParseDuration(m[1]); err == nil {
					// A subtest's recovery also counts for every parent row.
					for name := e.Test; ; {
						o := r.test(pkg, name)
						o.recovery = append(o.recovery, d)
						i := strings.LastIndex(name, "/")
						if i < 0 {
							break
						}
						name = name[:i]
					}
				}
			}
			b := logs[e.Test]
			if b == nil {
				b = &strings.Builder{}
				logs[e.Test] = b
			}
			if b.Len() < 64<<10 {
				b.WriteString(e.Output)
			}
		case "pass", "fail", "skip":
			o := r.test(pkg, e.Test)
			switch e.Action {
			case "pass":
				o.pass++
			case "fail":
				o.fail++
				if b := logs[e.Test]; b != nil {
					o.lastFail = lastLines(b.String(), 12)
				}
			case "skip":
				o.skip++
			}
			delete(logs, e.Test)
		}
	}
	return sc.Err()
}

var execsLine = regexp.MustCompile(`execs: (\d+)`)

// command runs one command row once; fuzz progress lines ("execs: N") are
// summed per fuzz target.
func (r *results) command(ctx context.Context, argv []string) {
	k := strings.Join(argv, " ")
	o := r.byCmd[k]
	if o == nil {
		o = &outcome{}
		r.byCmd[k] = o
	}
	var buf bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "SLIPWAY_REQUIRE_SERVICES=1")
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	if err != nil {
		o.fail++
		o.lastFail = lastLines(buf.String(), 12)
	} else {
		o.pass++
	}
	// Each target's last progress line holds its total.
	var last int64
	for _, line := range strings.Split(buf.String(), "\n") {
		if strings.HasPrefix(line, "fuzz: ./") { // the next target starts
			o.execs += last
			last = 0
		}
		if m := execsLine.FindStringSubmatch(line); m != nil {
			last, _ = strconv.ParseInt(m[1], 10, 64)
		}
	}
	o.execs += last
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (r *results) outcome(row Row) *outcome {
	if len(row.Cmd) > 0 {
		return r.byCmd[strings.Join(row.Cmd, " ")]
	}
	return r.byTest[row.Pkg+" "+row.Test]
}

func (r *results) failedRows(rs []Row) []string {
	var bad []string
	for _, row := range rs {
		o := r.outcome(row)
		if o == nil || o.fail > 0 || o.skip > 0 || o.pass == 0 {
			bad = append(bad, rowName(row))
		}
	}
	return bad
}

func rowName(row Row) string {
	if len(row.Cmd) > 0 {
		return strings.Join(row.Cmd, " ")
	}
	return row.Test
}

func report(w io.Writer, rs []Row, res *results, runs int, took time.Duration) {
	fmt.Fprintf(w, "# Reliability and security suite\n\n")
	fmt.Fprintf(w, "What slipway was seen to survive: each row is a fault or a hostile input injected into real\n"+
		"parts (Docker Engine, a registry with auth and TLS, OpenSSH servers with their own engines,\n"+
		"Compose, git), the test that does it, how many times it ran, what held every time, and how\n"+
		"long recovery took where the row has a recovery (from the fault to everything asserted\n"+
		"holding again: the app serving, the lock free).\n\n")
	fmt.Fprintf(w, "Written by `make reliability` (`go run ./test/reliability -runs %d`) on %s, commit %s,\n"+
		"%d CPUs, %s; the whole run took %s. Rows are listed in `test/reliability/rows.go`; every\n"+
		"test also runs once in `make test`.\n\n",
		runs, time.Now().UTC().Format("2006-01-02"), gitCommit(), runtime.NumCPU(), kernel(), took.Round(time.Second))
	var sections []string
	for _, r := range rs {
		if !contains(sections, r.Section) {
			sections = append(sections, r.Section)
		}
	}
	var failures []string
	for _, s := range sections {
		fmt.Fprintf(w, "## %s\n\n", s)
		fmt.Fprintf(w, "| what was done | runs | what held | recovery | test |\n|---|---|---|---|---|\n")
		for _, r := range rs {
			if r.Section != s {
				continue
			}
			o := res.outcome(r)
			if o == nil {
				o = &outcome{}
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", cell(r.Fault), runsCell(o), cell(heldCell(r, o)), recoveryCell(o), testCell(r))
			if o.fail > 0 && o.lastFail != "" {
				failures = append(failures, fmt.Sprintf("### %s\n\n```\n%s\n```\n", rowName(r), o.lastFail))
			}
		}
		fmt.Fprintln(w)
	}
	if len(failures) > 0 {
		fmt.Fprintf(w, "## Failures (last lines of the last failing run)\n\n%s", strings.Join(failures, "\n"))
	}
}

func runsCell(o *outcome) string {
	s := strconv.Itoa(o.pass + o.fail)
	if o.execs > 0 {
		s += fmt.Sprintf(" (%s fuzz inputs)", thousands(o.execs))
	}
	return s
}

func heldCell(r Row, o *outcome) string {
	n := o.pass + o.fail
	switch {
	case n == 0 && o.skip > 0:
		return "NOT RUN (skipped: services missing?)"
	case n == 0:
		return "NOT RUN"
	case o.fail > 0:
		return fmt.Sprintf("**FAILED %d of %d**: %s", o.fail, n, r.Held)
	}
	return fmt.Sprintf("%d/%d: %s", o.pass, n, r.Held)
}

func recoveryCell(o *outcome) string {
	if len(o.recovery) == 0 {
		return "-"
	}
	d := append([]time.Duration(nil), o.recovery...)
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	med := d[len(d)/2]
	if len(d) == 1 {
		return short(med)
	}
	return fmt.Sprintf("median %s, max %s (n=%d)", short(med), short(d[len(d)-1]), len(d))
}

func short(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return d.Round(time.Second).String()
	case d >= time.Second:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Millisecond).String()
}

func testCell(r Row) string {
	if len(r.Cmd) > 0 {
		return "`" + strings.Join(r.Cmd, " ") + "`"
	}
	top, sub, ok := strings.Cut(r.Test, "/")
	if ok {
		top += " / " + strings.ReplaceAll(sub, "_", " ")
	}
	return "`" + strings.TrimPrefix(r.Pkg, "./") + "` " + top
}

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func gitCommit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(out))
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return runtime.GOOS
	}
	return "Linux " + strings.TrimSpace(string(b))
}
