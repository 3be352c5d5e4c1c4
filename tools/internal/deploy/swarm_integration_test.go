package deploy

// Integration test of the swarm strategy: a single-node swarm made on target
// t3's own engine (docker swarm init through its DockerHost), the sample
// app's web and db deployed over SSH as a stack. The test namespaces have no
// IPVS, so the services use endpoint_mode dnsrr and publish no ports; the
// version is read from inside the running web task.

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/testenv"
)

// ensureSwarm makes tg's engine a swarm manager; it leaves the swarm at the
// end of the test if it created it.
func ensureSwarm(t *testing.T, tg testenv.Target) {
	t.Helper()
	state, err := targetCmd(tg, "info", "--format", "{{.Swarm.LocalNodeState}}")
	if err != nil {
		t.Fatalf("docker info on %s: %v: %s", tg.Name, err, state)
	}
	if state == "active" {
		return
	}
	out, err := targetCmd(tg, "swarm", "init", "--advertise-addr", tg.Host, "--default-addr-pool", "172.30.0.0/16")
	if err != nil {
		t.Fatalf("docker swarm init on %s: %v: %s", tg.Name, err, out)
	}
	t.Cleanup(func() {
		if out, err := targetCmd(tg, "swarm", "leave", "--force"); err != nil {
			t.Logf("docker swarm leave on %s: %v: %s", tg.Name, err, out)
		}
	})
}

// stackVersion asks the running web task of the stack for /version.
func stackVersion(t *testing.T, tg testenv.Target, project string) string {
	t.Helper()
	ids, err := targetCmd(tg, "ps", "-q", "--filter", "label=com.docker.swarm.service.name="+project+"_web", "--filter", "status=running")
	if err != nil || ids == "" {
		return "no running web task: " + ids
	}
	var got []string
	for _, id := range strings.Fields(ids) {
		out, err := targetCmd(tg, "exec", id, "python3", "-c", "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8000/version', timeout=5).read().decode().strip())")
		if err != nil {
			out = "error: " + out
		}
		got = append(got, out)
	}
	return strings.Join(got, ",")
}

func removeStack(t *testing.T, tg testenv.Target, s *rollSite) {
	targetCmd(tg, "stack", "rm", s.project)
	// The stack's containers go away asynchronously; the volume after them.
	for i := 0; i < 60; i++ {
		ids, _ := targetCmd(tg, "ps", "-aq", "--filter", "label=com.docker.stack.namespace="+s.project)
		if ids == "" {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	targetCmd(tg, "volume", "rm", "-f", s.project+"_dbdata")
	os.RemoveAll(s.dir(tg))
}

func TestIntegrationSwarm(t *testing.T) {
	tenv := rollFixtures(t)
	if len(tenv.Targets) < 3 {
		t.Fatalf("want 3 SSH targets (the swarm is made on t3), have %d", len(tenv.Targets))
	}
	tg := tenv.Targets[2]
	ensureSwarm(t, tg)
	project, port := siteName("slwswarm")
	s := &rollSite{env: tenv, tgs: []testenv.Target{tg}, project: project, port: port, sub: project, rels: map[string]string{}, commit: map[string]string{}}
	removeStack(t, tg, s)
	t.Cleanup(func() {
		if os.Getenv("SLIPWAY_KEEP_DEPLOY_IT") == "" {
			removeStack(t, tg, s)
		}
	})
	s.release(t, "v1", rollSpec{Web: rollFix.web1, DBRev: "1", Swarm: true})
	s.release(t, "v2", rollSpec{Web: rollFix.web2, DBRev: "1", Swarm: true})
	s.release(t, "bad", rollSpec{Web: rollFix.web1, DBRev: "1", Swarm: true, BadHealth: true})

	r := s.deploy(t, "v1", "swarm", nil)
	wantCode(t, r, 0)
	if got := stackVersion(t, tg, project); got != "1.0.0" {
		t.Fatalf("after the first stack deploy: web answers %q, want 1.0.0", got)
	}

	t.Run("update converges", func(t *testing.T) {
		r := s.deploy(t, "v2", "swarm", nil)
		wantCode(t, r, 0)
		if got := stackVersion(t, tg, project); got != "2.0.0" {
			t.Errorf("web answers %q, want 2.0.0", got)
		}
		if got := s.current(tg); got != s.commit["v2"] {
			t.Errorf("current -> %s, want v2", got)
		}
		img, _ := targetCmd(tg, "service", "inspect", "--format", "{{.Spec.TaskTemplate.ContainerSpec.Image}}", project+"_web")
		if !strings.HasSuffix(img, "@"+strings.SplitN(rollFix.web2, "@", 2)[1]) {
			t.Errorf("web service image %q, want the v2 digest", img)
		}
		if !strings.Contains(r.stderr, "convergence of 2 service(s)") {
			t.Errorf("the log does not show the convergence watch")
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	t.Run("failing task is rolled back", func(t *testing.T) {
		r := s.deploy(t, "bad", "swarm", func(o *Options) { o.HealthTimeout = 2 * time.Minute })
		wantCode(t, r, exit.RolledBack)
		if got := stackVersion(t, tg, project); got != "2.0.0" {
			t.Errorf("web answers %q, want 2.0.0", got)
		}
		if got := s.current(tg); got != s.commit["v2"] {
			t.Errorf("current -> %s, want v2", got)
		}
		if !strings.Contains(r.err.Error(), "web") {
			t.Errorf("error does not name the web service: %v", r.err)
		}
		hc, _ := targetCmd(tg, "service", "inspect", "--format", "{{json .Spec.TaskTemplate.ContainerSpec.Healthcheck.Test}}", project+"_web")
		if strings.Contains(hc, "false") {
			t.Errorf("web still has the failing healthcheck: %s", hc)
		}
	})
}
