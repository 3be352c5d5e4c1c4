package pinned

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v4"

	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/manifest"
	"github.com/slipway-dev/slipway/tools/internal/testenv"
)

const (
	webDigest = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	pgDigest  = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	rdDigest  = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
	bbDigest  = "sha256:dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
)

// project copies testdata/project to a temp dir (so tests may add files).
func project(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	src, _ := filepath.Abs("testdata/project")
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if info.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func load(t *testing.T, dir string, profiles ...string) Model {
	t.Helper()
	m, err := LoadModel(context.Background(), LoadOptions{ProjectName: "shop", ProjectDir: dir, Profiles: profiles,
		Files: []string{filepath.Join(dir, "compose.yaml"), filepath.Join(dir, "compose.override.yml")}})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func testManifest() *manifest.Manifest {
	return &manifest.Manifest{Project: "shop", Commit: strings.Repeat("1", 40), Services: map[string]manifest.Service{
		"web": {Image: "reg.example:5000/shop-web", Tags: []string{"abc"}, Digest: webDigest},
	}}
}

var resolved []string

func fakeResolve(_ context.Context, ref string) (string, error) {
	resolved = append(resolved, ref)
	switch ref {
	case "docker.io/library/postgres:15":
		return pgDigest, nil
	case "docker.io/library/redis:7":
		return rdDigest, nil
	case "docker.io/library/busybox:1.36":
		return bbDigest, nil
	}
	return "", errors.New("manifest unknown: " + ref)
}

func interp(svc string) (string, error) {
	if svc == "db" {
		return "postgres:15", nil
	}
	return "", errors.New("unexpected interpolation of " + svc)
}

func pin(t *testing.T, m Model) map[string]manifest.Service {
	t.Helper()
	resolved = nil
	ext, err := Pin(context.Background(), m, testManifest(), fakeResolve, interp)
	if err != nil {
		t.Fatal(err)
	}
	return ext
}

func svc(m Model, name string) map[string]any {
	s, _ := services(m)[name].(map[string]any)
	return s
}

func TestPinKeepsVariablesAndPinsEveryImage(t *testing.T) {
	m := load(t, project(t))
	ext := pin(t, m)

	web := svc(m, "web")
	if web["image"] != "reg.example:5000/shop-web@"+webDigest {
		t.Errorf("web image = %v", web["image"])
	}
	if _, ok := web["build"]; ok {
		t.Error("web still has build:")
	}
	if _, ok := web["develop"]; ok {
		t.Error("develop: should be dropped")
	}
	if got := svc(m, "db")["image"]; got != "postgres@"+pgDigest {
		t.Errorf("db image = %v", got)
	}
	if got := svc(m, "cache")["image"]; got != "redis@"+rdDigest {
		t.Errorf("cache image = %v", got)
	}
	// Already pinned by digest: kept, not asked for.
	if got := svc(m, "worker")["image"]; !strings.HasSuffix(got.(string), "@sha256:"+strings.Repeat("1", 64)) {
		t.Errorf("worker image = %v", got)
	}
	for _, r := range resolved {
		if strings.Contains(r, "worker") {
			t.Errorf("a digest reference was resolved again: %s", r)
		}
	}
	if ext["db"].Digest != pgDigest || ext["db"].Image != "postgres" || ext["db"].Tags[0] != "15" {
		t.Errorf("external db = %+v", ext["db"])
	}
	if _, ok := ext["web"]; ok {
		t.Error("a built service is listed as external")
	}
	if _, ok := services(m)["debug"]; ok {
		t.Error("a service of an inactive profile is in the pinned model")
	}

	out, err := Render(m, ComposeV2)
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	for _, want := range []string{
		"name: shop", "${PORT:-8080}:80", "${MEM:-256m}", "${HC_INTERVAL:-5s}", "$${NOT_A_VAR}",
		"${DB_PASSWORD:?set DB_PASSWORD in .env}", "replicas: ${REPLICAS:-2}", "./conf/nginx.conf", "file: ./conf/app.conf",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("pinned file lacks %q:\n%s", want, text)
		}
	}
	if !strings.HasPrefix(text, "name: shop\nservices:") {
		t.Errorf("name and services should come first:\n%s", text[:40])
	}
}

func TestProfilesEnableServicesWithoutTheKey(t *testing.T) {
	m := load(t, project(t), "debug")
	pin(t, m)
	dbg := svc(m, "debug")
	if dbg == nil {
		t.Fatal("debug missing with --profile debug")
	}
	if _, ok := dbg["profiles"]; ok {
		t.Error("profiles: should be removed so the server runs the service without --profile")
	}
	if dbg["image"] != "busybox@"+bbDigest {
		t.Errorf("debug image %v", dbg["image"])
	}
}

func TestPinRefusesUnbuiltBuildService(t *testing.T) {
	m := load(t, project(t))
	man := testManifest()
	delete(man.Services, "web")
	_, err := Pin(context.Background(), m, man, fakeResolve, interp)
	var inc *IncompleteError
	if !errors.As(err, &inc) || strings.Join(inc.Services, ",") != "web" {
		t.Fatalf("want IncompleteError naming web, got %v", err)
	}
	man = testManifest()
	s := man.Services["web"]
	s.Digest = ""
	man.Services["web"] = s
	if _, err := Pin(context.Background(), load(t, project(t)), man, fakeResolve, interp); err == nil || !strings.Contains(err.Error(), "push it first") {
		t.Fatalf("want 'push it first', got %v", err)
	}
}

func TestPinResolveErrorNamesService(t *testing.T) {
	m := load(t, project(t))
	failing := func(context.Context, string) (string, error) { return "", errors.New("registry says no") }
	_, err := Pin(context.Background(), m, testManifest(), failing, interp)
	if err == nil || !strings.Contains(err.Error(), "service cache") || !strings.Contains(err.Error(), "registry says no") {
		t.Fatalf("got %v", err)
	}
}

func TestReferencedFiles(t *testing.T) {
	dir := project(t)
	m := load(t, dir)
	pin(t, m)
	files, err := ReferencedFiles(m, dir)
	if err != nil {
		t.Fatal(err)
	}
	// docker.sock is a server path; shared/worker.env is optional and missing.
	want := "conf/app.conf conf/nginx.conf sub/redis.conf web.env"
	if strings.Join(files, " ") != want {
		t.Fatalf("files = %v, want %s", files, want)
	}
}

func TestOptionalEnvFileThatExistsTravels(t *testing.T) {
	dir := project(t)
	os.WriteFile(filepath.Join(dir, "shared", "worker.env"), []byte("W=1\n"), 0o644)
	m := load(t, dir)
	ef := svc(m, "worker")["env_file"].([]any)[0].(map[string]any)
	if ef["path"] != "shared/worker.env" || ef["required"] != true {
		t.Fatalf("env_file %v", ef)
	}
	files, err := ReferencedFiles(m, dir)
	if err != nil || !strings.Contains(strings.Join(files, " "), "shared/worker.env") {
		t.Fatalf("files %v %v", files, err)
	}
}

func TestReferencedFilesErrors(t *testing.T) {
	dir := project(t)
	m := load(t, dir)
	web := svc(m, "web")
	web["volumes"] = append(web["volumes"].([]any), map[string]any{"type": "bind", "source": "../outside.conf", "target": "/x"})
	_, err := ReferencedFiles(m, dir)
	if err == nil || exit.Code(err) != exit.Usage || !strings.Contains(err.Error(), "../outside.conf lies outside the project directory") ||
		!strings.Contains(err.Error(), "service web") {
		t.Fatalf("want escape error naming the service, got %v", err)
	}

	m = load(t, dir)
	os.Remove(filepath.Join(dir, "web.env"))
	_, err = ReferencedFiles(m, dir)
	if err == nil || !strings.Contains(err.Error(), "env_file web.env") {
		t.Fatalf("want missing env_file error, got %v", err)
	}
}

func decode(t *testing.T, b []byte) Model {
	t.Helper()
	var m Model
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRenderV1(t *testing.T) {
	dir := project(t)
	m := load(t, dir)
	pin(t, m)
	svc(m, "db")["attach"] = false
	out, notes, err := RenderNotes(m, ComposeV1)
	if err != nil {
		t.Fatal(err)
	}
	r := decode(t, out)
	if _, ok := r["name"]; ok {
		t.Error("v1 rendering has a top-level name:")
	}
	web := svc(r, "web")
	if got := web["ports"].([]any); got[0] != "${PORT:-8080}:80" || got[1] != "127.0.0.1:9090:9090/udp" {
		t.Errorf("ports %v", got)
	}
	vols := web["volumes"].([]any)
	if vols[0] != "./conf/nginx.conf:/etc/nginx/nginx.conf:ro" || vols[1] != "data:/data" || vols[2] != "/var/run/docker.sock:/var/run/docker.sock" {
		t.Errorf("volumes %v", vols)
	}
	if got := svc(r, "cache")["volumes"].([]any)[0]; got != "./sub/redis.conf:/usr/local/etc/redis/redis.conf:ro" {
		t.Errorf("included relative bind %v", got)
	}
	if dep := web["depends_on"].(map[string]any)["db"].(map[string]any); dep["condition"] != "service_healthy" || dep["required"] != nil {
		t.Errorf("depends_on %v", dep)
	}
	if dep := svc(r, "worker")["depends_on"].([]any); dep[0] != "db" {
		t.Errorf("worker depends_on should be a list: %v", dep)
	}
	if ef := web["env_file"].([]any); ef[0] != "web.env" {
		t.Errorf("env_file %v", ef)
	}
	if _, ok := svc(r, "worker")["env_file"]; ok {
		t.Errorf("a missing optional env_file must be dropped: %v", svc(r, "worker"))
	}
	if _, ok := svc(r, "db")["attach"]; ok || !strings.Contains(strings.Join(notes, "\n"), "service db: attach dropped") {
		t.Errorf("attach: (unknown to 1.29) should be dropped with a note: %v", notes)
	}
	// The original model is untouched.
	if _, ok := m["name"]; !ok {
		t.Error("Render changed its input")
	}

	// The real docker-compose 1.29 must accept it.
	compose := tool(t, "docker-compose")
	os.WriteFile(filepath.Join(dir, "pinned.v1.yml"), out, 0o644)
	os.MkdirAll(filepath.Join(dir, "shared"), 0o755)
	cmd := exec.Command(compose, "-f", "pinned.v1.yml", "-p", "shop", "config", "-q")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DB_PASSWORD=x")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker-compose 1.29 rejects the v1 rendering: %v\n%s\n---\n%s", err, b, out)
	}
}

