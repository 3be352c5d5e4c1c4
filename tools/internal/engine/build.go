package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/registry"

	"github.com/slipway-dev/slipway/tools/internal/regauth"
)

// BuildOptions is one image build with the classic builder (the only one an
// engine without BuildKit sessions offers).
type BuildOptions struct {
	Context       io.Reader // tar of the build context; nil when RemoteContext is set
	RemoteContext string    // git or http URL the engine fetches itself
	Dockerfile    string    // path inside the context
	Tags          []string  // image:tag, all applied
	Args          map[string]*string
	Target        string
	Labels        map[string]string
	CacheFrom     []string
	ExtraHosts    []string // "host:ip"
	Network       string
	ShmSize       int64
	Pull          bool
	NoCache       bool
	Platform      string
	Isolation     string
	Ulimits       []Ulimit
	// Auth are credentials for the registries FROM images come from.
	Auth []regauth.Auth
}

// Ulimit is one build-container resource limit.
type Ulimit struct {
	Name       string
	Soft, Hard int64
}

// Build runs one build, streaming every message to fn, and returns the image ID.
// Cancelling ctx closes the connection, which makes the engine stop the build.
func (c *Client) Build(ctx context.Context, o BuildOptions, fn func(Message)) (string, error) {
	opts := build.ImageBuildOptions{
		Version:       build.BuilderV1,
		Tags:          o.Tags,
		RemoteContext: o.RemoteContext,
		Dockerfile:    o.Dockerfile,
		BuildArgs:     o.Args,
		Target:        o.Target,
		Labels:        o.Labels,
		CacheFrom:     o.CacheFrom,
		ExtraHosts:    o.ExtraHosts,
		NetworkMode:   o.Network,
		ShmSize:       o.ShmSize,
		PullParent:    o.Pull,
		NoCache:       o.NoCache,
		Platform:      o.Platform,
		Isolation:     container.Isolation(o.Isolation),
		Remove:        true,
		ForceRemove:   true,
		AuthConfigs:   map[string]registry.AuthConfig{},
	}
	for _, u := range o.Ulimits {
		opts.Ulimits = append(opts.Ulimits, &container.Ulimit{Name: u.Name, Soft: u.Soft, Hard: u.Hard})
	}
	for _, a := range o.Auth {
		if a.Anonymous() {
			continue
		}
		opts.AuthConfigs[a.ServerAddress] = registry.AuthConfig{
			Username: a.Username, Password: a.Password, ServerAddress: a.ServerAddress,
			IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken,
		}
	}
	resp, err := c.api.ImageBuild(ctx, o.Context, opts)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var id string
	err = readStream(resp.Body, func(m Message) {
		if len(m.Aux) > 0 {
			var r build.Result
			if json.Unmarshal(m.Aux, &r) == nil && r.ID != "" {
				id = r.ID
			}
		}
		if fn != nil {
			fn(m)
		}
	})
	if err != nil {
		return "", err
	}
	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	if id == "" && len(o.Tags) > 0 {
		// Engines before API 1.30 send no aux ID; ask for the tag instead.
		if id, err = c.ImageID(ctx, o.Tags[0]); err != nil {
			return "", fmt.Errorf("build finished but its image is unknown: %w", err)
		}
	}
	return id, nil
}
