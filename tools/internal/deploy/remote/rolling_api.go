package remote

// The rolling strategy's container operations through the engine API (see
// UseEngineAPI), for servers converged by the compose library: no docker
// CLI needed on the server.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
)

// inspectAPI is `docker inspect` of ids through the API: the same JSON,
// gone containers left out.
func (h *Host) inspectAPI(ctx context.Context, ids []string) ([]byte, error) {
	c, err := h.Engine(ctx)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	b.WriteString("[")
	n := 0
	for _, id := range ids {
		_, raw, err := c.API().ContainerInspectWithRaw(ctx, id, false)
		if cerrdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n > 0 {
			b.WriteString(",")
		}
		b.Write(raw)
		n++
	}
	b.WriteString("]")
	return []byte(b.String()), nil
}

func (h *Host) rollContainersAPI(ctx context.Context) ([]RollContainer, error) {
	c, err := h.Engine(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing the project's containers: %w", err)
	}
	list, err := c.API().ContainerList(ctx, container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", "com.docker.compose.project="+h.Project))})
	if err != nil {
		return nil, fmt.Errorf("listing the project's containers: %w", err)
	}
	ids := make([]string, len(list))
	for i, ct := range list {
		ids[i] = ct.ID
	}
	out, err := h.inspectAPI(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("listing the project's containers: %w", err)
	}
	return parseRollInspect(out, h.Project)
}

func (h *Host) stopRemoveAPI(ctx context.Context, ids []string, grace time.Duration) error {
	c, err := h.Engine(ctx)
	if err != nil {
		return err
	}
	secs := int((grace + time.Second - 1) / time.Second)
	for _, id := range ids {
		if err := c.API().ContainerStop(ctx, id, container.StopOptions{Timeout: &secs}); err != nil && !cerrdefs.IsNotFound(err) {
			return err
		}
	}
	return h.removeAPI(ctx, ids, false)
}

// removeAPI removes containers with their anonymous volumes, as compose does.
func (h *Host) removeAPI(ctx context.Context, ids []string, force bool) error {
	c, err := h.Engine(ctx)
	if err != nil {
		return err
	}
	for _, id := range ids {
		err := c.API().ContainerRemove(ctx, id, container.RemoveOptions{Force: force, RemoveVolumes: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			return err
		}
	}
	return nil
}

func (h *Host) reattachAPI(ctx context.Context, id string, nets []NetAttach) error {
	c, err := h.Engine(ctx)
	if err != nil {
		return err
	}
	info, err := c.API().ContainerInspect(ctx, id)
	if err != nil {
		return err
	}
	if info.NetworkSettings != nil {
		for n := range info.NetworkSettings.Networks {
			if err := c.API().NetworkDisconnect(ctx, n, id, false); err != nil {
				return err
			}
		}
	}
	for _, n := range nets {
		if err := c.API().NetworkConnect(ctx, n.Network, id, &network.EndpointSettings{Aliases: n.Aliases}); err != nil {
			return err
		}
	}
	return nil
}

func (h *Host) startAPI(ctx context.Context, ids []string) error {
	c, err := h.Engine(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		if err := c.API().ContainerStart(ctx, id, container.StartOptions{}); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
