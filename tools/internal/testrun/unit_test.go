package testrun

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/slipway-dev/slipway/tools/internal/exit"
)

func TestRunName(t *testing.T) {
	cases := []struct{ base, tag, want string }{
		{"shop", "", "shop-test-abc123"},
		{"shop", "jenkins-shop/main-42", "shop-test-jenkins-shop-main-42-abc123"},
		{"My Shop!", "jenkins-My Job-7", "my-shop-test-jenkins-my-job-7-abc123"},
		{"", "", "slipway-test-abc123"},
		{"a-very-long-project-name-indeed-yes", "jenkins-an-extremely-long-folder/and-job-name-1234", "a-very-long-project-name-test-ong-folder-and-job-name-1234-abc123"},
	}
	for _, c := range cases {
		if got := runName(c.base, c.tag, "abc123"); got != c.want {
			t.Errorf("runName(%q, %q) = %q, want %q", c.base, c.tag, got, c.want)
		}
	}
	a, b := RunName("shop", "jenkins-x-1"), RunName("shop", "jenkins-x-1")
	if a == b {
		t.Errorf("two runs of the same build got the same name %q", a)
	}
}

func loadString(t *testing.T, yaml string) *types.Project {
	t.Helper()
	dir := t.TempDir()
	f := filepath.Join(dir, "docker-compose.test.yml")
	if err := os.WriteFile(f, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := loadProject(context.Background(), []string{f}, "unit-test-1", []string{"HOME=/root", "SECRET=s$3cr"})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSelectTests(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"sinks", `
services:
  db: {image: db}
  app: {image: app, depends_on: [db]}
  tests: {image: t, depends_on: [app]}
  lint: {image: l}
`, []string{"lint", "tests"}},
		{"results mark tests", `
services:
  db: {image: db}
  tests: {image: t, depends_on: [db], x-slipway: {results: /out}}
  other: {image: o}
`, []string{"tests"}},
		{"test mark wins", `
services:
  db: {image: db, x-slipway: {results: [/cov]}}
  e2e: {image: t, depends_on: [db], x-slipway: {test: true}}
`, []string{"e2e"}},
	}
	for _, c := range cases {
		got, err := SelectTests(loadString(t, c.yaml), nil)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %v, %v; want %v", c.name, got, err, c.want)
		}
	}
	p := loadString(t, "services:\n  a: {image: a}\n  b: {image: b, profiles: [e2e]}\n")
	if got, err := SelectTests(p, []string{"b"}); err != nil || !reflect.DeepEqual(got, []string{"b"}) {
		t.Errorf("--service of a profiled service: %v %v", got, err)
	}
	if _, err := SelectTests(p, []string{"zz"}); exit.Code(err) != exit.Usage || !strings.Contains(err.Error(), "services: a, b") {
		t.Errorf("unknown --service: %v", err)
	}
	// Every service disabled by a profile: nothing to run.
	none := loadString(t, "services:\n  a: {image: a, profiles: [x]}\n")
	if _, err := SelectTests(none, nil); exit.Code(err) != exit.Usage || !strings.Contains(err.Error(), "no test service") {
		t.Errorf("no enabled service: %v", err)
	}
	bad := loadString(t, "services:\n  a: {image: a, x-slipway: {results: relative/path}}\n")
	if _, err := SelectTests(bad, nil); exit.Code(err) != exit.Usage || !strings.Contains(err.Error(), "must be absolute") {
		t.Errorf("relative x-slipway.results: %v", err)
	}
	bad = loadString(t, "services:\n  a: {image: a, x-slipway: {tests: true}}\n")
	if _, err := SelectTests(bad, nil); exit.Code(err) != exit.Usage || !strings.Contains(err.Error(), "unknown key x-slipway.tests") {
		t.Errorf("misspelt x-slipway key: %v", err)
	}
}

func TestClosureAndResultsPaths(t *testing.T) {
	p := loadString(t, `
services:
  db: {image: db}
  cache: {image: cache}
  app: {image: app, depends_on: {db: {condition: service_healthy}}}
  tests: {image: t, depends_on: [app], x-slipway: {results: [/out/junit.xml]}}
  unrelated: {image: u}
`)
	needed, err := closure(p, []string{"tests"})
	if err != nil || !reflect.DeepEqual(needed, []string{"app", "db", "tests"}) {
		t.Errorf("closure: %v %v", needed, err)
	}
	paths, err := resultsPaths(p, []string{"tests"}, nil)
	if err != nil || !reflect.DeepEqual(paths, map[string][]string{"tests": {"/out/junit.xml"}}) {
		t.Errorf("default paths: %v %v", paths, err)
	}
	paths, err = resultsPaths(p, []string{"tests"}, []string{"/reports", "app:/cov", "app:/cov"})
	want := map[string][]string{"tests": {"/reports"}, "app": {"/cov"}}
	if err != nil || !reflect.DeepEqual(paths, want) {
		t.Errorf("flag paths: %v %v, want %v", paths, err, want)
	}
	for _, bad := range []string{"tests:", "rel", "nope:/x", ""} {
		if _, err := resultsPaths(p, []string{"tests"}, []string{bad}); exit.Code(err) != exit.Usage {
			t.Errorf("--results-path %q: %v", bad, err)
		}
	}
}

