package deploy

import (
	"context"
	"errors"
	"fmt"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/slipway-dev/slipway/tools/internal/composelib"
	"github.com/slipway-dev/slipway/tools/internal/deploy/remote"
	"github.com/slipway-dev/slipway/tools/internal/exit"
)

// composeLibrary converges a server's releases with Compose's own code
// (composelib) over the server's engine, reached through the host's SSH
// connection (remote.Host.Engine): the server needs Docker Engine, not
// Compose.
type composeLibrary struct{}

func (composeLibrary) Name() string { return "library " + composelib.Version }

func (l composeLibrary) Up(ctx context.Context, h *remote.Host, release string) error {
	return l.with(ctx, h, release, func(c *composelib.Compose, p *types.Project) error { return c.Up(ctx, p) })
}

func (l composeLibrary) Down(ctx context.Context, h *remote.Host, release string) error {
	return l.with(ctx, h, release, func(c *composelib.Compose, p *types.Project) error { return c.Down(ctx, p) })
}

func (l composeLibrary) Run(ctx context.Context, h *remote.Host, release, service string, command []string) error {
	return l.with(ctx, h, release, func(c *composelib.Compose, p *types.Project) error { return c.Run(ctx, p, service, command) })
}

func (l composeLibrary) Scale(ctx context.Context, h *remote.Host, release, service string, n int, start bool) error {
	return l.with(ctx, h, release, func(c *composelib.Compose, p *types.Project) error { return c.Scale(ctx, p, service, n, start) })
}

// Configs reads each release with Compose's loader; one that is gone is
// left out, one that does not load has Err set.
func (composeLibrary) Configs(ctx context.Context, h *remote.Host, releases []string) (map[string]*remote.ReleaseConfig, error) {
	out := map[string]*remote.ReleaseConfig{}
	for _, r := range releases {
		src, err := h.ReadRelease(ctx, r)
		if err != nil {
			return nil, err
		}
		if src == nil {
			continue
		}
		// Store mounts stay as they are: content-addressed, so they compare.
		cfg, err := loadRelease(ctx, h, r, src, nil, h.ReadFiles)
		if err != nil {
			cfg = &remote.ReleaseConfig{Release: r, Err: err.Error()}
		}
		out[r] = cfg
	}
	return out, nil
}

// with loads the release as Compose on the server would (its files read in
// one session) and runs fn against the engine.
func (l composeLibrary) with(ctx context.Context, h *remote.Host, release string, fn func(*composelib.Compose, *types.Project) error) error {
	dir := h.Dir + "/releases/" + release
	files, err := h.ReadFiles(ctx, []string{dir + "/compose.yaml", dir + "/.env"})
	if err != nil {
		return err
	}
	compose, ok := files[dir+"/compose.yaml"]
	if !ok {
		return fmt.Errorf("%s/compose.yaml is missing on the server", dir)
	}
	p, err := composelib.Load(ctx, composelib.Release{Project: h.Project, Dir: dir, Compose: compose, DotEnv: files[dir+"/.env"]}, h.ReadFiles)
	if err != nil {
		return err
	}
	eng, err := h.Engine(ctx)
	if err != nil {
		return err
	}
	out := h.LogWriter()
	defer out.Close()
	c, err := composelib.New(eng.API(), out)
	if err != nil {
		return err
	}
	return fn(c, p)
}

// Compose modes (--compose): how a host's releases are converged.
const (
	ComposeAuto    = "auto"    // the server's Compose; the library where it has none
	ComposeLibrary = "library" // always Compose's own code over the SSH connection
	ComposeCLI     = "cli"     // always the server's docker compose / docker-compose
)

// validComposeMode checks --compose.
func validComposeMode(mode string) error {
	switch mode {
	case "", ComposeAuto, ComposeLibrary, ComposeCLI:
		return nil
	}
	return exit.Usagef("--compose %q: want auto, library or cli", mode)
}

// libraryMayHelp reports whether Probe's error is a missing Compose or
// docker CLI, which the compose library does without.
func libraryMayHelp(probeErr error) bool {
	return errors.Is(probeErr, remote.ErrNoCompose) || errors.Is(probeErr, remote.ErrNoDocker)
}

// chooseConverger decides, from --compose, the strategy and what the probe
// found (probeErr is Probe's error), whether h converges through the compose
// library, and sets it up: then the engine API carries reads and pulls too,
// and a server without the docker CLI is reached through its engine's
// socket. An error means the host cannot be deployed.
func chooseConverger(ctx context.Context, mode, strategy string, h *remote.Host, facts *remote.Facts, probeErr error) error {
	noCompose := libraryMayHelp(probeErr)
	if probeErr != nil && !noCompose {
		return probeErr
	}
	switch {
	case mode == ComposeCLI:
		return probeErr
	case mode != ComposeLibrary && !noCompose:
		return nil
	case strategy != "recreate" && strategy != "rolling":
		if mode == ComposeLibrary {
			return fmt.Errorf("--compose library: this release was deployed with the %s strategy, which drives the server's own Compose (or docker stack); roll it back with --compose auto", strategy)
		}
		return fmt.Errorf("%w; the %s strategy needs it (install the Compose plugin), while --strategy recreate or rolling converges a server without Compose through the SSH connection", probeErr, strategy)
	}
	// Reached before anything changes: a library that cannot reach the
	// engine must fail here, not mid-converge.
	err := h.UseEngineAPIOf(ctx, facts)
	switch {
	case err != nil && probeErr != nil:
		return fmt.Errorf("%w; Compose's own code in slipway could not reach the server's engine either: %v", probeErr, err)
	case err != nil:
		return fmt.Errorf("--compose library: %v", err)
	}
	h.Lib = composeLibrary{}
	// What the library reads is Compose v2's file format.
	h.Kind = remote.ComposeV2
	return nil
}
