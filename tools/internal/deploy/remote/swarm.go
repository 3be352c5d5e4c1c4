package remote

// Server-side operations of the swarm strategy: checking the node is a
// manager, reading and writing a release's files, `docker stack deploy`
// with registry credentials that exist only for that command, reading the
// stack's services and tasks, and rolling services back.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/sshx"
)

// ErrNotManager is a host that is not a manager of an active swarm.
var ErrNotManager = errors.New("not a swarm manager")

// ErrStackDeploy is a failed `docker stack deploy`.
var ErrStackDeploy = errors.New("docker stack deploy failed")

// SwarmManager checks that the host's engine is an active swarm manager.
func (h *Host) SwarmManager(ctx context.Context) error {
	out, err := h.runQuiet(ctx, "swarm info", `docker info --format '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}'`, nil)
	if err != nil {
		return fmt.Errorf("reading the swarm state (docker info): %w", err)
	}
	state, ctl, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	if state != "active" || ctl != "true" {
		return fmt.Errorf("%w: %s's engine is in swarm state %q (manager: %s): deploy to a manager node, or create a swarm there with `docker swarm init`", ErrNotManager, h.Name, state, ctl)
	}
	return nil
}

// ReadReleaseFile returns releases/<release>/<name>, nil when it does not exist.
func (h *Host) ReadReleaseFile(ctx context.Context, release, name string) ([]byte, error) {
	if err := validRelease(release); err != nil {
		return nil, err
	}
	if err := validRelPath(name); err != nil {
		return nil, err
	}
	p := q(h.Dir + "/releases/" + release + "/" + name)
	out, err := h.runQuiet(ctx, "read "+name, "[ -f "+p+" ] || { echo absent; exit 0; }\necho present\ncat "+p, nil)
	if err != nil {
		return nil, fmt.Errorf("reading releases/%s/%s: %w", release, name, err)
	}
	first, rest, _ := bytes.Cut(out, []byte("\n"))
	if string(first) != "present" {
		return nil, nil
	}
	return rest, nil
}

// WriteReleaseFile writes releases/<release>/<name> atomically (mode 0644).
func (h *Host) WriteReleaseFile(ctx context.Context, release, name string, data []byte) error {
	if err := validRelease(release); err != nil {
		return err
	}
	if err := validRelPath(name); err != nil {
		return err
	}
	p := h.Dir + "/releases/" + release + "/" + name
	if h.DryRun {
		h.Planf("write %s (%d bytes)", p, len(data))
		return nil
	}
	tmp := p + ".tmp-" + randHex(4)
	script := "umask 022\ncat > " + q(tmp) + " && mv -f " + q(tmp) + " " + q(p) + " || { rm -f " + q(tmp) + "; exit 1; }"
	if _, err := h.runQuiet(ctx, "write "+name, script, bytes.NewReader(data)); err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	return nil
}

// StackDeploy runs `docker stack deploy --with-registry-auth --prune -c
// <stackFile> <project>` in releases/<release>. env are `export NAME=value`
// lines (shell-quoted) for the stack file's ${VAR} references: docker stack
// deploy reads no .env file. env and dockerConfig travel on stdin; the
// credentials live in a private temporary DOCKER_CONFIG for this command
// only, as in Pull.
func (h *Host) StackDeploy(ctx context.Context, release, stackFile string, env []byte, registries []string, dockerConfig []byte) error {
	args := []string{"docker", "stack", "deploy", "--with-registry-auth", "--prune", "-c", stackFile, h.Project}
	if h.DryRun {
		if len(dockerConfig) > 0 {
			h.Planf("mktemp -d (private DOCKER_CONFIG), credentials for %s over stdin, docker login (verify)", strings.Join(registries, ", "))
		}
		h.Planf("cd %s/releases/%s && %s (variables of .env exported for the stack file)", h.Dir, release, sshx.QuoteArgs(args...))
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, `set -u
exec 3<&0 </dev/null
t=$(mktemp -d "${TMPDIR:-/tmp}/slipway-stack.XXXXXXXX") || exit %[1]d
trap 'rm -rf "$t"' EXIT
trap 'rm -rf "$t"; exit 129' HUP INT TERM PIPE
chmod 700 "$t"
envs=
while IFS= read -r line <&3; do
  [ "$line" = @@slipway-config ] && break
  envs="$envs$line
"
done
eval "$envs"
(umask 077; cat > "$t/config.json" <&3) || exit %[1]d
if [ -s "$t/config.json" ]; then
  DOCKER_CONFIG=$t; export DOCKER_CONFIG
`, exitLogin)
	for _, r := range registries {
		fmt.Fprintf(&b, "  out=$(docker login %s 2>&1 </dev/null) || { printf '%%s\\n' \"$out\" | grep -v -e '^Authenticating' -e '^ *Info' -e '^$' -e 'non TTY' >&2; echo \"registry login to %s failed on the server: check SLIPWAY_REGISTRY_USER/SLIPWAY_REGISTRY_PASSWORD (or DOCKER_CONFIG)\" >&2; exit %d; }\n", q(r), r, exitLogin)
	}
	b.WriteString("fi\n")
	// Newer CLIs wait for convergence unless --detach; slipway watches itself.
	fmt.Fprintf(&b, `det=
docker stack deploy --help 2>/dev/null | grep -q -e '--detach' && det=--detach=true
cd %s || exit %d
%s $det %s || exit %d
exit 0
`, q(h.Dir+"/releases/"+release), exitPull, sshx.QuoteArgs(args[:3]...), sshx.QuoteArgs(args[3:]...), exitPull)
	var stdin bytes.Buffer
	stdin.Write(env)
	if len(env) > 0 && env[len(env)-1] != '\n' {
		stdin.WriteByte('\n')
	}
	stdin.WriteString("@@slipway-config\n")
	stdin.Write(dockerConfig)
	w, wo := h.logWriter(), h.logWriter()
	defer w.Close()
	defer wo.Close()
	var stderr bytes.Buffer
	err := h.Conn.Run(ctx, label("stack deploy")+b.String(), &stdin, wo, teeWriter{&stderr, w})
	if err == nil {
		return nil
	}
	msg := lastLine(stderr.String())
	switch ExitCode(err) {
	case exitLogin:
		return fmt.Errorf("%w: %s", ErrRegistryLogin, msg)
	case exitPull:
		return fmt.Errorf("%w: %s", ErrStackDeploy, msg)
	}
	return fmt.Errorf("%w: %v", ErrStackDeploy, err)
}

