package engine

import (
	"context"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/registry"

	"github.com/slipway-dev/slipway/tools/internal/regauth"
)

// ImageID returns the local image ID (sha256:...) of ref.
func (c *Client) ImageID(ctx context.Context, ref string) (string, error) {
	img, err := c.api.ImageInspect(ctx, ref)
	if err != nil {
		return "", err
	}
	return img.ID, nil
}

// ImageLabels returns the labels of a local image.
func (c *Client) ImageLabels(ctx context.Context, ref string) (map[string]string, error) {
	img, err := c.api.ImageInspect(ctx, ref)
	if err != nil {
		return nil, err
	}
	if img.Config == nil {
		return map[string]string{}, nil
	}
	return img.Config.Labels, nil
}

// RepoDigests returns the local image's repo digests (repo@sha256:...).
func (c *Client) RepoDigests(ctx context.Context, ref string) ([]string, error) {
	img, err := c.api.ImageInspect(ctx, ref)
	if err != nil {
		return nil, err
	}
	return img.RepoDigests, nil
}

// Tag adds target as a name for source.
func (c *Client) Tag(ctx context.Context, source, target string) error {
	return c.api.ImageTag(ctx, source, target)
}

// RemoveImage untags ref (and deletes the image when no other name holds it).
func (c *Client) RemoveImage(ctx context.Context, ref string, force bool) error {
	_, err := c.api.ImageRemove(ctx, ref, image.RemoveOptions{Force: force, PruneChildren: true})
	return err
}

// Pull fetches ref, streaming progress to fn, reading the stream to its end.
func (c *Client) Pull(ctx context.Context, ref string, auth regauth.Auth, fn func(Message)) error {
	rc, err := c.api.ImagePull(ctx, ref, image.PullOptions{RegistryAuth: auth.Encoded()})
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := readStream(rc, fn); err != nil {
		return err
	}
	return ctx.Err()
}

// Login checks auth against its registry through the engine (what `docker
// login` does); the engine keeps nothing.
func (c *Client) Login(ctx context.Context, auth regauth.Auth) error {
	_, err := c.api.RegistryLogin(ctx, registry.AuthConfig{Username: auth.Username, Password: auth.Password,
		IdentityToken: auth.IdentityToken, RegistryToken: auth.RegistryToken, ServerAddress: auth.ServerAddress})
	return err
}

// ServerVersion is the engine's version ("20.10.24+dfsg1").
func (c *Client) ServerVersion(ctx context.Context) (string, error) {
	v, err := c.api.ServerVersion(ctx)
	if err != nil {
		return "", err
	}
	return v.Version, nil
}