func TestPrepareAndRender(t *testing.T) {
	p := loadString(t, `
services:
  db:
    image: postgres
    container_name: fixed
    ports: ["5432:5432", "127.0.0.1:8080:80/udp", "9000"]
    healthcheck: {test: [CMD, pg_isready], interval: 1s, start_interval: 1s}
    environment: {PASSWORD: "$$literal", FROM_ENV: "${SECRET}"}
  app:
    build: ./app
    depends_on: {db: {condition: service_healthy}}
  tests:
    build: ./tests
    image: myorg/tests
    restart: always
    depends_on: {app: {condition: service_started}}
  unused: {image: nope}
`)
	images := map[string]imageSource{
		"db":    {Ref: "postgres"},
		"app":   {FromManifest: "app", Ref: "sha256:" + strings.Repeat("a", 64)},
		"tests": {Built: "unit-test-1-tests", Ref: "unit-test-1-tests"},
	}
	stack, warnings, err := prepare(p, []string{"app", "db", "tests"}, []string{"tests"}, images)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 4 || !strings.Contains(strings.Join(warnings, "\n"), "restart: always dropped") {
		t.Errorf("warnings: %v", warnings)
	}
	if p.Services["db"].Ports[0].Published != "5432" || p.Services["db"].ContainerName != "fixed" {
		t.Error("prepare changed the loaded project")
	}
	for _, v1 := range []bool{true, false} {
		data, err := render(stack, v1)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		svcs := m["services"].(map[string]any)
		if _, ok := svcs["unused"]; ok || m["name"] != nil {
			t.Errorf("v1=%v: unused service or name rendered", v1)
		}
		db := svcs["db"].(map[string]any)
		if _, ok := db["container_name"]; ok {
			t.Errorf("container_name kept")
		}
		if got := db["ports"]; !reflect.DeepEqual(got, []any{"5432/tcp", "127.0.0.1::80/udp", "9000/tcp"}) {
			t.Errorf("ports %v", got)
		}
		env := db["environment"].(map[string]any)
		if env["PASSWORD"] != "$$literal" || env["FROM_ENV"] != "s$$3cr" {
			t.Errorf("environment not escaped for a second interpolation: %v", env)
		}
		app := svcs["app"].(map[string]any)
		if app["build"] != nil || app["image"] != "sha256:"+strings.Repeat("a", 64) {
			t.Errorf("app: %v", app)
		}
		dep := app["depends_on"].(map[string]any)["db"].(map[string]any)
		if dep["condition"] != "service_started" {
			t.Errorf("condition left for compose to wait on: %v", dep)
		}
		_, hasRequired := dep["required"]
		_, hasStartInterval := db["healthcheck"].(map[string]any)["start_interval"]
		if v1 == (hasRequired || hasStartInterval) {
			t.Errorf("v1=%v: required %v, start_interval %v", v1, hasRequired, hasStartInterval)
		}
		tests := svcs["tests"].(map[string]any)
		if tests["image"] != "unit-test-1-tests" || tests["build"] == nil || tests["restart"] != "no" {
			t.Errorf("tests: %v", tests)
		}
	}
}

func tarOf(t *testing.T, entries []tar.Header, bodies map[string]string) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range entries {
		h := h
		body := bodies[h.Name]
		h.Size = int64(len(body))
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

func TestUntar(t *testing.T) {
	dest := t.TempDir()
	outside := filepath.Join(filepath.Dir(dest), "outside.xml")
	buf := tarOf(t, []tar.Header{
		{Name: "out/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "out/junit.xml", Typeflag: tar.TypeReg, Mode: 0o600},
		{Name: "out/sub/more.xml", Typeflag: tar.TypeReg, Mode: 0o644},
		{Name: "../outside.xml", Typeflag: tar.TypeReg, Mode: 0o644},
		{Name: "out/latest", Typeflag: tar.TypeSymlink, Linkname: "sub"},
		{Name: "out/escape", Typeflag: tar.TypeSymlink, Linkname: "../../etc/passwd"},
		{Name: "out/abs", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"},
	}, map[string]string{"out/junit.xml": "<testsuite/>", "out/sub/more.xml": "<x/>", "../outside.xml": "bad"})
	files, err := untar(buf, dest)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(files, []string{"out/junit.xml", "out/sub/more.xml"}) {
		t.Errorf("files %v", files)
	}
	if _, err := os.Stat(outside); err == nil {
		t.Error("an entry escaped the destination")
	}
	if l, err := os.Readlink(filepath.Join(dest, "out", "latest")); err != nil || l != "sub" {
		t.Errorf("inner link: %q %v", l, err)
	}
	for _, n := range []string{"escape", "abs"} {
		if _, err := os.Lstat(filepath.Join(dest, "out", n)); err == nil {
			t.Errorf("link %s pointing outside was written", n)
		}
	}
	st, err := os.Stat(filepath.Join(dest, "out", "junit.xml"))
	if err != nil || st.Mode().Perm()&0o044 != 0o044 {
		t.Errorf("junit.xml not readable by Jenkins: %v %v", st.Mode(), err)
	}
}

func TestTailFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "log")
	var b strings.Builder
	for i := 1; i <= 100; i++ {
		b.WriteString(strings.Repeat("x", i%7) + "line\n")
	}
	if err := os.WriteFile(f, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	got := tailFile(f, 3)
	if len(got) != 3 || got[2] != "xxline" || got[0] != strings.Repeat("x", 98%7)+"line" {
		t.Errorf("tail %q", got)
	}
	if got := tailFile(filepath.Join(t.TempDir(), "none"), 3); got != nil {
		t.Errorf("missing file: %q", got)
	}
}

func TestRepository(t *testing.T) {
	for in, want := range map[string]string{
		"reg:5000/shop-api:abc":          "reg:5000/shop-api",
		"reg:5000/shop-api":              "reg:5000/shop-api",
		"shop-api@sha256:" + "a":         "shop-api",
		"reg:5000/a/b:t@sha256:" + "abc": "reg:5000/a/b",
	} {
		if got := repository(in); got != want {
			t.Errorf("repository(%q) = %q, want %q", in, got, want)
		}
	}
}
