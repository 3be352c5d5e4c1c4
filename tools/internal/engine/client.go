// Package engine is slipway's one door to the Docker Engine API. Every engine
// call goes through here so that moving from github.com/docker/docker/client to
// its successor github.com/moby/moby/client is a one-package change.
package engine

import (
	"context"
	"fmt"

	"github.com/docker/docker/client"
)

// Client wraps the Docker SDK client.
type Client struct {
	api *client.Client
}

// New connects to the engine named by DOCKER_HOST (default the local socket),
// negotiating the API version so engines from API 1.24 up work.
func New(ctx context.Context) (*Client, error) {
	api, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker engine: %w", err)
	}
	if _, err := api.Ping(ctx); err != nil {
		api.Close()
		return nil, fmt.Errorf("docker engine at %s is not reachable: %w (start dockerd, or set DOCKER_HOST)", api.DaemonHost(), err)
	}
	return &Client{api: api}, nil
}

// Close releases the connection.
func (c *Client) Close() error { return c.api.Close() }

// API is the SDK client, for the one package that drives the engine through
// a library of its own (Compose's).
func (c *Client) API() client.APIClient { return c.api }
