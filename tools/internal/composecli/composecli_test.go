package composecli

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/tools/internal/progress"
	"github.com/slipway-dev/slipway/tools/internal/testenv"
)

func TestDetectFindsInstalledCompose(t *testing.T) {
	testenv.RequireDocker(t)
	c, err := Detect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c.Major < 1 || c.Version == "" {
		t.Errorf("detected %+v", c)
	}
	// Whichever was found must be what `version --short` of that command says.
	out, err := exec.Command(c.Argv[0], append(c.Argv[1:], "version", "--short")...).Output()
	if err != nil || !strings.Contains(string(out), c.Version) {
		t.Errorf("%s version --short = %q (%v), detected %s", c, out, err, c.Version)
	}
	if _, err := exec.Command("docker", "compose", "version").Output(); err != nil && !c.V1() {
		t.Errorf("no compose plugin, yet detected %s as v2", c)
	}
}

// fakeCompose installs a script as docker-compose on a private PATH.
func fakeCompose(t *testing.T, script string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "docker-compose"), []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	t.Setenv(EnvOverride, "")
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
}

func TestDetectFallsBackToV1AndRunsWithProjectFlags(t *testing.T) {
	fakeCompose(t, `case "$*" in
  "version --short") echo 1.29.2 ;;
  *) echo "args: $*"; echo "env: $SLW_X"; echo "to stderr" >&2; [ "$1" = "-p" ] || exit 9 ;;
esac
`)
	c, err := Detect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !c.V1() || c.Version != "1.29.2" || strings.Join(c.Argv, " ") != "docker-compose" {
		t.Fatalf("detected %+v", c)
	}
	var buf bytes.Buffer
	p := Project{Name: "proj", Files: []string{"a.yml", "b.yml"}, ProjectDir: "/x", Env: []string{"SLW_X=1"}, Log: progress.New(&buf)}
	if err := c.Run(context.Background(), p, "up", "--no-start"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"args: -p proj -f a.yml -f b.yml --project-directory /x up --no-start", "env: 1", "to stderr"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("output %q lacks %q", buf.String(), want)
		}
	}
	err = c.Run(context.Background(), Project{Env: []string{}}, "down")
	if err == nil || !strings.Contains(err.Error(), "exit status 9") || !strings.Contains(err.Error(), "to stderr") {
		t.Errorf("failure should carry the output's tail: %v", err)
	}
}

func TestDetectNoCompose(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv(EnvOverride, "")
	_, err := Detect(context.Background())
	if err == nil || !strings.Contains(err.Error(), "install the compose plugin") {
		t.Errorf("error %v", err)
	}
	t.Setenv(EnvOverride, "nope-compose")
	if _, err := Detect(context.Background()); err == nil || !strings.Contains(err.Error(), EnvOverride) {
		t.Errorf("override error %v", err)
	}
}

func TestTailBuffer(t *testing.T) {
	tb := &tailBuffer{max: 2}
	_, _ = tb.Write([]byte("one\ntwo\n\nthr"))
	_, _ = tb.Write([]byte("ee\nfour"))
	if got := strings.Join(tb.lines(), "|"); got != "three|four" {
		t.Errorf("tail %q", got)
	}
}

func TestDetectCachesStandaloneVersion(t *testing.T) {
	count := filepath.Join(t.TempDir(), "count")
	fakeCompose(t, "echo x >> "+count+"\necho 1.29.2\n")
	for i := 0; i < 3; i++ {
		c, err := Detect(context.Background())
		if err != nil || c.Version != "1.29.2" {
			t.Fatalf("detect %d: %+v %v", i, c, err)
		}
	}
	data, _ := os.ReadFile(count)
	if n := strings.Count(string(data), "x"); n != 1 {
		t.Errorf("docker-compose asked %d times for its version, want once", n)
	}
	// A changed executable is asked again.
	exe := filepath.Join(strings.Split(os.Getenv("PATH"), ":")[0], "docker-compose")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\necho 2.30.1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if c, err := Detect(context.Background()); err != nil || c.Version != "2.30.1" || c.V1() {
		t.Errorf("after upgrade: %+v %v", c, err)
	}
}