// SwarmService is one service of the stack with its tasks.
type SwarmService struct {
	ID            string
	Name          string
	Version       uint64
	Replicas      int // -1: global mode
	Image         string
	UpdateState   string // "", updating, paused, completed, rollback_started, rollback_paused, rollback_completed
	UpdateMessage string
	UpdateStarted time.Time
	Tasks         []SwarmTask
}

// SwarmTask is one task of a service.
type SwarmTask struct {
	ID           string
	Slot         int
	State        string // new ... running, complete, failed, shutdown, rejected, orphaned, remove
	DesiredState string
	Err          string
	Message      string
	CreatedAt    time.Time
	ContainerID  string
	ExitCode     int
	UpToDate     bool // created from the service's current task template
}

type serviceJSON struct {
	ID      string
	Version struct{ Index uint64 }
	Spec    struct {
		Name         string
		TaskTemplate json.RawMessage
		Mode         struct {
			Replicated *struct{ Replicas *uint64 }
			Global     *struct{}
		}
	}
	UpdateStatus *struct {
		State     string
		StartedAt time.Time
		Message   string
	}
}

type taskJSON struct {
	ID           string
	ServiceID    string
	Slot         int
	CreatedAt    time.Time
	Spec         json.RawMessage
	DesiredState string
	Status       struct {
		State           string
		Message         string
		Err             string
		ContainerStatus *struct {
			ContainerID string
			ExitCode    int
		}
	}
}

// StackServices lists the stack's services (label com.docker.stack.namespace
// = the project) with their tasks, task history included.
func (h *Host) StackServices(ctx context.Context) ([]SwarmService, error) {
	script := `ids=$(docker service ls -q --filter ` + q("label=com.docker.stack.namespace="+h.Project) + `) || exit 1
echo @@slipway-services
[ -z "$ids" ] && { echo '[]'; echo @@slipway-tasks; echo '[]'; exit 0; }
docker service inspect $ids || exit 1
echo @@slipway-tasks
tids=$(docker service ps -q --no-trunc $ids 2>/dev/null)
if [ -n "$tids" ]; then docker inspect $tids 2>/dev/null; else echo '[]'; fi
exit 0`
	out, err := h.runQuiet(ctx, "stack services", script, nil)
	if err != nil {
		return nil, fmt.Errorf("reading the stack's services: %w", err)
	}
	return parseStack(string(out))
}

