package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/pkg/stdcopy"
)

// Labels Compose (v1 and v2) puts on everything it creates.
const (
	LabelProject = "com.docker.compose.project"
	LabelService = "com.docker.compose.service"
	LabelNumber  = "com.docker.compose.container-number"
	LabelOneOff  = "com.docker.compose.oneoff"
)

// ErrNoSuchPath is returned (wrapped) by CopyFromContainer when the path does
// not exist in the container.
var ErrNoSuchPath = errors.New("no such path in the container")

// Container is what slipway needs to know about one container of a stack.
type Container struct {
	ID      string
	Name    string // without the leading slash
	Service string // com.docker.compose.service
	Number  int    // com.docker.compose.container-number
	OneOff  bool
	Tty     bool

	Status       string // created, running, paused, restarting, removing, exited, dead
	Running      bool
	Restarting   bool
	OOMKilled    bool
	ExitCode     int
	Error        string // the engine's error starting it, if any
	RestartCount int
	StartedAt    time.Time // zero if never started
	FinishedAt   time.Time // zero if never exited

	Health       string // "" (no healthcheck), "starting", "healthy", "unhealthy"
	HealthOutput string // output of the last health probe, trimmed

	Networks []string // names of the networks it is attached to

	Image         string            // as created (Config.Image)
	RestartPolicy string            // "", "no", "always", "unless-stopped", "on-failure"
	Labels        map[string]string // all of them
}

// Exited reports whether the container ran and is no longer running.
func (c Container) Exited() bool {
	return !c.Running && !c.Restarting && (c.Status == "exited" || c.Status == "dead")
}

func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() < 2000 { // the engine reports 0001-01-01 for "never"
		return time.Time{}
	}
	return t
}

func projectFilter(project string) filters.Args {
	return filters.NewArgs(filters.Arg("label", LabelProject+"="+project))
}

// ProjectContainers lists every container (running or not) labelled with the
// compose project, inspected, ordered by service then number.
func (c *Client) ProjectContainers(ctx context.Context, project string) ([]Container, error) {
	list, err := c.api.ContainerList(ctx, container.ListOptions{All: true, Filters: projectFilter(project)})
	if err != nil {
		return nil, fmt.Errorf("listing containers of project %s: %w", project, err)
	}
	out := make([]Container, 0, len(list))
	for _, s := range list {
		ct, err := c.InspectContainer(ctx, s.ID)
		if cerrdefs.IsNotFound(err) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, ct)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Service != out[j].Service {
			return out[i].Service < out[j].Service
		}
		return out[i].Number < out[j].Number
	})
	return out, nil
}

// InspectContainer returns the state of one container.
func (c *Client) InspectContainer(ctx context.Context, id string) (Container, error) {
	in, err := c.api.ContainerInspect(ctx, id)
	if err != nil {
		return Container{}, fmt.Errorf("inspecting container %s: %w", id, err)
	}
	ct := Container{ID: in.ID, Name: strings.TrimPrefix(in.Name, "/")}
	if in.Config != nil {
		ct.Service = in.Config.Labels[LabelService]
		ct.Number, _ = strconv.Atoi(in.Config.Labels[LabelNumber])
		ct.OneOff = strings.EqualFold(in.Config.Labels[LabelOneOff], "true")
		ct.Tty = in.Config.Tty
		ct.Image, ct.Labels = in.Config.Image, in.Config.Labels
	}
	if in.HostConfig != nil {
		ct.RestartPolicy = string(in.HostConfig.RestartPolicy.Name)
	}
	ct.RestartCount = in.RestartCount
	if st := in.State; st != nil {
		ct.Status = string(st.Status)
		ct.Running, ct.Restarting, ct.OOMKilled = st.Running, st.Restarting, st.OOMKilled
		ct.ExitCode, ct.Error = st.ExitCode, st.Error
		ct.StartedAt, ct.FinishedAt = parseTime(st.StartedAt), parseTime(st.FinishedAt)
		if h := st.Health; h != nil {
			ct.Health = string(h.Status)
			if n := len(h.Log); n > 0 && h.Log[n-1] != nil {
				ct.HealthOutput = strings.TrimSpace(h.Log[n-1].Output)
			}
		}
	}
	if in.NetworkSettings != nil {
		for name := range in.NetworkSettings.Networks {
			ct.Networks = append(ct.Networks, name)
		}
		sort.Strings(ct.Networks)
	}
	return ct, nil
}

