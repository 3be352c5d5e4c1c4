package engine

import (
	"context"
	"fmt"
	"io"
	"net"

	"github.com/docker/docker/api/types/versions"
)

// DialHijack opens a raw connection to one of the engine's upgrade endpoints
// (/grpc for its embedded BuildKit, /session for a build's session), as the
// docker CLI and buildx's docker driver do.
func (c *Client) DialHijack(ctx context.Context, url, proto string, meta map[string][]string) (net.Conn, error) {
	return c.api.DialHijack(ctx, url, proto, meta)
}

// HasBuildKit reports whether the engine serves BuildKit over /grpc: Engine
// API 1.39 (Docker 18.09) and later do.
func (c *Client) HasBuildKit(ctx context.Context) bool {
	c.api.NegotiateAPIVersion(ctx)
	return !versions.LessThan(c.api.ClientVersion(), "1.39")
}

// APIVersion is the negotiated Engine API version.
func (c *Client) APIVersion(ctx context.Context) string {
	c.api.NegotiateAPIVersion(ctx)
	return c.api.ClientVersion()
}

// LoadImage loads an image tarball (docker save format) into the engine and
// reads the engine's answer to its end, failing on an error message in it.
func (c *Client) LoadImage(ctx context.Context, r io.Reader) error {
	resp, err := c.api.ImageLoad(ctx, r)
	if err != nil {
		return fmt.Errorf("loading the built image into the engine: %w", err)
	}
	defer resp.Body.Close()
	if err := readStream(resp.Body, nil); err != nil {
		return fmt.Errorf("loading the built image into the engine: %w", err)
	}
	return nil
}
