package deploy

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/tools/internal/progress"
)

// changesOf is a host result's change plan by service.
func changesOf(h HostResult) map[string]ServiceChange {
	out := map[string]ServiceChange{}
	for _, c := range h.Changes {
		out[c.Service] = c
	}
	return out
}

// wantChanges checks the kind of change of each named service.
func wantChanges(t *testing.T, h HostResult, want map[string]string) {
	t.Helper()
	got := changesOf(h)
	for svc, kind := range want {
		if got[svc].Change != kind {
			t.Errorf("%s: change %+v, want %q (plan %+v)", svc, got[svc], kind, h.Changes)
		}
	}
}

// TestIntegrationChangePlan deploys releases of the sample app with a
// one-shot init service web waits for, through the compose library on a
// server without Compose: every deploy and rollback prints and returns
// its per-service change plan, and an unchanged, completed one-shot is not
// run again while a changed one runs once before web.
func TestIntegrationChangePlan(t *testing.T) {
	e := setupIT(t)
	noCompose := e.noComposeHost(t)
	writeRelease(t, e, "seed1", itSpec{Web: e.web["1"], Init: "seeded-a"})
	writeRelease(t, e, "seed2", itSpec{Web: e.web["2"], Init: "seeded-a"})
	writeRelease(t, e, "seed3", itSpec{Web: e.web["2"], Init: "seeded-b"})
	writeRelease(t, e, "seed4", itSpec{Web: e.web["2"], Init: "seeded-b", Smoke500: true}) // another nginx.conf
	// initRun is the init container's id and start time.
	initRun := func(t *testing.T) string {
		t.Helper()
		out, err := e.targetDocker("ps", "-aq", "--filter", "label=com.docker.compose.project="+itProject,
			"--filter", "label=com.docker.compose.service=init")
		if err != nil || len(strings.Fields(out)) != 1 {
			t.Fatalf("init containers: %q %v", out, err)
		}
		run, err := e.targetDocker("inspect", "-f", "{{.Id}} {{.State.StartedAt}} {{.State.Status}} {{.State.ExitCode}}", out)
		if err != nil {
			t.Fatalf("inspect init: %v %s", err, run)
		}
		if !strings.HasSuffix(run, " exited 0") {
			t.Fatalf("init did not complete: %s", run)
		}
		return run
	}

	var first string
	t.Run("first deploy: every service is new", func(t *testing.T) {
		r := e.deployedByLibrary(t, "seed1", "1.0.0", noCompose)
		wantChanges(t, r.res.Hosts[0], map[string]string{"web": ChangeNew, "db": ChangeNew, "proxy": ChangeNew, "init": ChangeNew})
		first = initRun(t)
	})
	if t.Failed() {
		t.FailNow()
	}

	t.Run("dry run: the plan, nothing changed", func(t *testing.T) {
		r := e.deploy(t, "seed2", func(o *Options) { noCompose(o); o.DryRun = true; o.JSON = true })
		wantCode(t, r, 0)
		wantChanges(t, r.res.Hosts[0], map[string]string{"web": ChangeChanged, "db": ChangeUnchanged, "init": ChangeUnchanged})
		if !strings.Contains(r.stdout, `"changes"`) {
			t.Errorf("the JSON result has no changes:\n%s", r.stdout)
		}
		e.wantServing(t, "seed1", "1.0.0")
	})

	t.Run("only web changed: init is not run again", func(t *testing.T) {
		r := e.deployedByLibrary(t, "seed2", "2.0.0", noCompose)
		h := r.res.Hosts[0]
		wantChanges(t, h, map[string]string{"web": ChangeChanged, "db": ChangeUnchanged, "proxy": ChangeUnchanged, "init": ChangeUnchanged})
		if web := changesOf(h)["web"]; !web.NewImage {
			t.Errorf("web: %+v, want a new image", web)
		}
		if !strings.Contains(r.stderr, "changes: web (new image") || !strings.Contains(r.stderr, "unchanged: db, init, proxy") {
			t.Errorf("the log does not print the plan:\n%s", r.stderr)
		}
		if !strings.Contains(r.stderr, "init: completed and unchanged, not run again") {
			t.Errorf("the log does not say init was left:\n%s", r.stderr)
		}
		if got := initRun(t); got != first {
			t.Errorf("init ran again: %s, before %s", got, first)
		}
	})

	t.Run("a changed one-shot runs once, before web", func(t *testing.T) {
		r := e.deployedByLibrary(t, "seed3", "2.0.0", noCompose)
		init := changesOf(r.res.Hosts[0])["init"]
		if init.Change != ChangeChanged || strings.Join(init.Keys, ",") != "command" || init.NewImage {
			t.Errorf("init: %+v, want its command changed", init)
		}
		if got := initRun(t); got == first {
			t.Errorf("init was not run again: %s", got)
		}
		logs, _ := e.targetDocker("logs", strings.Fields(initRun(t))[0])
		if strings.TrimSpace(logs) != "seeded-b" {
			t.Errorf("init's output %q, want seeded-b once", logs)
		}
	})

	t.Run("a changed config file restarts only the service that mounts it", func(t *testing.T) {
		before := e.projectContainers(t)
		r := e.deploy(t, "seed4", func(o *Options) {
			noCompose(o)
			o.EnvFile = filepath.Join(filepath.Dir(e.rels["seed3"]), "prod.env") // seed3's .env: only the file differs
		})
		wantCode(t, r, 0)
		h := r.res.Hosts[0]
		wantChanges(t, h, map[string]string{"proxy": ChangeChanged, "web": ChangeUnchanged, "db": ChangeUnchanged, "init": ChangeUnchanged})
		if p := changesOf(h)["proxy"]; strings.Join(p.Files, ",") != "proxy/nginx.conf" || len(p.Keys) > 0 || p.NewImage {
			t.Errorf("proxy: %+v, want only proxy/nginx.conf changed", p)
		}
		after := e.projectContainers(t)
		for _, svc := range []string{"web", "db"} {
			if after[svc] != before[svc] {
				t.Errorf("%s was recreated (%s -> %s)", svc, before[svc], after[svc])
			}
		}
		if after["proxy"] == before["proxy"] {
			t.Errorf("proxy was not recreated")
		}
	})

	t.Run("rollback prints the same plan", func(t *testing.T) {
		var out bytes.Buffer
		o := Options{Target: e.target()}
		noCompose(&o)
		var log bytes.Buffer
		res, err := Rollback(context.Background(), RollbackOptions{Target: o.Target, Stdout: &out, Log: progress.New(&log), Getenv: env(nil)})
		if err != nil {
			t.Fatalf("%v\n%s", err, log.String())
		}
		wantChanges(t, res.Hosts[0], map[string]string{"proxy": ChangeChanged, "db": ChangeUnchanged, "web": ChangeUnchanged, "init": ChangeUnchanged})
		if !strings.Contains(log.String(), "changes: proxy (files changed (proxy/nginx.conf)); unchanged: db, init, web") {
			t.Errorf("the rollback log does not print the plan:\n%s", log.String())
		}
	})
}
