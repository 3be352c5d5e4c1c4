package deploy

// Unit tests of the swarm strategy's convergence verdict. The strategy runs
// against a real single-node swarm in swarm_integration_test.go.

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/deploy/remote"
	"github.com/slipway-dev/slipway/tools/internal/progress"
)

func TestJudgeStack(t *testing.T) {
	since := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	before, after := since.Add(-time.Minute), since.Add(time.Second)
	task := func(upToDate bool, state, desired string, created time.Time) remote.SwarmTask {
		return remote.SwarmTask{ID: "t", Slot: 1, State: state, DesiredState: desired, UpToDate: upToDate, CreatedAt: created, ContainerID: "c"}
	}
	svc := func(state string, started time.Time, replicas int, tasks ...remote.SwarmTask) remote.SwarmService {
		return remote.SwarmService{Name: "p_web", Replicas: replicas, UpdateState: state, UpdateStarted: started, UpdateMessage: "msg", Tasks: tasks}
	}
	cases := []struct {
		name      string
		svc       remote.SwarmService
		reverting bool
		want      string // "ok", "pending: ...", "failed: ..."
	}{
		{"converged", svc("completed", after, 1, task(true, "running", "running", after)), false, "ok"},
		{"new service, no update status", svc("", time.Time{}, 1, task(true, "running", "running", after)), false, "ok"},
		{"updating", svc("updating", after, 1, task(true, "running", "running", after)), false, "pending: updating"},
		// Right after stack deploy the old status still says completed and
		// the tasks are the old ones: not converged (docker/cli #5299).
		{"stale completed status, old task", svc("completed", before, 1, task(false, "running", "running", before)), false, "pending: 0/1 tasks"},
		{"start-first: old task still stopping", svc("completed", after, 1, task(true, "running", "running", after), task(false, "running", "shutdown", before)), false, "pending: 1 old task"},
		{"paused", svc("paused", after, 1, task(false, "running", "running", before)), false, "failed: update paused"},
		{"swarm rolled back", svc("rollback_completed", after, 1, task(true, "running", "running", before)), false, "failed: Swarm rolled the update back"},
		{"swarm rolled back, when reverting", svc("rollback_completed", after, 1, task(true, "running", "running", before)), true, "ok"},
		{"old rollback status ignored", svc("rollback_completed", before, 1, task(true, "running", "running", before)), false, "ok"},
		{"task of the current spec failed", svc("updating", time.Time{}, 1, task(true, "failed", "shutdown", after)), false, "failed: task failed"},
		{"failed task from an earlier deploy ignored", svc("", time.Time{}, 1, task(true, "running", "running", after), task(true, "failed", "shutdown", before)), false, "ok"},
		{"replicas short", svc("completed", after, 2, task(true, "running", "running", after), task(true, "starting", "running", after)), false, "pending: 1/2"},
		{"global", svc("", time.Time{}, -1, task(true, "running", "running", after)), false, "ok"},
	}
	for _, c := range cases {
		st := judgeStack([]remote.SwarmService{c.svc}, since, c.reverting)
		got := "ok"
		switch {
		case len(st.failed) > 0:
			got = "failed: " + st.failed[0].why
		case len(st.pending) > 0:
			got = "pending: " + st.pending[0].why
		}
		if !strings.HasPrefix(got, c.want) {
			t.Errorf("%s: %s, want %s...", c.name, got, c.want)
		}
	}
}

func TestJudgeStackNamesTheFailedTask(t *testing.T) {
	since := time.Now()
	s := remote.SwarmService{Name: "p_web", Replicas: 1, UpdateState: "rollback_completed", UpdateStarted: since.Add(time.Second), UpdateMessage: "rollback completed",
		Tasks: []remote.SwarmTask{
			{Slot: 1, State: "failed", DesiredState: "shutdown", Err: "task: non-zero exit (3)", CreatedAt: since.Add(2 * time.Second), ContainerID: "abc"},
			{Slot: 1, State: "running", DesiredState: "running", UpToDate: true, CreatedAt: since.Add(-time.Hour)},
		}}
	st := judgeStack([]remote.SwarmService{s}, since, false)
	if len(st.failed) != 1 || st.failed[0].container != "abc" || st.failed[0].task != "p_web.1" || !strings.Contains(st.failed[0].why, "non-zero exit (3)") {
		t.Errorf("%+v", st.failed)
	}
}

func TestStackEnvQuotes(t *testing.T) {
	h := newFakeHost(t, "m1")
	c := h.conn()
	d := &HostDeploy{Host: &remote.Host{Name: "m1", Conn: c, Dir: h.home + "/app"}, Log: discardLog()}
	rel := strings.Repeat("a", 40)
	writeFile(t, h.home+"/app/releases/"+rel+"/.env", "WEB_PORT=8080\nPASSWORD='s3cr$t with spaces'\nQUOTED=\"it's\"\n# comment\nbad.name=x\n")
	env, err := stackEnv(t.Context(), d, rel)
	if err != nil {
		t.Fatal(err)
	}
	// What the remote script evals must give the variables back exactly.
	out := runSh(t, string(env)+`printf '%s|%s|%s' "$WEB_PORT" "$PASSWORD" "$QUOTED"`)
	if want := "8080|s3cr$t with spaces|it's"; out != want {
		t.Errorf("exported values: %q, want %q", out, want)
	}
	if strings.Contains(string(env), "bad.name") {
		t.Errorf("a name sh cannot export was passed: %q", env)
	}
	none, err := stackEnv(t.Context(), d, strings.Repeat("b", 40))
	if err != nil || none != nil {
		t.Errorf("release without .env: %q %v", none, err)
	}
}

func discardLog() *progress.Logger { return progress.Discard() }

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func runSh(t *testing.T, script string) string {
	t.Helper()
	out, err := exec.Command("sh", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("sh: %v: %s", err, out)
	}
	return string(out)
}