// StartContainer starts a created or stopped container.
func (c *Client) StartContainer(ctx context.Context, id string) error {
	if err := c.api.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		return fmt.Errorf("starting container %s: %w", id, err)
	}
	return nil
}

// ConnectNetwork attaches a container to a network under the given aliases
// (and fixed addresses, when set). Compose v1 attaches only the first network
// when it creates a container and the others when it starts it; a container
// started through the API needs the rest attached here.
func (c *Client) ConnectNetwork(ctx context.Context, networkName, containerID string, aliases []string, ipv4, ipv6 string) error {
	es := &network.EndpointSettings{Aliases: aliases}
	if ipv4 != "" || ipv6 != "" {
		es.IPAMConfig = &network.EndpointIPAMConfig{IPv4Address: ipv4, IPv6Address: ipv6}
	}
	if err := c.api.NetworkConnect(ctx, networkName, containerID, es); err != nil {
		return fmt.Errorf("connecting container %s to network %s: %w", containerID, networkName, err)
	}
	return nil
}

// StopContainer sends the stop signal and kills after grace.
func (c *Client) StopContainer(ctx context.Context, id string, grace time.Duration) error {
	secs := int(grace.Round(time.Second) / time.Second)
	if err := c.api.ContainerStop(ctx, id, container.StopOptions{Timeout: &secs}); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("stopping container %s: %w", id, err)
	}
	return nil
}

// ContainerLogs copies a container's output (stdout and stderr, demultiplexed
// unless it has a TTY) to w; with follow it returns when the container stops
// or ctx ends.
func (c *Client) ContainerLogs(ctx context.Context, ct Container, follow bool, w io.Writer) error {
	rc, err := c.api.ContainerLogs(ctx, ct.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true, Follow: follow})
	if err != nil {
		return fmt.Errorf("reading logs of %s: %w", ct.Name, err)
	}
	defer rc.Close()
	if ct.Tty {
		_, err = io.Copy(w, rc)
	} else {
		_, err = stdcopy.StdCopy(w, w, rc)
	}
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("reading logs of %s: %w", ct.Name, err)
	}
	return nil
}

// LogTail returns the last n lines of a container's output, stdout and
// stderr together.
func (c *Client) LogTail(ctx context.Context, ct Container, n int) (string, error) {
	rc, err := c.api.ContainerLogs(ctx, ct.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: strconv.Itoa(n)})
	if err != nil {
		return "", fmt.Errorf("reading logs of %s: %w", ct.Name, err)
	}
	defer rc.Close()
	var b strings.Builder
	if ct.Tty {
		_, err = io.Copy(&b, rc)
	} else {
		_, err = stdcopy.StdCopy(&b, &b, rc)
	}
	if err != nil {
		return b.String(), fmt.Errorf("reading logs of %s: %w", ct.Name, err)
	}
	return b.String(), nil
}

// VolumesLabelled lists the names of the volumes carrying label (k=v).
func (c *Client) VolumesLabelled(ctx context.Context, label string) ([]string, error) {
	vs, err := c.api.VolumeList(ctx, volume.ListOptions{Filters: filters.NewArgs(filters.Arg("label", label))})
	if err != nil {
		return nil, fmt.Errorf("listing volumes labelled %s: %w", label, err)
	}
	var names []string
	for _, v := range vs.Volumes {
		names = append(names, v.Name)
	}
	return names, nil
}

// CopyFromContainer returns a tar stream of path inside the container (as
// `docker cp` does: the archive's top entry is path's base name). It works on
// stopped containers. A missing path yields an error wrapping ErrNoSuchPath.
func (c *Client) CopyFromContainer(ctx context.Context, id, path string) (io.ReadCloser, error) {
	rc, _, err := c.api.CopyFromContainer(ctx, id, path)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return nil, fmt.Errorf("%s: %w", path, ErrNoSuchPath)
		}
		return nil, fmt.Errorf("copying %s out of container %s: %w", path, id, err)
	}
	return rc, nil
}

