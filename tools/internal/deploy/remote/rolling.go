package remote

// Server-side operations of the rolling strategy: the resolved compose model
// of releases (as the server's own Compose reads them, .env included), the
// config hashes Compose labels its containers with, the digests of the
// files a release carries, the project's containers with those labels, and
// stopping and removing single containers.

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v4"

	"github.com/slipway-dev/slipway/tools/internal/sshx"
)

// ReleaseConfig is one release as the server's Compose resolves it.
type ReleaseConfig struct {
	Release string
	Model   map[string]any    // `compose config`: interpolated, paths absolute
	Hashes  map[string]string // service -> `compose config --hash '*'`
	Files   map[string]string // file path relative to the release directory -> sha256 (.env excluded)
	Err     string            // why the release could not be read ("" when it could)
}

// Service returns the resolved definition of one service, nil if absent.
func (c *ReleaseConfig) Service(name string) map[string]any {
	services, _ := c.Model["services"].(map[string]any)
	s, _ := services[name].(map[string]any)
	return s
}

// Services lists the release's service names, sorted.
func (c *ReleaseConfig) Services() []string {
	services, _ := c.Model["services"].(map[string]any)
	names := make([]string, 0, len(services))
	for n := range services {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Section markers of the ReleaseConfigs script's output.
const (
	mkConfig  = "@@slipway-config "
	mkHash    = "@@slipway-hash "
	mkFiles   = "@@slipway-files "
	mkMissing = "@@slipway-missing "
	mkErr     = "@@slipway-err "
)

// ReleaseConfigs resolves releases (directories under releases/) with the
// server's Compose, in one session, the Compose runs side by side; the
// config hashes only of the releases in withHash (each Compose run costs a
// Python start-up on v1). A release whose directory is gone is left out of
// the result; one that Compose cannot read has Err set.
func (h *Host) ReleaseConfigs(ctx context.Context, releases []string, withHash map[string]bool) (map[string]*ReleaseConfig, error) {
	if h.Lib != nil {
		return h.Lib.Configs(ctx, h, releases)
	}
	var b strings.Builder
	b.WriteString(h.dirVar())
	b.WriteString(`t=$(mktemp -d "${TMPDIR:-/tmp}/slipway-cfg.XXXXXXXX") || exit 1
trap 'rm -rf "$t"' EXIT
`)
	for i, r := range releases {
		if err := validRelease(r); err != nil {
			return nil, err
		}
		dir := q(h.Dir + "/releases/" + r)
		cfg := sshx.QuoteArgs(h.ComposeArgs(r, "config")...)
		hash := sshx.QuoteArgs(h.ComposeArgs(r, "config", "--hash", "*")...)
		if !withHash[r] {
			hash = "true"
		}
		fmt.Fprintf(&b, `if [ -d %[1]s ]; then
  (cd %[1]s && %[2]s >"$t/%[4]d.c" 2>"$t/%[4]d.ce"; echo $? >"$t/%[4]d.cr") &
  (cd %[1]s && %[3]s >"$t/%[4]d.h" 2>"$t/%[4]d.he"; echo $? >"$t/%[4]d.hr") &
fi
`, dir, cfg, hash, i)
	}
	b.WriteString("wait\n")
	for i, r := range releases {
		dir := q(h.Dir + "/releases/" + r)
		fmt.Fprintf(&b, `if [ ! -d %[1]s ]; then echo %[3]s; else
  if [ "$(cat "$t/%[2]d.cr")" != 0 ]; then echo %[4]s; cat "$t/%[2]d.ce"; echo; fi
  if [ "$(cat "$t/%[2]d.hr")" != 0 ]; then echo %[4]s; cat "$t/%[2]d.he"; echo; fi
  echo %[5]s; cat "$t/%[2]d.c"
  echo %[6]s; cat "$t/%[2]d.h"
  echo %[7]s; (cd %[1]s && find . -type f ! -name .env -exec sha256sum {} + 2>/dev/null)
fi
`, dir, i, q(mkMissing+r), q(mkErr+r), q(mkConfig+r), q(mkHash+r), q(mkFiles+r))
	}
	b.WriteString("exit 0\n")
	out, err := h.runQuiet(ctx, "release configs", b.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("reading the releases' compose configuration on the server: %w", err)
	}
	return parseReleaseConfigs(string(out))
}

func parseReleaseConfigs(out string) (map[string]*ReleaseConfig, error) {
	res := map[string]*ReleaseConfig{}
	var cur *ReleaseConfig
	section := ""
	var body strings.Builder
	flush := func() error {
		if cur == nil {
			return nil
		}
		text := body.String()
		body.Reset()
		switch section {
		case "err":
			if s := strings.TrimSpace(text); s != "" {
				cur.Err = strings.TrimSpace(cur.Err + "\n" + lastLines(s, 6))
			}
		case "config":
			if cur.Err != "" {
				return nil
			}
			var m map[string]any
			if err := yaml.Unmarshal([]byte(text), &m); err != nil {
				cur.Err = fmt.Sprintf("reading the output of compose config: %v", err)
				return nil
			}
			cur.Model = m
		case "hash":
			for _, line := range strings.Split(text, "\n") {
				if f := strings.Fields(line); len(f) == 2 {
					cur.Hashes[f[0]] = f[1]
				}
			}
		case "files":
			for _, line := range strings.Split(text, "\n") {
				sum, path, ok := strings.Cut(line, "  ")
				if ok && len(sum) == 64 {
					cur.Files[strings.TrimPrefix(path, "./")] = sum
				}
			}
		}
		return nil
	}
	get := func(name string) *ReleaseConfig {
		if c := res[name]; c != nil {
			return c
		}
		c := &ReleaseConfig{Release: name, Hashes: map[string]string{}, Files: map[string]string{}}
		res[name] = c
		return c
	}
	for _, line := range strings.Split(out, "\n") {
		marker := ""
		for _, m := range []string{mkConfig, mkHash, mkFiles, mkMissing, mkErr} {
			if strings.HasPrefix(line, m) {
				marker = m
				break
			}
		}
		if marker == "" {
			body.WriteString(line)
			body.WriteByte('\n')
			continue
		}
		if err := flush(); err != nil {
			return nil, err
		}
		name := strings.TrimSpace(strings.TrimPrefix(line, marker))
		switch marker {
		case mkMissing:
			cur, section = nil, ""
		case mkErr:
			cur, section = get(name), "err"
		case mkConfig:
			cur, section = get(name), "config"
		case mkHash:
			cur, section = get(name), "hash"
		case mkFiles:
			cur, section = get(name), "files"
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	for _, c := range res {
		if c.Err == "" && c.Model == nil {
			c.Err = "compose config printed nothing"
		}
	}
	return res, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// RollContainer is one of the project's containers with what a rolling
// update needs to know about it.
type RollContainer struct {
	Container
	Number      int      // com.docker.compose.container-number
	ConfigHash  string   // com.docker.compose.config-hash
	Healthcheck bool     // it has a (not disabled) healthcheck
	Networks    []string // networks it is attached to
}

type rollInspect struct {
	inspectJSON
	Config struct {
		Image       string
		Labels      map[string]string
		Healthcheck *struct{ Test []string }
	}
	NetworkSettings struct {
		Networks map[string]json.RawMessage
	}
}

// RollContainers lists the project's service containers (one-off `run`
// containers excluded) with their compose labels, sorted by service and
// container number.
func (h *Host) RollContainers(ctx context.Context) ([]RollContainer, error) {
	if h.eng != nil {
		return h.rollContainersAPI(ctx)
	}
	script := `ids=$(docker ps -aq --no-trunc --filter ` + q("label=com.docker.compose.project="+h.Project) + `) || exit 1
[ -z "$ids" ] && { echo '[]'; exit 0; }
docker inspect $ids 2>/dev/null
exit 0`
	out, err := h.runQuiet(ctx, "containers", script, nil)
	if err != nil {
		return nil, fmt.Errorf("listing the project's containers: %w", err)
	}
	return parseRollInspect(out, h.Project)
}

// InspectContainers reads the given containers (gone ones are left out).
func (h *Host) InspectContainers(ctx context.Context, ids []string) ([]RollContainer, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var out []byte
	var err error
	if h.eng != nil {
		out, err = h.inspectAPI(ctx, ids)
	} else {
		out, err = h.runQuiet(ctx, "inspect", "docker inspect "+sshx.QuoteArgs(ids...)+" 2>/dev/null\nexit 0", nil)
	}
	if err != nil {
		return nil, fmt.Errorf("inspecting containers: %w", err)
	}
	return parseRollInspect(out, "")
}

func parseRollInspect(out []byte, project string) ([]RollContainer, error) {
	s := strings.TrimSpace(string(out))
	if s == "" {
		return nil, nil
	}
	var raw []rollInspect
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil, fmt.Errorf("reading docker inspect output: %w", err)
	}
	var cs []RollContainer
	for _, r := range raw {
		l := r.Config.Labels
		if strings.EqualFold(l["com.docker.compose.oneoff"], "true") {
			continue
		}
		if project != "" && l["com.docker.compose.project"] != project {
			continue
		}
		c := RollContainer{
			Container: Container{
				ID: r.ID, Name: strings.TrimPrefix(r.Name, "/"), Service: l["com.docker.compose.service"],
				Image: r.Config.Image, State: r.State.Status, ExitCode: r.State.ExitCode,
				RestartCount: r.RestartCount, RestartPolicy: r.HostConfig.RestartPolicy.Name, StartedAt: r.State.StartedAt,
			},
			ConfigHash: l["com.docker.compose.config-hash"],
		}
		c.Number, _ = strconv.Atoi(l["com.docker.compose.container-number"])
		if r.State.Health != nil {
			c.Health = r.State.Health.Status
		}
		if wd := l["com.docker.compose.project.working_dir"]; wd != "" {
			c.Release = releaseName(wd)
		}
		if hc := r.Config.Healthcheck; hc != nil && len(hc.Test) > 0 && hc.Test[0] != "NONE" {
			c.Healthcheck = true
		}
		for n := range r.NetworkSettings.Networks {
			c.Networks = append(c.Networks, n)
		}
		sort.Strings(c.Networks)
		cs = append(cs, c)
	}
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].Service != cs[j].Service {
			return cs[i].Service < cs[j].Service
		}
		if cs[i].Number != cs[j].Number {
			return cs[i].Number < cs[j].Number
		}
		return cs[i].Name < cs[j].Name
	})
	return cs, nil
}

// StopRemove stops containers gracefully (their stop signal, then SIGKILL
// after grace) and removes them (anonymous volumes too, as compose does).
func (h *Host) StopRemove(ctx context.Context, ids []string, grace time.Duration) error {
	if len(ids) == 0 {
		return nil
	}
	secs := int((grace + time.Second - 1) / time.Second)
	script := fmt.Sprintf("docker stop -t %d %s >/dev/null && docker rm -v %s >/dev/null", secs, sshx.QuoteArgs(ids...), sshx.QuoteArgs(ids...))
	if h.DryRun {
		h.Planf("docker stop -t %d %s; docker rm -v", secs, strings.Join(shortIDs(ids), " "))
		return nil
	}
	if h.eng != nil {
		err := h.stopRemoveAPI(ctx, ids, grace)
		if err != nil {
			return fmt.Errorf("stopping and removing %s: %w", strings.Join(shortIDs(ids), ", "), err)
		}
		return nil
	}
	if _, err := h.run(ctx, "stop containers", script, nil); err != nil {
		return fmt.Errorf("stopping and removing %s: %w", strings.Join(shortIDs(ids), ", "), err)
	}
	return nil
}

// RemoveForce kills and removes containers at once (new containers that
// failed their gate).
func (h *Host) RemoveForce(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	if h.DryRun {
		h.Planf("docker rm -f -v %s", strings.Join(shortIDs(ids), " "))
		return nil
	}
	var err error
	if h.eng != nil {
		err = h.removeAPI(ctx, ids, true)
	} else {
		_, err = h.run(ctx, "remove containers", "docker rm -f -v "+sshx.QuoteArgs(ids...)+" >/dev/null", nil)
	}
	if err != nil {
		return fmt.Errorf("removing %s: %w", strings.Join(shortIDs(ids), ", "), err)
	}
	return nil
}

func shortIDs(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		if len(id) > 12 {
			id = id[:12]
		}
		out[i] = id
	}
	return out
}