func TestRenderSwarm(t *testing.T) {
	dir := project(t)
	m := load(t, dir)
	pin(t, m)
	out, notes, err := RenderNotes(m, Swarm)
	if err != nil {
		t.Fatal(err)
	}
	r := decode(t, out)
	if r["version"] != "3.8" {
		t.Errorf("version %v", r["version"])
	}
	web := svc(r, "web")
	if deps := web["depends_on"].([]any); len(deps) != 1 || deps[0] != "db" {
		t.Errorf("swarm depends_on %v", deps)
	}
	if _, ok := web["mem_limit"]; ok {
		t.Error("mem_limit should move to deploy.resources.limits")
	}
	lim := web["deploy"].(map[string]any)["resources"].(map[string]any)["limits"].(map[string]any)
	if lim["memory"] != "${MEM:-256m}" {
		t.Errorf("limits %v", lim)
	}
	if !strings.Contains(strings.Join(notes, "\n"), "mem_limit") {
		t.Errorf("notes %v", notes)
	}
	if strings.Contains(string(out), "build:") {
		t.Error("swarm rendering has build:")
	}

	docker := tool(t, "docker")
	os.WriteFile(filepath.Join(dir, "pinned.swarm.yml"), out, 0o644)
	cmd := exec.Command(docker, "stack", "config", "-c", "pinned.swarm.yml")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DB_PASSWORD=x", "REPLICAS=2")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker stack config rejects the swarm rendering: %v\n%s\n---\n%s", err, b, out)
	}
}

