// Package buildkit builds images with BuildKit's own Go client: through the
// engine's embedded BuildKit (the Engine API's /grpc and /session endpoints,
// as buildx's "docker" driver does) or a standalone buildkitd. The Dockerfile
// frontend is compiled in and runs here, on the client, so heredocs,
// COPY --link, RUN --mount and named contexts work whatever frontend the
// engine ships, and a "# syntax=" line needs no registry.
package buildkit

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/moby/buildkit/client"

	"github.com/slipway-dev/slipway/tools/internal/engine"
	"github.com/slipway-dev/slipway/tools/internal/exit"
)

// Kind is where images are built.
type Kind int

const (
	Engine  Kind = iota // the engine's embedded BuildKit (default)
	Remote              // a standalone buildkitd; images are loaded into the engine
	Classic             // the engine's classic builder
)

// Target is a parsed --builder value.
type Target struct {
	Kind Kind
	Addr string // Remote: tcp://host:port or unix:///path
}

func (t Target) String() string {
	switch t.Kind {
	case Remote:
		return "buildkitd at " + t.Addr
	case Classic:
		return "the engine's classic builder"
	}
	return "the engine's BuildKit"
}

// ParseTarget reads --builder: "" or "buildkit" (the engine's BuildKit),
// "classic", or the address of a standalone buildkitd.
func ParseTarget(s string) (Target, error) {
	switch s = strings.TrimSpace(s); s {
	case "", "buildkit", "engine", "default":
		return Target{Kind: Engine}, nil
	case "classic":
		return Target{Kind: Classic}, nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "tcp" && u.Scheme != "unix") || (u.Scheme == "tcp" && u.Host == "") || (u.Scheme == "unix" && u.Path == "") {
		return Target{}, exit.Usagef("--builder %q: want buildkit, classic, tcp://HOST:PORT or unix:///PATH", s)
	}
	return Target{Kind: Remote, Addr: s}, nil
}

// Builder is a connection to one BuildKit daemon.
type Builder struct {
	target Target
	c      *client.Client
	eng    *engine.Client
}

// Connect opens a client for t (not Classic). eng is the engine images end up
// in; for Engine it also carries the BuildKit connection.
func Connect(ctx context.Context, t Target, eng *engine.Client) (*Builder, error) {
	var (
		c   *client.Client
		err error
	)
	switch t.Kind {
	case Engine:
		c, err = client.New(ctx, "",
			client.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
				return eng.DialHijack(ctx, "/grpc", "h2c", nil)
			}),
			client.WithSessionDialer(func(ctx context.Context, proto string, meta map[string][]string) (net.Conn, error) {
				return eng.DialHijack(ctx, "/session", proto, meta)
			}))
	case Remote:
		c, err = client.New(ctx, t.Addr)
	default:
		return nil, fmt.Errorf("buildkit: %s is not a BuildKit daemon", t)
	}
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", t, err)
	}
	if _, err := c.Info(ctx); err != nil && t.Kind == Remote {
		// Engine BuildKit before v0.11 has no Info call; remote daemons do.
		c.Close()
		return nil, fmt.Errorf("%s is not reachable: %w (is buildkitd running there? check --builder)", t, err)
	}
	return &Builder{target: t, c: c, eng: eng}, nil
}

// Close releases the connection.
func (b *Builder) Close() error { return b.c.Close() }

// Target is what b builds on.
func (b *Builder) Target() Target { return b.target }
