package buildkit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/frontend/dockerfile/builder"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/secrets/secretsprovider"
	"github.com/moby/buildkit/session/sshforward/sshprovider"
	"github.com/moby/buildkit/util/progress/progressui"
	"github.com/tonistiigi/fsutil"
	"golang.org/x/sync/errgroup"
)

// Request is one image build. Paths are absolute.
type Request struct {
	Service    string
	Context    string // a local directory, or a git/http URL BuildKit fetches
	Dockerfile string // path of the Dockerfile ("" with Inline)
	Inline     string // dockerfile_inline
	Target     string
	Args       map[string]string
	Labels     map[string]string
	Platform   string // "" means the builder's own
	Network    string // "", "default", "host" or "none"
	ExtraHosts []string
	ShmSize    int64
	Ulimits    []string // name=soft:hard
	NoCache    bool
	Pull       bool // have BuildKit check the registry for newer base images
	Tags       []string
	// Contexts are named contexts (additional_contexts): a local directory,
	// or a value BuildKit reads itself (docker-image://, a URL, target:).
	Contexts  map[string]string
	Secrets   map[string][]byte // id -> value, served by the session only
	SSH       []SSH
	CacheFrom []string // compose cache_from entries
	CacheTo   []string
	Auth      Credentials
	Progress  io.Writer // plain progress lines; nil discards
}

// SSH is an ssh agent (or keys) forwarded for RUN --mount=type=ssh.
type SSH struct {
	ID    string
	Paths []string // empty: $SSH_AUTH_SOCK
}

// Build builds r and returns the image ID the engine knows it by.
func (b *Builder) Build(ctx context.Context, r Request) (string, error) {
	if len(r.Tags) == 0 {
		return "", errors.New("buildkit: no tag to build")
	}
	attrs, mounts, cleanup, err := frontendAttrs(r)
	if cleanup != nil {
		defer cleanup()
	}
	if err != nil {
		return "", err
	}
	if b.target.Kind == Remote {
		if r.Pull {
			attrs["image-resolve-mode"] = "pull"
		}
	}

	attach := []session.Attachable{authProvider{creds: r.Auth}}
	if len(r.Secrets) > 0 {
		// Served through the session when a RUN --mount=type=secret asks:
		// never in the solve request, the arguments or the logs.
		attach = append(attach, secretsprovider.FromMap(r.Secrets))
	}
	if len(r.SSH) > 0 {
		var confs []sshprovider.AgentConfig
		for _, s := range r.SSH {
			confs = append(confs, sshprovider.AgentConfig{ID: s.ID, Paths: s.Paths})
		}
		sp, err := sshprovider.NewSSHAgentProvider(confs)
		if err != nil {
			return "", fmt.Errorf("service %s: build.ssh: %w", r.Service, err)
		}
		attach = append(attach, sp)
	}
	imports, err := cacheEntries(r.CacheFrom)
	if err != nil {
		return "", fmt.Errorf("service %s: build.cache_from: %w", r.Service, err)
	}
	exports, err := cacheEntries(r.CacheTo)
	if err != nil {
		return "", fmt.Errorf("service %s: build.cache_to: %w", r.Service, err)
	}

	opt := client.SolveOpt{
		FrontendAttrs: attrs,
		LocalMounts:   mounts,
		Session:       attach,
		CacheImports:  imports,
		CacheExports:  exports,
	}
	g, gctx := errgroup.WithContext(ctx)
	var (
		loadErr chan error
		pw      *io.PipeWriter
	)
	switch b.target.Kind {
	case Engine:
		opt.Exports = []client.ExportEntry{{Type: "moby", Attrs: map[string]string{"name": strings.Join(r.Tags, ",")}}}
	case Remote:
		// The docker exporter writes a docker-save tarball; the engine loads it.
		var pr *io.PipeReader
		pr, pw = io.Pipe()
		loadErr = make(chan error, 1)
		go func() {
			// ctx, not gctx: the group's context ends when the build does,
			// while the engine may still be reading the tarball.
			err := b.eng.LoadImage(ctx, pr)
			pr.CloseWithError(err)
			loadErr <- err
		}()
		opt.Exports = []client.ExportEntry{{Type: client.ExporterDocker, Attrs: map[string]string{"name": strings.Join(r.Tags, ",")},
			Output: func(map[string]string) (io.WriteCloser, error) { return pw, nil }}}
	}

	ch := make(chan *client.SolveStatus)
	out := r.Progress
	if out == nil {
		out = io.Discard
	}
	display, err := progressui.NewDisplay(out, progressui.PlainMode)
	if err != nil {
		return "", err
	}
	g.Go(func() error {
		_, err := display.UpdateFrom(context.WithoutCancel(gctx), ch)
		return err
	})
	g.Go(func() error {
		_, err := b.c.Build(gctx, opt, "slipway", func(ctx context.Context, c gateway.Client) (*gateway.Result, error) {
			return builder.Build(ctx, c)
		}, ch)
		return err
	})
	err = g.Wait()
	if pw != nil {
		pw.CloseWithError(err) // nil: the loader sees the tarball's end
		if lerr := <-loadErr; err == nil && lerr != nil {
			return "", lerr
		}
	}
	if err != nil {
		return "", err
	}
	id, err := b.eng.ImageID(ctx, r.Tags[0])
	if err != nil {
		return "", fmt.Errorf("service %s: the build finished but the engine has no image %s: %w", r.Service, r.Tags[0], err)
	}
	return id, nil
}

