// Package push pushes every tag of every image the manifest records, checks
// each digest with the registry, records the digests in the manifest and
// writes the pinned compose file.
package push

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/slipway-dev/slipway/tools/internal/engine"
	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/manifest"
	"github.com/slipway-dev/slipway/tools/internal/pinned"
	"github.com/slipway-dev/slipway/tools/internal/plan"
	"github.com/slipway-dev/slipway/tools/internal/progress"
	"github.com/slipway-dev/slipway/tools/internal/regauth"
)

// DefaultParallel is --parallel's default.
const DefaultParallel = 4

// Options are the push command's flags.
type Options struct {
	Manifest string // "" means manifest.DefaultPath
	Parallel int    // images at a time; 0 means DefaultParallel
	Pinned   string // pinned compose file to write; "" means pinned.DefaultPath
	JSON     bool   // stdout: the updated manifest as JSON instead of "service image@digest" lines
	Log      *progress.Logger
	Stdout   io.Writer
	Getenv   func(string) string // nil means os.Getenv
	Retry    Retry               // zero means DefaultRetry
}

// Run pushes, records digests, writes the pinned compose file and the manifest.
func Run(ctx context.Context, o Options) (*manifest.Manifest, error) {
	if o.Manifest == "" {
		o.Manifest = manifest.DefaultPath
	}
	if o.Pinned == "" {
		o.Pinned = pinned.DefaultPath
	}
	if o.Parallel < 0 {
		return nil, exit.Usagef("--parallel must be 1 or more, got %d", o.Parallel)
	}
	if o.Log == nil {
		o.Log = progress.Discard()
	}
	m, err := manifest.Read(o.Manifest)
	if err != nil {
		return nil, err
	}
	eng, err := engine.New(ctx)
	if err != nil {
		return nil, err
	}
	defer eng.Close()
	store := regauth.New(regauth.Options{Getenv: o.Getenv, EnvHosts: hosts(m)})
	cfg := Config{Parallel: o.Parallel, Auth: store, Log: o.Log, Retry: o.Retry}

	if m.ImageOnly() {
		o.Log.Printf("nothing to push: no service is built (an image-only project); pinning its %d image(s)", len(m.External))
	}
	digests, pushErr := Images(ctx, eng, m, cfg)
	for svc, d := range digests {
		s := m.Services[svc]
		s.Digest = d
		m.Services[svc] = s
	}
	if pushErr != nil {
		// Keep what did reach the registry; the release is still incomplete.
		if len(digests) > 0 {
			if err := manifest.Write(o.Manifest, m); err != nil {
				o.Log.Warnf("recording the digests pushed so far: %v", err)
			}
		}
		return nil, pushErr
	}

	err = pinned.Write(ctx, pinned.Options{
		Manifest:     m,
		ManifestPath: o.Manifest,
		Out:          o.Pinned,
		Resolve:      Resolver(eng, store, cfg.Log, cfg.retry()),
		Interpolated: interpolatedImages(m, o.Manifest),
		Log:          o.Log,
	})
	var inc *pinned.IncompleteError
	if errors.As(err, &inc) {
		// A partial release (build --service) is pushed, but is not deployable.
		o.Log.Warnf("no pinned compose file written: %v", err)
		m.PinnedCompose = ""
		err = nil
	}
	if err != nil {
		if werr := manifest.Write(o.Manifest, m); werr != nil {
			o.Log.Warnf("recording the digests: %v", werr)
		}
		return nil, err
	}
	if err := manifest.Write(o.Manifest, m); err != nil {
		return nil, err
	}
	o.Log.Printf("manifest %s updated with %d digest(s)", o.Manifest, len(digests))
	if o.Stdout != nil {
		if err := printResult(o.Stdout, m, o.JSON); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func printResult(w io.Writer, m *manifest.Manifest, asJSON bool) error {
	if asJSON {
		data, err := json.MarshalIndent(m, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", data)
		return err
	}
	for _, n := range m.Names() {
		if _, err := fmt.Fprintf(w, "%s %s\n", n, m.Services[n].Pinned()); err != nil {
			return err
		}
	}
	return nil
}

// interpolatedImages loads the interpolated project once, on first use, as
// build did, to resolve image: references that hold ${VAR}.
func interpolatedImages(m *manifest.Manifest, manifestPath string) func(context.Context, string) (string, error) {
	var (
		once sync.Once
		imgs map[string]string
		lerr error
	)
	return func(ctx context.Context, svc string) (string, error) {
		once.Do(func() {
			lo := pinned.LoadFrom(m, manifestPath)
			base, _ := filepath.Abs(filepath.Dir(manifestPath))
			var envFiles []string
			for _, f := range m.EnvFiles {
				if !filepath.IsAbs(f) {
					f = filepath.Join(base, f)
				}
				envFiles = append(envFiles, f)
			}
			p, err := plan.LoadProject(ctx, plan.Options{
				Files: lo.Files, ProjectDir: lo.ProjectDir, ProjectName: m.Project,
				EnvFiles: envFiles, Profiles: m.Profiles, WorkDir: base,
			}, true)
			if err != nil {
				lerr = err
				return
			}
			imgs = map[string]string{}
			for n, s := range p.Services {
				imgs[n] = s.Image
			}
		})
		if lerr != nil {
			return "", lerr
		}
		img, ok := imgs[svc]
		if !ok || img == "" || strings.Contains(img, "$") {
			return "", fmt.Errorf("service %s has no interpolated image", svc)
		}
		return img, nil
	}
}

func hosts(m *manifest.Manifest) []string {
	var out []string
	for _, img := range m.CredentialImages() {
		if h, err := regauth.HostOf(img); err == nil {
			out = append(out, h)
		}
	}
	return out
}

// Engine is the part of the Docker engine push needs.
type Engine interface {
	ImageID(ctx context.Context, ref string) (string, error)
	Push(ctx context.Context, ref string, auth regauth.Auth, fn func(engine.Message)) (engine.PushResult, error)
	RemoteDigest(ctx context.Context, ref string, auth regauth.Auth) (string, error)
}

// Config tunes Images.
type Config struct {
	Parallel int
	Auth     *regauth.Store
	Log      *progress.Logger
	Retry    Retry
}

func (c Config) retry() Retry {
	if c.Retry.Attempts == 0 {
		return DefaultRetry
	}
	return c.Retry
}

// Images pushes every tag of every service in m, up to cfg.Parallel images at
// a time (an image's tags one after another: after the first, the layers are
// there and the rest is a manifest PUT), and returns the verified digest per
// service, including those that finished when another failed.
func Images(ctx context.Context, eng Engine, m *manifest.Manifest, cfg Config) (map[string]string, error) {
	if cfg.Parallel <= 0 {
		cfg.Parallel = DefaultParallel
	}
	if cfg.Log == nil {
		cfg.Log = progress.Discard()
	}
	if cfg.Auth == nil {
		cfg.Auth = regauth.New(regauth.Options{})
	}
	var (
		mu      sync.Mutex
		digests = map[string]string{}
	)
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(cfg.Parallel)
	for _, name := range m.Names() {
		svc := m.Services[name]
		g.Go(func() error {
			d, err := pushService(gctx, eng, name, svc, cfg)
			if err != nil {
				return err
			}
			mu.Lock()
			digests[name] = d
			mu.Unlock()
			return nil
		})
	}
	err := g.Wait()
	if err != nil && ctx.Err() != nil {
		return digests, fmt.Errorf("push cancelled: %w", ctx.Err())
	}
	if err == nil && len(m.Services) > 0 {
		cfg.Log.Printf("%d image(s) pushed in %s", len(digests), progress.Duration(time.Since(start)))
	}
	return digests, err
}

func pushService(ctx context.Context, eng Engine, name string, svc manifest.Service, cfg Config) (string, error) {
	log := cfg.Log.With(name)
	if len(svc.Tags) == 0 {
		return "", exit.Usagef("manifest: service %s has no tags to push", name)
	}
	auth, err := cfg.Auth.ForRef(svc.Image)
	if err != nil {
		return "", err
	}
	retry := cfg.retry()
	var digest string
	for _, tag := range svc.Tags {
		ref := svc.Image + ":" + tag
		if err := checkLocal(ctx, eng, name, ref, svc.ImageID); err != nil {
			return "", err
		}
		var res engine.PushResult
		start := time.Now()
		err := retry.Do(ctx, log, "push of "+ref, func() error {
			var err error
			res, err = eng.Push(ctx, ref, auth, pushLogger(log))
			return err
		})
		if err != nil {
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			return "", explain(fmt.Sprintf("pushing %s (service %s)", ref, name), err, auth, cfg.Auth)
		}
		if digest != "" && res.Digest != digest {
			return "", fmt.Errorf("pushing %s (service %s): the registry stored digest %s, but the image's other tag got %s", ref, name, res.Digest, digest)
		}
		digest = res.Digest
		log.Printf("pushed %s (%s) in %s", ref, res.Digest, progress.Duration(time.Since(start)))
	}
	// Do not trust the client alone: ask the registry what the tag is now.
	ref := svc.Image + ":" + svc.Tags[0]
	var remote string
	err = retry.Do(ctx, log, "checking "+ref, func() error {
		var err error
		remote, err = eng.RemoteDigest(ctx, ref, auth)
		return err
	})
	if err != nil {
		return "", explain(fmt.Sprintf("checking the digest of %s (service %s)", ref, name), err, auth, cfg.Auth)
	}
	if remote != digest {
		return "", fmt.Errorf("service %s: the push reported %s but the registry says %s is %s; was the tag pushed again meanwhile?", name, digest, ref, remote)
	}
	return digest, nil
}

// checkLocal makes sure the tag still names the image build recorded, so the
// release pushes what was built (and tested), not a later rebuild.
func checkLocal(ctx context.Context, eng Engine, name, ref, want string) error {
	id, err := eng.ImageID(ctx, ref)
	if err != nil {
		if engine.Classify(err) == engine.KindNotFound {
			return fmt.Errorf("service %s: image %s is not in this engine: push runs on the engine that built it; run 'slipway build' here first", name, ref)
		}
		return fmt.Errorf("service %s: inspecting %s: %w", name, ref, err)
	}
	if want != "" && id != want {
		return fmt.Errorf("service %s: %s is now image %s, not %s that build recorded (rebuilt or retagged since?); run 'slipway build' again", name, ref, id, want)
	}
	return nil
}

// pushLogger logs the milestones of a push stream, not its progress bars.
func pushLogger(log *progress.Logger) func(engine.Message) {
	return func(m engine.Message) {
		if m.Progress != "" || m.Status == "" {
			return
		}
		switch m.Status {
		case "Preparing", "Waiting", "Pushing":
			return
		}
		if m.ID != "" {
			log.Printf("%s: %s", m.ID, m.Status)
		} else {
			log.Printf("%s", m.Status)
		}
	}
}

// explain turns a registry error into what to do, naming the registry and
// where the credentials came from, never the secret.
func explain(what string, err error, a regauth.Auth, store *regauth.Store) error {
	base := fmt.Sprintf("%s: %v", what, firstLine(err))
	switch engine.Classify(err) {
	case engine.KindAuth:
		if a.Anonymous() {
			return fmt.Errorf("%s\nregistry %s refused access and slipway found no credentials for it (looked at %s/%s and %s): set both variables, or run 'docker login %s'",
				base, a.Host, regauth.EnvUser, regauth.EnvPassword, store.ConfigPath(), a.Host)
		}
		return fmt.Errorf("%s\nregistry %s refused the credentials of user %q from %s: check the user name and password, and that the user may push to this repository",
			base, a.Host, a.Username, a.Source)
	case engine.KindUnreachable:
		return fmt.Errorf("%s\nregistry %s is not reachable: check the registry part of the image name and that the registry is up and reachable from the Docker engine", base, a.Host)
	case engine.KindTLS:
		return fmt.Errorf("%s\nthe Docker engine does not trust registry %s's TLS certificate: install the registry's CA as /etc/docker/certs.d/%s/ca.crt on the engine's host", base, a.Host, a.Host)
	case engine.KindRetryable:
		return fmt.Errorf("%s\nregistry %s kept failing; try again later", base, a.Host)
	}
	var se *engine.StreamError
	if errors.As(err, &se) {
		// The engine's push call succeeded but its stream carried the
		// registry's (or the engine's) refusal: say where, and why it was
		// not retried.
		return fmt.Errorf("%s\nthe Docker engine reported this while pushing to registry %s; it is not a transient error, so it was not retried: check the image and the registry's log", base, a.Host)
	}
	return errors.New(base)
}

func firstLine(err error) string {
	s := strings.TrimSpace(err.Error())
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// Resolver returns pinned's Resolver: the registry digest of an image
// slipway did not build, through the engine's distribution endpoint, with
// the registry's credentials and retries.
func Resolver(eng Engine, store *regauth.Store, log *progress.Logger, retry Retry) pinned.Resolver {
	return func(ctx context.Context, ref string) (string, error) {
		auth, err := store.ForRef(ref)
		if err != nil {
			return "", err
		}
		var d string
		err = retry.Do(ctx, log, "resolving "+ref, func() error {
			var err error
			d, err = eng.RemoteDigest(ctx, ref, auth)
			return err
		})
		if err != nil {
			return "", explain("asking the registry for "+ref, err, auth, store)
		}
		return d, nil
	}
}