func parseStack(out string) ([]SwarmService, error) {
	_, rest, ok := strings.Cut(out, "@@slipway-services\n")
	if !ok {
		return nil, fmt.Errorf("reading the stack's services: unexpected output %q", abbreviate(out, 200))
	}
	svcText, taskText, _ := strings.Cut(rest, "@@slipway-tasks\n")
	var raw []serviceJSON
	if err := json.Unmarshal([]byte(strings.TrimSpace(svcText)), &raw); err != nil {
		return nil, fmt.Errorf("reading docker service inspect output: %w", err)
	}
	var tasks []taskJSON
	if s := strings.TrimSpace(taskText); s != "" {
		if err := json.Unmarshal([]byte(s), &tasks); err != nil {
			return nil, fmt.Errorf("reading the tasks' docker inspect output: %w", err)
		}
	}
	var svcs []SwarmService
	for _, r := range raw {
		s := SwarmService{ID: r.ID, Name: r.Spec.Name, Version: r.Version.Index, Replicas: -1}
		if rep := r.Spec.Mode.Replicated; rep != nil {
			s.Replicas = 1
			if rep.Replicas != nil {
				s.Replicas = int(*rep.Replicas)
			}
		}
		var tt struct {
			ContainerSpec struct{ Image string }
		}
		_ = json.Unmarshal(r.Spec.TaskTemplate, &tt)
		s.Image = tt.ContainerSpec.Image
		if u := r.UpdateStatus; u != nil {
			s.UpdateState, s.UpdateMessage, s.UpdateStarted = u.State, u.Message, u.StartedAt
		}
		for _, t := range tasks {
			if t.ServiceID != r.ID {
				continue
			}
			st := SwarmTask{ID: t.ID, Slot: t.Slot, State: t.Status.State, DesiredState: t.DesiredState, Err: t.Status.Err,
				Message: t.Status.Message, CreatedAt: t.CreatedAt, UpToDate: sameSpec(t.Spec, r.Spec.TaskTemplate)}
			if cs := t.Status.ContainerStatus; cs != nil {
				st.ContainerID, st.ExitCode = cs.ContainerID, cs.ExitCode
			}
			s.Tasks = append(s.Tasks, st)
		}
		sort.Slice(s.Tasks, func(i, j int) bool { return s.Tasks[i].CreatedAt.After(s.Tasks[j].CreatedAt) })
		svcs = append(svcs, s)
	}
	sort.Slice(svcs, func(i, j int) bool { return svcs[i].Name < svcs[j].Name })
	return svcs, nil
}

// taskDefaults are the values Swarm fills into a service spec where it is
// unset, which `docker service inspect` shows (insertDefaults) while a
// task's copy of the spec does not.
var taskDefaults = map[string]any{
	"ContainerSpec": map[string]any{"StopGracePeriod": float64(10e9), "DNSConfig": map[string]any{}},
	"Resources":     map[string]any{},
	"RestartPolicy": map[string]any{"Condition": "any", "Delay": float64(5e9), "MaxAttempts": float64(0)},
	"Placement":     map[string]any{},
	"Runtime":       "container",
}

// sameSpec says whether a task was made from the service's current task
// template: equal once Swarm's defaults are filled into the task's copy,
// with absent and empty values alike.
func sameSpec(task, template json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(task, &x) != nil || json.Unmarshal(template, &y) != nil {
		return false
	}
	return looseEqual(withDefaults(x, taskDefaults), y)
}

func withDefaults(v any, defs map[string]any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	for k, d := range defs {
		cur, present := m[k]
		switch {
		case !present || cur == nil:
			m[k] = d
		default:
			if dm, ok := d.(map[string]any); ok {
				m[k] = withDefaults(cur, dm)
			}
		}
	}
	return m
}

func looseEqual(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok {
			return isEmpty(a) && isEmpty(b)
		}
		for k, xv := range x {
			if yv, ok := y[k]; ok {
				if !looseEqual(xv, yv) {
					return false
				}
			} else if !isEmpty(xv) {
				return false
			}
		}
		for k, yv := range y {
			if _, ok := x[k]; !ok && !isEmpty(yv) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok {
			return isEmpty(a) && isEmpty(b)
		}
		if len(x) != len(y) {
			return false
		}
		for i := range x {
			if !looseEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	if isEmpty(a) && isEmpty(b) {
		return true
	}
	return a == b
}

func isEmpty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case map[string]any:
		for _, e := range x {
			if !isEmpty(e) {
				return false
			}
		}
		return true
	case []any:
		return len(x) == 0
	case string:
		return x == ""
	case float64:
		return x == 0
	case bool:
		return !x
	}
	return false
}

// ServiceRollback returns services to their previous spec (docker service
// rollback, detached: the caller watches).
func (h *Host) ServiceRollback(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	if h.DryRun {
		h.Planf("docker service rollback %s", strings.Join(ids, " "))
		return nil
	}
	script := "for s in " + sshx.QuoteArgs(ids...) + "; do docker service rollback -d \"$s\" >/dev/null || exit 1; done"
	if _, err := h.run(ctx, "service rollback", script, nil); err != nil {
		return fmt.Errorf("docker service rollback: %w", err)
	}
	return nil
}

// ServiceRemove removes services.
func (h *Host) ServiceRemove(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	if h.DryRun {
		h.Planf("docker service rm %s", strings.Join(ids, " "))
		return nil
	}
	if _, err := h.run(ctx, "service rm", "docker service rm "+sshx.QuoteArgs(ids...)+" >/dev/null", nil); err != nil {
		return fmt.Errorf("docker service rm: %w", err)
	}
	return nil
}

// StackRemove removes the whole stack (volumes stay).
func (h *Host) StackRemove(ctx context.Context) error {
	if h.DryRun {
		h.Planf("docker stack rm %s", h.Project)
		return nil
	}
	if _, err := h.run(ctx, "stack rm", "docker stack rm "+q(h.Project)+" >/dev/null", nil); err != nil {
		return fmt.Errorf("docker stack rm %s: %w", h.Project, err)
	}
	return nil
}
