package engine

import (
	"context"
	"fmt"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"
)

// ImageIDIfPresent returns the ID of a local image (by name:tag, name@digest
// or ID), or "" when the engine does not have it.
func (c *Client) ImageIDIfPresent(ctx context.Context, ref string) (string, error) {
	in, err := c.api.ImageInspect(ctx, ref)
	if cerrdefs.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("inspecting image %s: %w", ref, err)
	}
	return in.ID, nil
}

// RemoveImageTag removes one image name. Its layers stay as build cache for
// the next run (no pruning of parents); a missing name is not an error.
func (c *Client) RemoveImageTag(ctx context.Context, ref string) error {
	_, err := c.api.ImageRemove(ctx, ref, image.RemoveOptions{PruneChildren: false})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("removing image %s: %w", ref, err)
	}
	return nil
}