// ProjectResources are the engine objects labelled with one compose project.
type ProjectResources struct {
	Containers []string // names
	Networks   []string
	Volumes    []string
}

// Empty reports whether nothing is left.
func (r ProjectResources) Empty() bool {
	return len(r.Containers) == 0 && len(r.Networks) == 0 && len(r.Volumes) == 0
}

func (r ProjectResources) String() string {
	var parts []string
	if len(r.Containers) > 0 {
		parts = append(parts, "containers "+strings.Join(r.Containers, ", "))
	}
	if len(r.Networks) > 0 {
		parts = append(parts, "networks "+strings.Join(r.Networks, ", "))
	}
	if len(r.Volumes) > 0 {
		parts = append(parts, "volumes "+strings.Join(r.Volumes, ", "))
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, "; ")
}

// ListProject lists the containers, networks and volumes labelled with the
// compose project.
func (c *Client) ListProject(ctx context.Context, project string) (ProjectResources, error) {
	var r ProjectResources
	f := projectFilter(project)
	cs, err := c.api.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return r, fmt.Errorf("listing containers of project %s: %w", project, err)
	}
	for _, s := range cs {
		name := s.ID[:12]
		if len(s.Names) > 0 {
			name = strings.TrimPrefix(s.Names[0], "/")
		}
		r.Containers = append(r.Containers, name)
	}
	ns, err := c.api.NetworkList(ctx, network.ListOptions{Filters: f})
	if err != nil {
		return r, fmt.Errorf("listing networks of project %s: %w", project, err)
	}
	for _, n := range ns {
		r.Networks = append(r.Networks, n.Name)
	}
	vs, err := c.api.VolumeList(ctx, volume.ListOptions{Filters: f})
	if err != nil {
		return r, fmt.Errorf("listing volumes of project %s: %w", project, err)
	}
	for _, v := range vs.Volumes {
		r.Volumes = append(r.Volumes, v.Name)
	}
	sort.Strings(r.Containers)
	sort.Strings(r.Networks)
	sort.Strings(r.Volumes)
	return r, nil
}

// RemoveProject force-removes every container of the compose project (with its
// anonymous volumes), then its networks and volumes, and returns what it
// removed. It goes on past individual failures and reports them together, so
// one stuck object never leaves the rest behind.
func (c *Client) RemoveProject(ctx context.Context, project string) (ProjectResources, error) {
	var removed ProjectResources
	var errs []error
	var mu sync.Mutex
	f := projectFilter(project)

	cs, err := c.api.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return removed, fmt.Errorf("listing containers of project %s: %w", project, err)
	}
	var wg sync.WaitGroup
	for _, s := range cs {
		wg.Add(1)
		go func(s container.Summary) {
			defer wg.Done()
			name := s.ID[:12]
			if len(s.Names) > 0 {
				name = strings.TrimPrefix(s.Names[0], "/")
			}
			err := c.api.ContainerRemove(ctx, s.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				removed.Containers = append(removed.Containers, name)
			case cerrdefs.IsNotFound(err):
			default:
				// "removal already in progress" is not a failure of ours.
				if !strings.Contains(err.Error(), "already in progress") {
					errs = append(errs, fmt.Errorf("removing container %s: %w", name, err))
				}
			}
		}(s)
	}
	wg.Wait()

	ns, err := c.api.NetworkList(ctx, network.ListOptions{Filters: f})
	if err != nil {
		errs = append(errs, fmt.Errorf("listing networks of project %s: %w", project, err))
	}
	for _, n := range ns {
		if err := c.api.NetworkRemove(ctx, n.ID); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("removing network %s: %w", n.Name, err))
			continue
		}
		removed.Networks = append(removed.Networks, n.Name)
	}
	vs, err := c.api.VolumeList(ctx, volume.ListOptions{Filters: f})
	if err != nil {
		errs = append(errs, fmt.Errorf("listing volumes of project %s: %w", project, err))
	}
	for _, v := range vs.Volumes {
		if err := c.api.VolumeRemove(ctx, v.Name, true); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("removing volume %s: %w", v.Name, err))
			continue
		}
		removed.Volumes = append(removed.Volumes, v.Name)
	}
	sort.Strings(removed.Containers)
	return removed, errors.Join(errs...)
}
