package remote

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/engine"
	"github.com/slipway-dev/slipway/tools/internal/regauth"
)

// engineConn is a host's Docker Engine API through its SSH connection,
// opened on first use and again after a redial replaced the connection.
type engineConn struct {
	socket string
	mu     sync.Mutex
	conn   Conn
	client *engine.Client
}

// UseEngineAPI makes h read and pull through the server's Docker Engine API
// (reached through the SSH connection at socket) instead of the docker CLI
// on the server, which then need not exist.
func (h *Host) UseEngineAPI(socket string) { h.eng = &engineConn{socket: socket} }

// Engine is the server's engine API client (UseEngineAPI first).
func (h *Host) Engine(ctx context.Context) (*engine.Client, error) {
	if h.eng == nil {
		return nil, errors.New("the engine API is not in use for this host")
	}
	e := h.eng
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.client != nil && e.conn == h.Conn {
		return e.client, nil
	}
	if e.client != nil {
		e.client.Close()
		e.client = nil
	}
	c, _, err := engine.OverSSH(ctx, h.Conn, e.socket)
	if err != nil {
		return nil, fmt.Errorf("the server's Docker Engine through the SSH connection: %w", err)
	}
	e.client, e.conn = c, h.Conn
	return c, nil
}

// UseEngineAPIOf switches h to the engine API at the socket Probe found and
// checks that the engine answers; where the server has no docker CLI, the
// API's version fills f.DockerVersion.
func (h *Host) UseEngineAPIOf(ctx context.Context, f *Facts) error {
	h.UseEngineAPI(f.EngineSocket)
	c, err := h.Engine(ctx)
	if err != nil {
		return err
	}
	v, err := c.ServerVersion(ctx)
	if err != nil {
		return fmt.Errorf("the server's Docker Engine through the SSH connection: %w", err)
	}
	if f.DockerVersion == "" {
		f.DockerVersion = v
	}
	return nil
}

func (h *Host) containersAPI(ctx context.Context) ([]Container, error) {
	c, err := h.Engine(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing the project's containers: %w", err)
	}
	list, err := c.ProjectContainers(ctx, h.Project)
	if err != nil {
		return nil, err
	}
	var cs []Container
	for _, r := range list {
		if r.OneOff {
			continue
		}
		ct := Container{ID: r.ID, Name: r.Name, Service: r.Service, Image: r.Image, State: r.Status, Health: r.Health,
			ExitCode: r.ExitCode, RestartCount: r.RestartCount, RestartPolicy: r.RestartPolicy}
		if !r.StartedAt.IsZero() {
			ct.StartedAt = r.StartedAt.Format(time.RFC3339Nano)
		}
		if wd := r.Labels["com.docker.compose.project.working_dir"]; wd != "" {
			ct.Release = releaseName(wd)
		}
		cs = append(cs, ct)
	}
	sortContainers(cs)
	return cs, nil
}

func (h *Host) logsAPI(ctx context.Context, ids []string, n int) (map[string]string, error) {
	c, err := h.Engine(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading container logs: %w", err)
	}
	res := map[string]string{}
	for _, id := range ids {
		ct, err := c.InspectContainer(ctx, id)
		if err != nil {
			return res, fmt.Errorf("reading container logs: %w", err)
		}
		out, err := c.LogTail(ctx, ct, n)
		res[id] = strings.TrimRight(out, "\n")
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

func (h *Host) volumesAPI(ctx context.Context) ([]string, error) {
	c, err := h.Engine(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing the volumes of project %s: %w", h.Project, err)
	}
	seen := map[string]bool{}
	var vols []string
	for _, l := range []string{"com.docker.compose.project=" + h.Project, "com.docker.stack.namespace=" + h.Project} {
		names, err := c.VolumesLabelled(ctx, l)
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			if !seen[n] {
				seen[n] = true
				vols = append(vols, n)
			}
		}
	}
	sort.Strings(vols)
	return vols, nil
}

// removeImagesAPI removes images no kept release uses; one still used by a
// container stays, silently, as with `docker image rm`.
func (h *Host) removeImagesAPI(ctx context.Context, images []string) {
	c, err := h.Engine(ctx)
	if err != nil {
		return
	}
	for _, img := range images {
		_ = c.RemoveImage(ctx, img, false)
	}
}

// pullAPI pulls the images the engine lacks, in parallel, with the
// credentials of dockerConfig sent with each request: nothing is written on
// the server. A registry that refuses them is ErrRegistryLogin.
func (h *Host) pullAPI(ctx context.Context, images []string, registries []string, dockerConfig []byte) error {
	c, err := h.Engine(ctx)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrPull, err)
	}
	var missing []string
	for _, img := range images {
		id, err := c.ImageIDIfPresent(ctx, img)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrPull, err)
		}
		if id == "" {
			missing = append(missing, img)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	auths, err := authsOf(dockerConfig)
	if err != nil {
		return err
	}
	for _, r := range registries {
		a := auths[regauth.NormalizeHost(r)]
		if a.Anonymous() {
			continue
		}
		if err := c.Login(ctx, a); err != nil {
			return fmt.Errorf("%w: %s refused the credentials (%v); check SLIPWAY_REGISTRY_USER/SLIPWAY_REGISTRY_PASSWORD (or DOCKER_CONFIG)", ErrRegistryLogin, r, err)
		}
	}
	errs := make([]error, len(missing))
	var wg sync.WaitGroup
	for i, img := range missing {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var a regauth.Auth
			if host, err := regauth.HostOf(img); err == nil {
				a = auths[regauth.NormalizeHost(host)]
			}
			if err := c.Pull(ctx, img, a, func(engine.Message) {}); err != nil {
				errs[i] = fmt.Errorf("%s: %v", img, err)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %v", ErrPull, err)
	}
	h.logf("pulled %s", strings.Join(missing, " "))
	return nil
}

// authsOf reads the "auths" of a config.json as deploy writes it, by
// normalised registry host.
func authsOf(dockerConfig []byte) (map[string]regauth.Auth, error) {
	out := map[string]regauth.Auth{}
	if len(dockerConfig) == 0 {
		return out, nil
	}
	var cfg struct {
		Auths map[string]struct {
			Auth          string `json:"auth"`
			IdentityToken string `json:"identitytoken"`
			RegistryToken string `json:"registrytoken"`
		} `json:"auths"`
	}
	if err := json.Unmarshal(dockerConfig, &cfg); err != nil {
		return nil, fmt.Errorf("registry credentials: %w", err)
	}
	for addr, e := range cfg.Auths {
		a := regauth.Auth{ServerAddress: addr, IdentityToken: e.IdentityToken, RegistryToken: e.RegistryToken, Host: regauth.NormalizeHost(addr)}
		if e.Auth != "" {
			b, err := base64.StdEncoding.DecodeString(e.Auth)
			if err != nil {
				return nil, fmt.Errorf("registry credentials for %s: %w", addr, err)
			}
			a.Username, a.Password, _ = strings.Cut(string(b), ":")
		}
		out[a.Host] = a
	}
	return out, nil
}