// NetAttach is a network a container joins, with its DNS aliases there.
type NetAttach struct {
	Network string
	Aliases []string
}

// Reattach disconnects a container from every network it is on and connects
// it to nets with the given aliases. On a container that was created but not
// started nothing is cut; on a running one its open connections on those
// networks are.
func (h *Host) Reattach(ctx context.Context, id string, nets []NetAttach) error {
	var b strings.Builder
	fmt.Fprintf(&b, "c=%s\n", q(id))
	b.WriteString(`for n in $(docker inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}' "$c"); do docker network disconnect "$n" "$c" >/dev/null || exit 1; done` + "\n")
	var plan []string
	for _, n := range nets {
		args := []string{"docker", "network", "connect"}
		for _, a := range n.Aliases {
			args = append(args, "--alias", a)
		}
		args = append(args, n.Network)
		fmt.Fprintf(&b, "%s \"$c\" >/dev/null || exit 1\n", sshx.QuoteArgs(args...))
		plan = append(plan, sshx.QuoteArgs(args...))
	}
	if h.DryRun {
		h.Planf("docker network disconnect (all) + %s %s", strings.Join(plan, "; "), shortIDs([]string{id})[0])
		return nil
	}
	var err error
	if h.eng != nil {
		err = h.reattachAPI(ctx, id, nets)
	} else {
		_, err = h.run(ctx, "network aliases", b.String(), nil)
	}
	if err != nil {
		return fmt.Errorf("attaching container %s to its networks: %w", shortIDs([]string{id})[0], err)
	}
	return nil
}

// StartContainers starts created containers.
func (h *Host) StartContainers(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	if h.DryRun {
		h.Planf("docker start %s", strings.Join(shortIDs(ids), " "))
		return nil
	}
	var err error
	if h.eng != nil {
		err = h.startAPI(ctx, ids)
	} else {
		_, err = h.run(ctx, "start containers", "docker start "+sshx.QuoteArgs(ids...)+" >/dev/null", nil)
	}
	if err != nil {
		return fmt.Errorf("starting %s: %w", strings.Join(shortIDs(ids), ", "), err)
	}
	return nil
}
