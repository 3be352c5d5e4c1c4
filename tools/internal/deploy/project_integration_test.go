package deploy

// One app, one project, on a real target: a release naming another project
// than the one the host runs is refused and changes nothing; a deliberate
// rename keeps the old project's volumes; a rollback runs each release under
// its recorded project; a failed first deploy leaves nothing behind.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/manifest"
	"github.com/slipway-dev/slipway/tools/internal/progress"
	"github.com/slipway-dev/slipway/tools/internal/testenv"
)

// Names and port of this test alone, so it can run beside the other
// integration tests on the same target.
const (
	pjOld  = "slwprojit"
	pjNew  = "slwprojit2"
	pjPort = 18090
)

// asProject rewrites release name (written by writeRelease) to project p
// and this test's port.
func asProject(t *testing.T, e *itEnv, name, p string) {
	t.Helper()
	path := e.rels[name]
	m, err := manifest.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	m.Project = p
	if err := manifest.Write(path, m); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(path)
	rewrite := func(f, old, new string) {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil || !bytes.Contains(data, []byte(old)) {
			t.Fatalf("%s has no %q (%v)", f, old, err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), bytes.Replace(data, []byte(old), []byte(new), 1), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	rewrite("slipway-compose.pinned.yml", "name: "+itProject+"\n", "name: "+p+"\n")
	// The image's healthcheck (3 s timeout, 3 retries after 20 s) can fail
	// on a loaded machine; this test is about project names, not that.
	rewrite("slipway-compose.pinned.yml", "    restart: unless-stopped\n  db:\n", `    restart: unless-stopped
    healthcheck:
      test: ["CMD", "python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=20)"]
      interval: 3s
      timeout: 30s
      retries: 20
      start_period: 180s
  db:
`)
	rewrite("slipway-compose.pinned.yml", "      retries: 15\n", "      retries: 60\n")
	rewrite("prod.env", fmt.Sprintf("WEB_PORT=%d\n", itPort), fmt.Sprintf("WEB_PORT=%d\n", pjPort))
}

// hostState is what a deploy could change on the target: the deploy
// directory's files and the engine's containers, volumes and networks.
func (e *itEnv) hostState(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	filepath.WalkDir(e.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		st, err := os.Lstat(p)
		if err != nil {
			return nil
		}
		fmt.Fprintf(&b, "%s %v %d %d", p, st.Mode(), st.Size(), st.ModTime().UnixNano())
		if st.Mode()&fs.ModeSymlink != 0 {
			l, _ := os.Readlink(p)
			b.WriteString(" -> " + l)
		}
		b.WriteByte('\n')
		return nil
	})
	for _, args := range [][]string{
		{"ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}} {{.Image}} {{.State}}"},
		{"volume", "ls", "-q"},
		{"network", "ls", "--no-trunc", "-q"},
	} {
		out, err := e.targetDocker(args...)
		if err != nil {
			t.Fatalf("docker %v: %v: %s", args, err, out)
		}
		lines := strings.Split(out, "\n")
		sort.Strings(lines)
		fmt.Fprintf(&b, "docker %s:\n%s\n", args[0], strings.Join(lines, "\n"))
	}
	return b.String()
}

// projectObjects lists the target's containers, volumes and networks of a project.
func (e *itEnv) projectObjects(t *testing.T, p string) (containers, volumes, networks []string) {
	t.Helper()
	list := func(args ...string) []string {
		out, err := e.targetDocker(args...)
		if err != nil {
			t.Fatalf("docker %v: %v: %s", args, err, out)
		}
		return strings.Fields(out)
	}
	label := "label=com.docker.compose.project=" + p
	return list("ps", "-aq", "--filter", label), list("volume", "ls", "-q", "--filter", label), list("network", "ls", "-q", "--filter", label)
}

func (e *itEnv) removeProject(p string) {
	ids, _ := e.targetDocker("ps", "-aq", "--filter", "label=com.docker.compose.project="+p)
	if ids != "" {
		e.targetDocker(append([]string{"rm", "-f"}, strings.Fields(ids)...)...)
	}
	e.targetDocker("volume", "rm", "-f", p+"_dbdata")
	e.targetDocker("network", "rm", p+"_default")
}

func (e *itEnv) get(t *testing.T, path string) string {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://%s%s", net.JoinHostPort(e.tg.Host, strconv.Itoa(pjPort)), path))
	if err != nil {
		return "unreachable: " + err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
}

func TestIntegrationProjectIdentity(t *testing.T) {
	te := testenv.Require(t)
	if len(te.Targets) == 0 {
		t.Fatal("the test services have no SSH target")
	}
	e := &itEnv{env: te, tg: te.Targets[0], rels: map[string]string{}, commit: map[string]string{}, web: map[string]string{}}
	e.dir = e.tg.Dir + "/project-it"
	clean := func() {
		for _, p := range []string{pjOld, pjNew} {
			e.removeProject(p)
		}
		os.RemoveAll(e.dir)
	}
	clean()
	t.Cleanup(clean)
	id := make([]byte, 4)
	rand.Read(id)
	e.web[""] = hex.EncodeToString(id)
	e.web["1"] = buildWeb(t, e, "1.0.0")
	e.web["2"] = buildWeb(t, e, "2.0.0")
	for _, img := range []string{"postgres:15", "nginx:bookworm"} {
		ref := te.FixtureRegistry + "/" + img
		e.dockerT(t, "pull", "-q", ref)
		if strings.HasPrefix(img, "postgres") {
			e.db = repoDigest(t, e, ref)
		} else {
			e.proxy = repoDigest(t, e, ref)
		}
	}
	writeRelease(t, e, "crash", itSpec{Web: e.web["2"], Worker: true})
	asProject(t, e, "crash", pjOld)
	writeRelease(t, e, "a1", itSpec{Web: e.web["1"]})
	asProject(t, e, "a1", pjOld)
	writeRelease(t, e, "b2", itSpec{Web: e.web["2"]})
	asProject(t, e, "b2", pjNew)

	t.Run("failed first deploy leaves nothing", func(t *testing.T) {
		r := e.deploy(t, "crash", nil)
		wantCode(t, r, exit.RolledBack)
		c, v, n := e.projectObjects(t, pjOld)
		if len(c)+len(v)+len(n) > 0 {
			t.Errorf("left behind: containers %v volumes %v networks %v", c, v, n)
		}
		if e.current() != "" || len(e.releaseDirs()) != 0 {
			t.Errorf("current %q, releases %v: want none", e.current(), e.releaseDirs())
		}
		if _, err := os.Stat(filepath.Join(e.dir, ".slipway", "deploying")); err == nil {
			t.Error(".slipway/deploying left behind")
		}
	})

	t.Run("first deploy", func(t *testing.T) {
		wantCode(t, e.deploy(t, "a1", nil), 0)
		if got := e.get(t, "/version"); got != "200 1.0.0" {
			t.Fatalf("serving %q", got)
		}
		resp, err := http.Post(fmt.Sprintf("http://%s/items", net.JoinHostPort(e.tg.Host, strconv.Itoa(pjPort))), "application/json", strings.NewReader(`{"name":"kept across renames"}`))
		if err != nil || resp.StatusCode != 201 {
			t.Fatalf("POST /items: %v %v", resp, err)
		}
		resp.Body.Close()
	})
	if t.Failed() {
		t.FailNow()
	}

	t.Run("another project is refused, nothing changed", func(t *testing.T) {
		before := e.hostState(t)
		r := e.deploy(t, "b2", nil)
		wantCode(t, r, exit.Usage)
		for _, want := range []string{`"` + pjOld + `"`, `"` + pjNew + `"`, "--rename-project", "nothing was changed"} {
			if !strings.Contains(r.err.Error(), want) {
				t.Errorf("refusal does not say %q: %v", want, r.err)
			}
		}
		if after := e.hostState(t); after != before {
			t.Errorf("the refused deploy changed the host:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		if strings.Contains(r.stderr, "take lock") || strings.Contains(r.stderr, "upload") {
			t.Errorf("the refused deploy went past the project check:\n%s", r.stderr)
		}
		if got := e.get(t, "/version"); got != "200 1.0.0" {
			t.Errorf("serving %q after the refusal", got)
		}
	})

	t.Run("rename keeps the old volumes", func(t *testing.T) {
		r := e.deploy(t, "b2", func(o *Options) { o.RenameProject = true })
		wantCode(t, r, 0)
		if got := e.get(t, "/version"); got != "200 2.0.0" {
			t.Errorf("serving %q after the rename", got)
		}
		c, v, _ := e.projectObjects(t, pjOld)
		if len(c) != 0 {
			t.Errorf("containers of %s still there: %v", pjOld, c)
		}
		if len(v) != 1 || v[0] != pjOld+"_dbdata" {
			t.Errorf("volumes of %s: %v, want %s_dbdata kept", pjOld, v, pjOld)
		}
		if c, _, _ := e.projectObjects(t, pjNew); len(c) != 3 {
			t.Errorf("containers of %s: %v, want 3", pjNew, c)
		}
		h := r.res.Hosts[0]
		if h.RenamedFrom != pjOld || len(h.KeptVolumes) != 1 || h.KeptVolumes[0] != pjOld+"_dbdata" {
			t.Errorf("result renamedFrom %q keptVolumes %v", h.RenamedFrom, h.KeptVolumes)
		}
		if !strings.Contains(r.stderr, pjOld+"_dbdata") {
			t.Errorf("the output does not list the kept volume:\n%s", r.stderr)
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	t.Run("rollback runs the release's recorded project", func(t *testing.T) {
		var out bytes.Buffer
		res, err := Rollback(context.Background(), RollbackOptions{Target: e.target(), HealthTimeout: 90 * time.Second,
			Stdout: &out, Log: progress.New(testWriter{t}), Getenv: env(map[string]string{"SLIPWAY_REGISTRY_USER": e.env.RegistryUser,
				"SLIPWAY_REGISTRY_PASSWORD": e.env.RegistryPassword, "HOME": "/nonexistent"})})
		if err != nil {
			t.Fatalf("rollback: %v", err)
		}
		if res.Project != pjOld || e.current() != e.commit["a1"] {
			t.Errorf("rollback: project %q current %s, want %s on %s", res.Project, e.current(), pjOld, e.commit["a1"])
		}
		if got := e.get(t, "/version"); got != "200 1.0.0" {
			t.Errorf("serving %q after the rollback", got)
		}
		if got := e.get(t, "/items"); !strings.Contains(got, "kept across renames") {
			t.Errorf("the data written under %s is gone: %s", pjOld, got)
		}
		if c, _, _ := e.projectObjects(t, pjNew); len(c) != 0 {
			t.Errorf("containers of %s still there: %v", pjNew, c)
		}
		if c, _, _ := e.projectObjects(t, pjOld); len(c) != 3 {
			t.Errorf("containers of %s: %v, want 3", pjOld, c)
		}
	})
}
