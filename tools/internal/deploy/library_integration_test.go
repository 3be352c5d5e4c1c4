package deploy

import (
	"bytes"
	"context"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/composelib"
	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/progress"
)

// projectContainers maps the test project's containers' service names to
// "id version" (com.docker.compose.version: who created them).
func (e *itEnv) projectContainers(t *testing.T) map[string]string {
	t.Helper()
	out, err := e.targetDocker("ps", "--filter", "label=com.docker.compose.project="+itProject, "--format",
		`{{.Label "com.docker.compose.service"}} {{.ID}} {{.Label "com.docker.compose.version"}}`)
	if err != nil {
		t.Fatalf("docker ps on the target: %v", err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if svc, rest, ok := strings.Cut(l, " "); ok {
			m[svc] = rest
		}
	}
	return m
}

// noComposeHost deploys to the target's sshd whose PATH has the docker CLI
// and no Compose.
func (e *itEnv) noComposeHost(t *testing.T) func(*Options) {
	t.Helper()
	if e.tg.PortNoCompose == 0 {
		t.Fatalf("env.json has no PortNoCompose for %s: run test/scripts/services.sh up", e.tg.Name)
	}
	return func(o *Options) {
		o.Hosts = []string{e.tg.User + "@" + net.JoinHostPort(e.tg.Host, strconv.Itoa(e.tg.PortNoCompose))}
	}
}

// deployedByLibrary deploys rel, which must then serve version, converged
// by the compose library.
func (e *itEnv) deployedByLibrary(t *testing.T, rel, version string, mod func(*Options)) run {
	t.Helper()
	r := e.deploy(t, rel, mod)
	wantCode(t, r, 0)
	e.wantServing(t, rel, version)
	if h := r.res.Hosts[0]; h.Compose != ComposeLibrary {
		t.Errorf("result compose %q, want %q", h.Compose, ComposeLibrary)
	}
	return r
}

// TestIntegrationComposeLibrary deploys to a server that has Docker Engine
// and its CLI but no Compose (the target's PortNoCompose), and with
// --compose library to one that has Compose (v1 on t1), which then goes unused: the
// release is converged by Compose's own code over the SSH connection.
func TestIntegrationComposeLibrary(t *testing.T) {
	e := setupIT(t)
	noCompose := e.noComposeHost(t)
	want := composelib.Version
	if want == "" {
		t.Fatal("the test binary carries no Compose module version")
	}

	t.Run("swarm needs Compose", func(t *testing.T) {
		r := e.deploy(t, "v1", func(o *Options) { noCompose(o); o.Strategy = "swarm" })
		wantCode(t, r, exit.Failed)
		if r.err == nil || !strings.Contains(r.err.Error(), "compose not found") || !strings.Contains(r.err.Error(), "--strategy recreate or rolling") {
			t.Errorf("error: %v", r.err)
		}
		if got := e.releaseDirs(); len(got) != 0 {
			t.Errorf("releases uploaded: %v", got)
		}
	})

	var before map[string]string
	t.Run("first deploy without Compose on the server", func(t *testing.T) {
		r := e.deployedByLibrary(t, "v1", "1.0.0", noCompose)
		if !strings.Contains(r.stderr, "library "+want+" (none on the server)") {
			t.Errorf("the log does not say the library converges:\n%s", r.stderr)
		}
		before = e.projectContainers(t)
		for _, svc := range []string{"web", "db", "proxy"} {
			if _, v, _ := strings.Cut(before[svc], " "); v != want {
				t.Errorf("%s: com.docker.compose.version %q, want %q (containers %v)", svc, v, want, before)
			}
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	t.Run("only what changed is recreated; the hook runs through the library", func(t *testing.T) {
		r := e.deploy(t, "v2", func(o *Options) { noCompose(o); o.PreDeploy = "web: echo hook-ran-$APP_MESSAGE" })
		wantCode(t, r, 0)
		e.wantServing(t, "v2", "2.0.0")
		if !strings.Contains(r.stderr, "hook-ran-hello v2") {
			t.Errorf("the hook's output (with the release's .env) is not in the log:\n%s", r.stderr)
		}
		after := e.projectContainers(t)
		if after["db"] != before["db"] {
			t.Errorf("db was recreated (%s -> %s) though its definition did not change", before["db"], after["db"])
		}
		if after["web"] == before["web"] {
			t.Errorf("web was not recreated: %s", after["web"])
		}
	})

	t.Run("failed deploy goes back through the library", func(t *testing.T) {
		r := e.deploy(t, "crash", func(o *Options) { noCompose(o); o.HealthTimeout = 20e9 })
		wantCode(t, r, exit.RolledBack)
		e.wantServing(t, "v2", "2.0.0")
	})

	t.Run("rollback", func(t *testing.T) {
		var out bytes.Buffer
		ro := RollbackOptions{Target: e.target(), Stdout: &out, Log: progress.New(testWriter{t}), Getenv: env(nil)}
		o := Options{Target: ro.Target}
		noCompose(&o)
		ro.Target = o.Target
		res, err := Rollback(context.Background(), ro)
		if err != nil {
			t.Fatal(err)
		}
		e.wantServing(t, "v1", "1.0.0")
		if res.Hosts[0].Compose != ComposeLibrary {
			t.Errorf("rollback converged with %q", res.Hosts[0].Compose)
		}
	})

	t.Run("--compose library leaves the server's Compose unused", func(t *testing.T) {
		r := e.deploy(t, "v2", func(o *Options) { o.Compose = ComposeLibrary })
		wantCode(t, r, 0)
		e.wantServing(t, "v2", "2.0.0")
		for svc, c := range e.projectContainers(t) {
			if _, v, _ := strings.Cut(c, " "); v != want {
				t.Errorf("%s: com.docker.compose.version %q, want %q", svc, v, want)
			}
		}
	})

	bare := func(o *Options) {
		o.Hosts = []string{e.tg.User + "@" + net.JoinHostPort(e.tg.Host, strconv.Itoa(e.tg.PortBare))}
	}
	// v1's web image goes, so the deploys below must pull it through the API.
	if out, err := e.targetDocker("rmi", e.web["1"]); err != nil {
		t.Fatalf("removing v1's web image on the target: %v: %s", err, out)
	}

	t.Run("wrong registry credentials through the API change nothing", func(t *testing.T) {
		r := e.deploy(t, "v1", func(o *Options) {
			bare(o)
			o.Getenv = env(map[string]string{"SLIPWAY_REGISTRY_USER": e.env.RegistryUser, "SLIPWAY_REGISTRY_PASSWORD": "wrong-password", "HOME": "/nonexistent"})
		})
		wantCode(t, r, exit.Failed)
		if r.err == nil || !strings.Contains(r.err.Error(), "registry login") {
			t.Errorf("error: %v", r.err)
		}
		e.wantServing(t, "v2", "2.0.0")
	})

	t.Run("a server with Docker Engine and sshd only", func(t *testing.T) {
		e.deployedByLibrary(t, "v1", "1.0.0", bare)
		if out, err := e.targetDocker("image", "inspect", "--format", ".", e.web["1"]); err != nil {
			t.Errorf("v1's web image was not pulled: %v: %s", err, out)
		}
		// status reads it through the engine API too.
		var sout bytes.Buffer
		o := Options{Target: e.target()}
		bare(&o)
		sts, err := Status(context.Background(), InfoOptions{Target: o.Target, JSON: true, Stdout: &sout, Log: progress.Discard()})
		if err != nil {
			t.Fatalf("status: %v\n%s", err, sout.String())
		}
		if st := sts[0]; !st.Healthy || st.Docker == "" || len(st.Containers) != 3 || st.LeftChanged {
			t.Errorf("status of the bare server: %s", sout.String())
		}
		var out bytes.Buffer
		ro := RollbackOptions{Target: o.Target, Stdout: &out, Log: progress.New(testWriter{t}), Getenv: env(nil)}
		if _, err := Rollback(context.Background(), ro); err != nil {
			t.Fatal(err)
		}
		e.wantServing(t, "v2", "2.0.0")
	})

	t.Run("cancelled mid-converge: back on the previous release, or repaired", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var once sync.Once
		// The library prints a line per finished step: the first one of the
		// converge (web recreated, not started yet) cancels the deploy.
		cut := writerFunc(func(p []byte) {
			if strings.Contains(string(p), "Container "+itProject+"-web-1 Recreated") {
				once.Do(cancel)
			}
		})
		var out bytes.Buffer
		o := Options{Target: e.target(), Manifest: e.rels["v1"], EnvFile: filepath.Join(filepath.Dir(e.rels["v1"]), "prod.env"),
			HealthTimeout: 90 * time.Second, Stdout: &out, Log: progress.New(io.MultiWriter(testWriter{t}, cut)),
			Getenv: env(map[string]string{"SLIPWAY_REGISTRY_USER": e.env.RegistryUser, "SLIPWAY_REGISTRY_PASSWORD": e.env.RegistryPassword, "HOME": "/nonexistent"})}
		noCompose(&o)
		res, err := Deploy(ctx, o)
		if code := exit.Code(err); code != exit.Cancelled || res == nil {
			t.Fatalf("cancelled deploy: exit %d (%v), want %d", code, err, exit.Cancelled)
		}
		switch st := res.Hosts[0].Status; st {
		case StatusRolledBack:
		case StatusLeftChanged:
			ro := RollbackOptions{Target: o.Target, Repair: true, Stdout: &out, Log: progress.New(testWriter{t}), Getenv: env(nil)}
			if _, err := Rollback(context.Background(), ro); err != nil {
				t.Fatalf("rollback --repair: %v", err)
			}
		default:
			t.Fatalf("cancelled deploy: host %s, want rolled back, or left changed and then repaired", st)
		}
		e.wantServing(t, "v2", "2.0.0")
	})
}
