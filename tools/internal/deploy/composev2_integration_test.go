package deploy

// Integration tests of the Compose v2 paths on the server: the sample app
// deployed over SSH to target t3, whose deploy user has the `docker compose`
// v2 plugin (test/scripts/services.sh installs it there; t1 and t2 keep
// docker-compose v1 only). The same assertions as the v1 tests: the right
// version served, `current`, the lock released, a failing release rolled
// back, `slipway rollback`.

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/deploy/remote"
	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/progress"
	"github.com/slipway-dev/slipway/tools/internal/sshx"
	"github.com/slipway-dev/slipway/tools/internal/testenv"
)

// probeTarget runs remote.Probe on tg over a connection of its own.
func probeTarget(t *testing.T, tg testenv.Target, dir string) *remote.Facts {
	t.Helper()
	ctx := context.Background()
	c, err := SSHDial(ctx, tg.User+"@"+tg.Addr(), sshx.Options{Identity: tg.KeyFile, KnownHosts: tg.KnownHosts, ConfigFile: "none"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h := &remote.Host{Name: tg.Name, Conn: c, Dir: dir, Log: progress.Discard()}
	f, err := h.Probe(ctx)
	if err != nil {
		t.Fatalf("probe %s: %v", tg.Name, err)
	}
	return f
}

// ownWebImages pushes the sample app's web images (rollFix) again under a
// repository of this test's own and returns their digest references. Other
// tests' cleanups (rollSite.clean) remove the unused slipway-roll-it/web
// images from the targets: between a recreate removing the old web
// containers and the rollback recreating them, that took the previous
// release's image away (the rollback's pull then had no credentials: exit 5).
// An image that is also referenced in another repository is not removed by
// `docker rmi <id>`. The cleanup drops this repository's references on the
// agent, on tg and in the registry.
func ownWebImages(t *testing.T, tenv *testenv.Env, tg testenv.Target, project string) (web1, web2 string) {
	t.Helper()
	e := &itEnv{env: tenv}
	repo := tenv.Registry + "/slipway-cv2-it/" + project
	var refs []string
	for _, v := range []struct{ src, tag string }{{rollFix.web1, "1.0.0"}, {rollFix.web2, "2.0.0"}} {
		e.dockerT(t, "tag", v.src, repo+":"+v.tag)
		e.dockerT(t, "push", repo+":"+v.tag)
		refs = append(refs, repoDigest(t, e, repo+":"+v.tag))
	}
	t.Cleanup(func() {
		for i, ref := range refs {
			targetCmd(tg, "rmi", ref)
			exec.Command("docker", "rmi", repo+":"+[]string{"1.0.0", "2.0.0"}[i]).Run()
			exec.Command("docker", "rmi", ref).Run()
			deleteManifest(t, tenv, ref)
		}
	})
	return refs[0], refs[1]
}

// deleteManifest removes repo@digest from the test registry.
func deleteManifest(t *testing.T, tenv *testenv.Env, ref string) {
	repo, digest, _ := strings.Cut(ref, "@")
	name := strings.TrimPrefix(repo, tenv.Registry+"/")
	c, err := tenv.RegistryHTTPClient()
	if err != nil {
		t.Logf("registry client: %v", err)
		return
	}
	req, _ := http.NewRequest(http.MethodDelete, "https://"+tenv.Registry+"/v2/"+name+"/manifests/"+digest, nil)
	req.SetBasicAuth(tenv.RegistryUser, tenv.RegistryPassword)
	resp, err := c.Do(req)
	if err != nil {
		t.Logf("deleting %s from the registry: %v", ref, err)
		return
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusNotFound {
		t.Logf("deleting %s from the registry: HTTP %d", ref, resp.StatusCode)
	}
}

func TestComposeV2Deploy(t *testing.T) {
	tenv := rollFixtures(t)
	_, tg, v2bin := testenv.ComposeV2Target(t)
	project, port := siteName("slwcv2")
	web1, web2 := ownWebImages(t, tenv, tg, project) // before newRollSite: cleaned after its containers
	s := newRollSite(t, tenv, project, port, tg)
	s.release(t, "v1", rollSpec{Web: web1, DBRev: "1"})
	s.release(t, "v2", rollSpec{Web: web2, DBRev: "2", Replicas: 2})
	s.release(t, "bad", rollSpec{Web: web1, DBRev: "3", BadHealth: true})
	s.release(t, "badrecreate", rollSpec{Web: web1, DBRev: "4", BadHealth: true})

	lockFree := func(t *testing.T) {
		t.Helper()
		if _, err := os.Stat(filepath.Join(s.dir(tg), ".slipway", "lock")); err == nil {
			t.Errorf("the deploy lock is still held after the command ended")
		}
	}
	// v2 made the containers: compose records its version in a label.
	madeByV2 := func(t *testing.T) {
		t.Helper()
		out, err := targetCmd(tg, "ps", "-a", "--filter", "label=com.docker.compose.project="+s.project,
			"--format", `{{.Label "com.docker.compose.service"}} {{.Label "com.docker.compose.version"}}`)
		if err != nil || out == "" {
			t.Fatalf("docker ps on %s: %v %q", tg.Name, err, out)
		}
		for _, line := range strings.Split(out, "\n") {
			if !strings.HasSuffix(line, " "+testenv.ComposeV2Version) {
				t.Errorf("container %q was not made by Compose %s", line, testenv.ComposeV2Version)
			}
		}
	}

	t.Run("probe reports compose v2", func(t *testing.T) {
		f := probeTarget(t, tg, s.dir(tg))
		if f.Compose != remote.ComposeV2 || f.ComposeVer != testenv.ComposeV2Version {
			t.Errorf("probe of %s: compose %q %q, want v2 %s", tg.Name, f.Compose, f.ComposeVer, testenv.ComposeV2Version)
		}
		// The targets' sshd sets DOCKER_HOST to the target's own engine.
		if want := strings.TrimPrefix(tg.DockerHost, "unix://"); f.EngineSocket != want {
			t.Errorf("probe of %s: engine socket %q, want %q (its DOCKER_HOST)", tg.Name, f.EngineSocket, want)
		}
	})

	t.Run("dry run plans docker compose", func(t *testing.T) {
		r := s.deploy(t, "v1", "recreate", func(o *Options) { o.DryRun = true })
		wantCode(t, r, 0)
		if !strings.Contains(r.stdout, "docker compose -p "+s.project) || strings.Contains(r.stdout, "docker-compose ") {
			t.Errorf("plan does not use docker compose:\n%s", r.stdout)
		}
		if _, err := os.Stat(s.dir(tg)); err == nil {
			t.Error("the dry run created the deploy directory")
		}
	})

	t.Run("recreate deploy", func(t *testing.T) {
		r := s.deploy(t, "v1", "recreate", nil)
		wantCode(t, r, 0)
		if got := s.version(tg); got != "1.0.0" {
			t.Errorf("serving %q, want 1.0.0", got)
		}
		if got := s.current(tg); got != s.commit["v1"] {
			t.Errorf("current -> %s, want v1 %s", got, s.commit["v1"])
		}
		if len(r.res.Hosts) != 1 || r.res.Hosts[0].Compose != string(remote.ComposeV2) {
			t.Errorf("result hosts %+v, want compose v2", r.res.Hosts)
		}
		if !strings.Contains(r.stderr, "v2 "+testenv.ComposeV2Version) {
			t.Errorf("the log does not name Compose v2 %s", testenv.ComposeV2Version)
		}
		lockFree(t)
		madeByV2(t)
	})
	if t.Failed() {
		t.FailNow()
	}

	t.Run("rolling deploy under load", func(t *testing.T) {
		before := s.containers(t, tg)
		r, st := s.underLoad(t, tg, 1500, func() run { return s.deploy(t, "v2", "rolling", nil) })
		wantCode(t, r, 0)
		if st.Failed != 0 {
			t.Errorf("the rolling update with Compose v2 dropped %d of %d requests", st.Failed, st.Total())
		}
		if got := s.version(tg); got != "2.0.0" || st.Last != "2.0.0" {
			t.Errorf("serving %q (last under load %q), want 2.0.0", got, st.Last)
		}
		if got := s.current(tg); got != s.commit["v2"] {
			t.Errorf("current -> %s, want v2", got)
		}
		after := s.containers(t, tg)
		if fmt.Sprint(after["proxy"]) != fmt.Sprint(before["proxy"]) {
			t.Errorf("the unchanged proxy was replaced: %v -> %v", before["proxy"], after["proxy"])
		}
		if len(after["web"]) != 2 || strings.Contains(fmt.Sprint(after["web"]), before["web"][0]) {
			t.Errorf("web containers %v -> %v: want two new ones", before["web"], after["web"])
		}
		if !strings.Contains(r.stderr, "left running, unchanged: proxy") {
			t.Errorf("the log does not say the proxy was left alone (config hashes of v2 compared wrong?)")
		}
		lockFree(t)
		madeByV2(t)
		// Compose v2 itself still sees the project as its own.
		cmd := exec.Command(v2bin, "-p", s.project, "-f", filepath.Join(s.dir(tg), "current", "compose.yaml"),
			"--project-directory", filepath.Join(s.dir(tg), "current"), "ps", "--services", "--status", "running")
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+tg.DockerHost)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "web") || !strings.Contains(string(out), "db") || !strings.Contains(string(out), "proxy") {
			t.Errorf("docker compose ps: %v\n%s", err, out)
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	t.Run("failing release rolled back (rolling)", func(t *testing.T) {
		r := s.deploy(t, "bad", "rolling", func(o *Options) { o.HealthTimeout = 40 * time.Second })
		wantCode(t, r, exit.RolledBack)
		if !strings.Contains(r.err.Error(), "web") || !strings.Contains(r.err.Error(), "unhealthy") {
			t.Errorf("error does not name the unhealthy web container: %v", r.err)
		}
		if got := s.version(tg); got != "2.0.0" {
			t.Errorf("serving %q, want 2.0.0", got)
		}
		if got := s.current(tg); got != s.commit["v2"] {
			t.Errorf("current -> %s, want v2", got)
		}
		after := s.containers(t, tg)
		if len(after["web"]) != 2 || len(after["db"]) != 1 {
			t.Errorf("containers after the rollback: %v", after)
		} else if rev, _ := targetCmd(tg, "inspect", "--format", `{{range .Config.Env}}{{println .}}{{end}}`, after["db"][0]); !strings.Contains(rev, "SLW_DB_REV=2") {
			t.Errorf("db is not back on release v2's definition: %s", rev)
		}
		lockFree(t)
	})

	t.Run("failing release rolled back (recreate)", func(t *testing.T) {
		r := s.deploy(t, "badrecreate", "recreate", func(o *Options) { o.HealthTimeout = 40 * time.Second })
		wantCode(t, r, exit.RolledBack)
		if got := s.version(tg); got != "2.0.0" {
			t.Errorf("serving %q, want 2.0.0", got)
		}
		if got := s.current(tg); got != s.commit["v2"] {
			t.Errorf("current -> %s, want v2", got)
		}
		lockFree(t)
		madeByV2(t)
	})

	t.Run("slipway rollback", func(t *testing.T) {
		var out bytes.Buffer
		ro := RollbackOptions{Target: s.target(), To: s.commit["v1"], HealthTimeout: 90 * time.Second, Stdout: &out,
			Log: progress.New(testWriter{t}), Getenv: env(map[string]string{"SLIPWAY_REGISTRY_USER": s.env.RegistryUser,
				"SLIPWAY_REGISTRY_PASSWORD": s.env.RegistryPassword, "HOME": "/nonexistent"})}
		res, err := Rollback(context.Background(), ro)
		if err != nil {
			t.Fatalf("rollback: %v", err)
		}
		if got := s.version(tg); got != "1.0.0" {
			t.Errorf("after rollback serving %q, want 1.0.0", got)
		}
		if got := s.current(tg); got != s.commit["v1"] {
			t.Errorf("current -> %s, want v1", got)
		}
		if len(res.Hosts) != 1 || res.Hosts[0].Compose != string(remote.ComposeV2) {
			t.Errorf("rollback result hosts %+v, want compose v2", res.Hosts)
		}
		lockFree(t)
		madeByV2(t)
	})

	// An image reference only the server's interpolation resolves: the
	// agent cannot list the images, so `docker compose pull` runs on the
	// server, under the private DOCKER_CONFIG holding the forwarded
	// credentials. The v2 plugin must still be found there.
	t.Run("compose pull of a dynamic image under the private DOCKER_CONFIG", func(t *testing.T) {
		s.release(t, "dyn", rollSpec{Web: web2, DBRev: "1"})
		pinned := filepath.Join(filepath.Dir(s.rels["dyn"]), "slipway-compose.pinned.yml")
		data, err := os.ReadFile(pinned)
		if err != nil {
			t.Fatal(err)
		}
		dyn := strings.Replace(string(data), "image: "+web2, "image: ${SLW_V2_WEB_IMAGE:-"+web2+"}", 1)
		if dyn == string(data) {
			t.Fatalf("web image %s not found in %s", web2, pinned)
		}
		if err := os.WriteFile(pinned, []byte(dyn), 0o644); err != nil {
			t.Fatal(err)
		}
		uid, home := deployUID(t, tg.User)
		secrets := []string{s.env.RegistryPassword, base64.StdEncoding.EncodeToString([]byte(s.env.RegistryUser + ":" + s.env.RegistryPassword))}
		r := s.deploy(t, "dyn", "recreate", nil)
		wantCode(t, r, 0)
		if !strings.Contains(r.stderr, "web Pulled") {
			t.Errorf("the web image was not pulled by docker compose pull")
		}
		if hits := filesHolding([]string{s.dir(tg), home, os.TempDir()}, uid, secrets...); len(hits) > 0 {
			t.Errorf("registry credentials left on the server in %v", hits)
		}
		// Removing the private DOCKER_CONFIG left the user's plugins alone.
		if f := probeTarget(t, tg, s.dir(tg)); f.Compose != remote.ComposeV2 {
			t.Errorf("after the deploy, probe finds compose %q: the plugin is gone", f.Compose)
		}
		if got := s.version(tg); got != "2.0.0" {
			t.Errorf("serving %q, want 2.0.0", got)
		}
		if got := s.current(tg); got != s.commit["dyn"] {
			t.Errorf("current -> %s, want dyn", got)
		}
		lockFree(t)
	})

	// The same through the compose library: the release loaded with its
	// .env names the images, pulled through the engine API.
	t.Run("a dynamic image pulled by the compose library", func(t *testing.T) {
		s.release(t, "dyn1", rollSpec{Web: web1, DBRev: "1"})
		pinned := filepath.Join(filepath.Dir(s.rels["dyn1"]), "slipway-compose.pinned.yml")
		data, err := os.ReadFile(pinned)
		if err != nil {
			t.Fatal(err)
		}
		dyn := strings.Replace(string(data), "image: "+web1, "image: ${SLW_V1_WEB_IMAGE:-"+web1+"}", 1)
		if err := os.WriteFile(pinned, []byte(dyn), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := targetCmd(tg, "rmi", web1); err != nil && !strings.Contains(out, "No such image") {
			t.Fatalf("removing %s on the target: %v: %s", web1, err, out)
		}
		r := s.deploy(t, "dyn1", "recreate", func(o *Options) { o.Compose = ComposeLibrary })
		wantCode(t, r, 0)
		if !strings.Contains(r.stderr, "pulled "+web1) {
			t.Errorf("the log does not name the pulled image %s", web1)
		}
		if got := s.version(tg); got != "1.0.0" {
			t.Errorf("serving %q, want 1.0.0", got)
		}
		lockFree(t)
	})
}