func TestReadFileRoundTrip(t *testing.T) {
	dir := project(t)
	m := load(t, dir)
	pin(t, m)
	v2, _ := Render(m, ComposeV2)
	p := filepath.Join(dir, "pinned.yml")
	os.WriteFile(p, append([]byte("# header\n"), v2...), 0o644)
	back, err := ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := Render(m, ComposeV1)
	b, _ := Render(back, ComposeV1)
	if string(a) != string(b) {
		t.Fatalf("re-rendering the written file differs:\n%s\n---\n%s", a, b)
	}
	files, err := ReferencedFiles(back, dir)
	if err != nil || len(files) != 4 {
		t.Fatalf("files from the written file: %v %v", files, err)
	}
	os.WriteFile(p, []byte("services: ["), 0o644)
	if _, err := ReadFile(p); exit.Code(err) != exit.Usage {
		t.Fatalf("bad YAML should be a usage error, got %v", err)
	}
}

func TestParseTarget(t *testing.T) {
	for _, tg := range []Target{ComposeV2, ComposeV1, Swarm} {
		got, err := ParseTarget(tg.String())
		if err != nil || got != tg {
			t.Errorf("%v: %v %v", tg, got, err)
		}
	}
	if _, err := ParseTarget("kubernetes"); err == nil {
		t.Error("unknown target accepted")
	}
}

func TestShortSyntax(t *testing.T) {
	cases := []struct {
		in   map[string]any
		want string
		ok   bool
	}{
		{map[string]any{"target": 80, "published": "8080"}, "8080:80", true},
		{map[string]any{"target": 53, "published": "53", "protocol": "udp", "host_ip": "::1"}, "[::1]:53:53/udp", true},
		{map[string]any{"target": 80}, "80", true},
		{map[string]any{"target": 80, "published": "80", "mode": "host"}, "", false},
	}
	for _, c := range cases {
		got, ok := shortPort(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("shortPort(%v) = %q %v", c.in, got, ok)
		}
	}
	if _, ok := shortVolume(map[string]any{"type": "bind", "source": "./a", "target": "/a", "bind": map[string]any{"propagation": "rshared"}}); ok {
		t.Error("bind propagation cannot be short")
	}
	if s, _ := shortVolume(map[string]any{"type": "volume", "target": "/anon"}); s != "/anon" {
		t.Errorf("anonymous volume %q", s)
	}
}

// tool finds a real program the test needs; missing is a failure in CI.
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if testenv.Required() {
			t.Fatalf("%s is not installed (test/scripts/services.sh up installs it)", name)
		}
		t.Skipf("%s not installed", name)
	}
	return p
}
