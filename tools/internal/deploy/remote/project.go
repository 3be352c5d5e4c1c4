package remote

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/sshx"
)

// Volumes lists the named volumes of the host's project: those compose
// labels with the project (v1 and v2) and those a swarm stack of that name
// created. External volumes carry no such label and are never listed.
func (h *Host) Volumes(ctx context.Context) ([]string, error) {
	if h.eng != nil {
		return h.volumesAPI(ctx)
	}
	script := `{ docker volume ls -q --filter ` + q("label=com.docker.compose.project="+h.Project) + ` &&
  docker volume ls -q --filter ` + q("label=com.docker.stack.namespace="+h.Project) + `; }`
	out, err := h.runQuiet(ctx, "volumes", script, nil)
	if err != nil {
		return nil, fmt.Errorf("listing the volumes of project %s: %w", h.Project, err)
	}
	var vols []string
	seen := map[string]bool{}
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" && !seen[l] {
			seen[l] = true
			vols = append(vols, l)
		}
	}
	sort.Strings(vols)
	return vols, nil
}

// RemoveVolumes removes named volumes (their containers must be gone). A change.
func (h *Host) RemoveVolumes(ctx context.Context, names []string) error {
	if len(names) == 0 {
		return nil
	}
	if h.DryRun {
		h.Planf("docker volume rm %s", strings.Join(names, " "))
		return nil
	}
	if _, err := h.run(ctx, "volume rm", "docker volume rm "+sshx.QuoteArgs(names...)+" >/dev/null", nil); err != nil {
		return fmt.Errorf("docker volume rm %s: %w", strings.Join(names, " "), err)
	}
	return nil
}

// WaitStackGone waits until the stack named like the host's project has no
// services, containers or networks left: `docker stack rm` returns before
// they are gone, and a stack deployed meanwhile could clash with them (ports).
func (h *Host) WaitStackGone(ctx context.Context, timeout time.Duration) error {
	if h.DryRun {
		return nil
	}
	label := q("label=com.docker.stack.namespace=" + h.Project)
	script := fmt.Sprintf(`n=%d
while :; do
  s=$(docker service ls -q --filter %[2]s) || exit 1
  c=$(docker ps -aq --filter %[2]s) || exit 1
  w=$(docker network ls -q --filter %[2]s) || exit 1
  [ -z "$s$c$w" ] && exit 0
  n=$((n-1)); [ "$n" -le 0 ] && exit 3
  sleep 1
done`, int(timeout/time.Second)+1, label)
	if _, err := h.runQuiet(ctx, "stack gone", script, nil); err != nil {
		return fmt.Errorf("waiting for stack %s to be removed (up to %s): %w", h.Project, timeout, err)
	}
	return nil
}
