package remote

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Container is one of the project's containers as `docker inspect` shows it.
type Container struct {
	ID            string `json:"id"`
	Name          string `json:"name"`
	Service       string `json:"service"`
	Image         string `json:"image"`
	State         string `json:"state"`            // running, exited, restarting, created, dead, paused
	Health        string `json:"health,omitempty"` // healthy, unhealthy, starting; "" without a healthcheck
	ExitCode      int    `json:"exitCode"`
	RestartCount  int    `json:"restartCount"`
	RestartPolicy string `json:"restartPolicy,omitempty"`
	StartedAt     string `json:"startedAt,omitempty"`
	Release       string `json:"release,omitempty"` // release directory the container was created from
}

type inspectJSON struct {
	ID           string
	Name         string
	RestartCount int
	State        struct {
		Status    string
		ExitCode  int
		StartedAt string
		Health    *struct{ Status string }
	}
	Config struct {
		Image  string
		Labels map[string]string
	}
	HostConfig struct {
		RestartPolicy struct{ Name string }
	}
}

// Containers lists the project's service containers (one-off `run`
// containers excluded), sorted by service and name.
func (h *Host) Containers(ctx context.Context) ([]Container, error) {
	if h.eng != nil {
		return h.containersAPI(ctx)
	}
	label := "com.docker.compose.project=" + h.Project
	script := `ids=$(docker ps -aq --no-trunc --filter ` + q("label="+label) + `) || exit 1
[ -z "$ids" ] && { echo '[]'; exit 0; }
docker inspect $ids`
	out, err := h.runQuiet(ctx, "containers", script, nil)
	if err != nil {
		return nil, fmt.Errorf("listing the project's containers: %w", err)
	}
	var raw []inspectJSON
	if err := json.Unmarshal(out, &raw); err != nil {
		return nil, fmt.Errorf("listing the project's containers: reading docker inspect output: %w", err)
	}
	var cs []Container
	for _, r := range raw {
		if strings.EqualFold(r.Config.Labels["com.docker.compose.oneoff"], "true") {
			continue
		}
		c := Container{
			ID:            r.ID,
			Name:          strings.TrimPrefix(r.Name, "/"),
			Service:       r.Config.Labels["com.docker.compose.service"],
			Image:         r.Config.Image,
			State:         r.State.Status,
			ExitCode:      r.State.ExitCode,
			RestartCount:  r.RestartCount,
			RestartPolicy: r.HostConfig.RestartPolicy.Name,
			StartedAt:     r.State.StartedAt,
		}
		if r.State.Health != nil {
			c.Health = r.State.Health.Status
		}
		if wd := r.Config.Labels["com.docker.compose.project.working_dir"]; wd != "" {
			c.Release = releaseName(wd)
		}
		cs = append(cs, c)
	}
	sortContainers(cs)
	return cs, nil
}

// sortContainers orders by service, then name.
func sortContainers(cs []Container) {
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].Service != cs[j].Service {
			return cs[i].Service < cs[j].Service
		}
		return cs[i].Name < cs[j].Name
	})
}

// Verdict classifies a container for the health gate.
type Verdict int

// Verdicts: still starting, fine, or failed for good.
const (
	Pending Verdict = iota
	Ready
	Failed
)

// Judge says whether c passes the health gate: running (and healthy where it
// has a healthcheck). A container that exited, is restarting (crash loop) or
// turned unhealthy has failed. One that exited 0 without a restart policy is
// a finished one-shot task (an init or migration service) and passes.
func Judge(c Container) (Verdict, string) {
	switch c.State {
	case "running":
		switch c.Health {
		case "", "healthy":
			return Ready, "running" + suffix(c.Health)
		case "unhealthy":
			return Failed, "unhealthy"
		default:
			return Pending, "running, health " + c.Health
		}
	case "created":
		return Pending, "created"
	case "restarting":
		return Failed, fmt.Sprintf("restarting (crash loop, exit code %d, %d restarts)", c.ExitCode, c.RestartCount)
	case "exited":
		if c.ExitCode == 0 && (c.RestartPolicy == "" || c.RestartPolicy == "no") {
			return Ready, "exited 0 (one-shot)"
		}
		return Failed, "exited with code " + strconv.Itoa(c.ExitCode)
	default:
		return Failed, c.State
	}
}

func suffix(health string) string {
	if health == "" {
		return ""
	}
	return ", " + health
}

// Logs returns the last n lines of each container's output (stdout and stderr).
func (h *Host) Logs(ctx context.Context, ids []string, n int) (map[string]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	if h.eng != nil {
		return h.logsAPI(ctx, ids, n)
	}
	var b strings.Builder
	for _, id := range ids {
		fmt.Fprintf(&b, "echo '@@logs %s'; docker logs --tail %d %s 2>&1\n", id, n, q(id))
	}
	out, err := h.runQuiet(ctx, "logs", b.String(), nil)
	res := map[string]string{}
	cur := ""
	for _, line := range strings.Split(string(out), "\n") {
		if id, ok := strings.CutPrefix(line, "@@logs "); ok {
			cur = id
			continue
		}
		if cur != "" {
			res[cur] += line + "\n"
		}
	}
	for k, v := range res {
		res[k] = strings.TrimRight(v, "\n")
	}
	if err != nil {
		return res, fmt.Errorf("reading container logs: %w", err)
	}
	return res, nil
}

// ServerTime is the server's clock (for the age of a release or lock).
func (h *Host) ServerTime(ctx context.Context) (time.Time, error) {
	out, err := h.runQuiet(ctx, "date", "date +%s", nil)
	if err != nil {
		return time.Time{}, err
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("reading the server's clock: %q", out)
	}
	return time.Unix(n, 0), nil
}