// frontendAttrs turns r into the Dockerfile frontend's options and the local
// directories the session serves.
func frontendAttrs(r Request) (map[string]string, map[string]fsutil.FS, func(), error) {
	attrs := map[string]string{
		// Present: the frontend compiled in builds the Dockerfile itself
		// instead of fetching the frontend image a "# syntax=" line names.
		"cmdline": "",
	}
	mounts := map[string]fsutil.FS{}
	var cleanup func()
	addDir := func(name, dir string) error {
		fs, err := fsutil.NewFS(dir)
		if err != nil {
			return fmt.Errorf("service %s: %s: %w", r.Service, dir, err)
		}
		mounts[name] = fs
		return nil
	}
	if isRemote(r.Context) {
		attrs["context"] = r.Context
	} else if err := addDir("context", r.Context); err != nil {
		return nil, nil, nil, err
	}
	dfDir, dfName := filepath.Split(r.Dockerfile)
	if r.Inline != "" {
		tmp, err := os.MkdirTemp("", "slipway-dockerfile-")
		if err != nil {
			return nil, nil, nil, err
		}
		cleanup = func() { os.RemoveAll(tmp) }
		if err := os.WriteFile(filepath.Join(tmp, "Dockerfile"), []byte(r.Inline), 0o600); err != nil {
			return nil, nil, cleanup, err
		}
		dfDir, dfName = tmp, "Dockerfile"
	}
	if dfName != "" {
		if isRemote(r.Context) && r.Inline == "" && !filepath.IsAbs(r.Dockerfile) {
			attrs["filename"] = r.Dockerfile // inside the remote context
		} else {
			if err := addDir("dockerfile", dfDir); err != nil {
				return nil, nil, cleanup, err
			}
			attrs["filename"] = dfName
		}
	}
	if r.Target != "" {
		attrs["target"] = r.Target
	}
	for k, v := range r.Args {
		attrs["build-arg:"+k] = v
	}
	for k, v := range r.Labels {
		attrs["label:"+k] = v
	}
	if r.Platform != "" {
		attrs["platform"] = r.Platform
	}
	switch r.Network {
	case "", "default":
	case "host", "none":
		attrs["force-network-mode"] = r.Network
	default:
		return nil, nil, cleanup, fmt.Errorf("service %s: build.network %q: BuildKit builds on the default network, host or none only", r.Service, r.Network)
	}
	if len(r.ExtraHosts) > 0 {
		attrs["add-hosts"] = strings.Join(r.ExtraHosts, ",")
	}
	if r.ShmSize > 0 {
		attrs["shm-size"] = strconv.FormatInt(r.ShmSize, 10)
	}
	if len(r.Ulimits) > 0 {
		attrs["ulimit"] = strings.Join(r.Ulimits, ",")
	}
	if r.NoCache {
		attrs["no-cache"] = ""
	}
	names := make([]string, 0, len(r.Contexts))
	for n := range r.Contexts {
		names = append(names, n)
	}
	sort.Strings(names)
	for i, n := range names {
		v := r.Contexts[n]
		if filepath.IsAbs(v) {
			local := "ctx" + strconv.Itoa(i)
			if err := addDir(local, v); err != nil {
				return nil, nil, cleanup, err
			}
			v = "local:" + local
		}
		attrs["context:"+n] = v
	}
	return attrs, mounts, cleanup, nil
}

func isRemote(s string) bool {
	for _, p := range []string{"http://", "https://", "git://", "git@", "github.com/", "ssh://"} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// cacheEntries reads compose cache_from/cache_to entries: an image
// reference, or BuildKit's "type=...,key=value" form.
func cacheEntries(list []string) ([]client.CacheOptionsEntry, error) {
	var out []client.CacheOptionsEntry
	for _, s := range list {
		if !strings.Contains(s, "=") {
			out = append(out, client.CacheOptionsEntry{Type: "registry", Attrs: map[string]string{"ref": s}})
			continue
		}
		e := client.CacheOptionsEntry{Attrs: map[string]string{}}
		for _, kv := range strings.Split(s, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return nil, fmt.Errorf("%q: %q is not key=value", s, kv)
			}
			if k = strings.TrimSpace(k); k == "type" {
				e.Type = v
			} else {
				e.Attrs[k] = v
			}
		}
		if e.Type == "" {
			e.Type = "registry"
		}
		out = append(out, e)
	}
	return out, nil
}
