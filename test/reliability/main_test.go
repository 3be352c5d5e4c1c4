package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

func TestGroupsRunParentsOncePerPackage(t *testing.T) {
	rs := []Row{
		{Pkg: "./a", Test: "TestX/sub_one"},
		{Pkg: "./a", Test: "TestX/sub_two"},
		{Pkg: "./a", Test: "TestY"},
		{Pkg: "./a", Test: "TestZ", Runs: 10},
		{Pkg: "./b", Test: "TestX"},
		{Cmd: []string{"true"}},
	}
	gs := groups(rs, 3)
	if len(gs) != 3 {
		t.Fatalf("groups: %+v", gs)
	}
	if gs[0].pkg != "./a" || gs[0].runs != 3 || gs[0].pattern() != "^(TestX|TestY)$" {
		t.Errorf("first group: %+v %s", gs[0], gs[0].pattern())
	}
	if gs[1].runs != 10 || gs[1].pattern() != "^(TestZ)$" || gs[2].pkg != "./b" {
		t.Errorf("groups: %+v", gs)
	}
}

// go test -json as it prints a parent with a passing and a failing subtest
// that log recovery times, over two runs.
const sample = `{"Action":"run","Package":"p","Test":"TestX"}
{"Action":"output","Package":"p","Test":"TestX/cut","Output":"    x_test.go:10: RECOVERY 1.5s\n"}
{"Action":"pass","Package":"p","Test":"TestX/cut","Elapsed":2}
{"Action":"output","Package":"p","Test":"TestX/other","Output":"    x_test.go:20: lock left behind\n"}
{"Action":"fail","Package":"p","Test":"TestX/other","Elapsed":1}
{"Action":"fail","Package":"p","Test":"TestX","Elapsed":3}
{"Action":"output","Package":"p","Test":"TestX/cut","Output":"    x_test.go:10: RECOVERY 500ms\n"}
{"Action":"pass","Package":"p","Test":"TestX/cut","Elapsed":2}
{"Action":"skip","Package":"p","Test":"TestS","Elapsed":0}
not json
{"Action":"pass","Package":"p","Elapsed":9}
`

func TestParseCountsRunsAndRecovery(t *testing.T) {
	r := newResults()
	if err := r.parse("./p", strings.NewReader(sample)); err != nil {
		t.Fatal(err)
	}
	cut := r.test("./p", "TestX/cut")
	if cut.pass != 2 || cut.fail != 0 || len(cut.recovery) != 2 {
		t.Errorf("cut: %+v", cut)
	}
	other := r.test("./p", "TestX/other")
	if other.fail != 1 || !strings.Contains(other.lastFail, "lock left behind") {
		t.Errorf("other: %+v", other)
	}
	if parent := r.test("./p", "TestX"); parent.fail != 1 || len(parent.recovery) != 2 {
		t.Errorf("parent: %+v", parent)
	}
	if got := recoveryCell(cut); got != "median 1.5s, max 1.5s (n=2)" {
		t.Errorf("recovery cell %q", got)
	}

	rows := []Row{
		{Section: "S", Fault: "cut | mid-way", Held: "serving", Pkg: "./p", Test: "TestX/cut"},
		{Section: "S", Fault: "other", Held: "no lock", Pkg: "./p", Test: "TestX/other"},
		{Section: "T", Fault: "skipped", Held: "x", Pkg: "./p", Test: "TestS"},
	}
	var b bytes.Buffer
	report(&b, rows, r, 2, time.Minute)
	md := b.String()
	for _, want := range []string{
		"## S\n", "## T\n",
		"| cut \\| mid-way | 2 | 2/2: serving | median 1.5s, max 1.5s (n=2) | `p` TestX / cut |",
		"**FAILED 1 of 1**: no lock",
		"NOT RUN (skipped",
		"lock left behind",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	if bad := r.failedRows(rows); len(bad) != 2 {
		t.Errorf("failed rows %v", bad)
	}
}

func TestCommandSumsFuzzInputs(t *testing.T) {
	r := newResults()
	script := `echo "fuzz: ./a FuzzA for 1s"; echo "fuzz: elapsed: 0s, execs: 10 (x)"; echo "fuzz: elapsed: 1s, execs: 1200 (x)"; ` +
		`echo "fuzz: ./b FuzzB for 1s"; echo "fuzz: elapsed: 1s, execs: 34 (x)"`
	r.command(context.Background(), []string{"sh", "-c", script})
	r.command(context.Background(), []string{"sh", "-c", "exit 3"})
	o := r.byCmd["sh -c "+script]
	if o.pass != 1 || o.execs != 1234 {
		t.Errorf("fuzz command: %+v", o)
	}
	if f := r.byCmd["sh -c exit 3"]; f.fail != 1 {
		t.Errorf("failing command: %+v", f)
	}
	if runsCell(o) != "1 (1,234 fuzz inputs)" {
		t.Errorf("runs cell %q", runsCell(o))
	}
}
