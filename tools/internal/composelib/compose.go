package composelib

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/docker/cli/cli/command"
	cliflags "github.com/docker/cli/cli/flags"
	"github.com/docker/compose/v5/pkg/api"
	"github.com/docker/compose/v5/pkg/compose"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
)

// Compose runs Compose operations against one engine.
type Compose struct {
	svc api.Compose
	api client.APIClient
	out io.Writer
}

// New returns Compose over c. Progress lines ("Container x  Recreated")
// go to out, one per finished step.
func New(c client.APIClient, out io.Writer) (*Compose, error) {
	cli, err := command.NewDockerCli(command.WithAPIClient(c), command.WithCombinedStreams(out), command.WithInputStream(io.NopCloser(strings.NewReader(""))))
	if err != nil {
		return nil, fmt.Errorf("compose library: %w", err)
	}
	if err := cli.Initialize(cliflags.NewClientOptions()); err != nil {
		return nil, fmt.Errorf("compose library: %w", err)
	}
	svc, err := compose.NewComposeService(cli,
		compose.WithStreams(out, out, strings.NewReader("")),
		compose.WithPrompt(compose.AlwaysOkPrompt()),
		compose.WithEventProcessor(&printer{w: out}))
	if err != nil {
		return nil, fmt.Errorf("compose library: %w", err)
	}
	return &Compose{svc: svc, api: c, out: out}, nil
}

// Up is `docker compose up -d --remove-orphans`: services whose definition
// or image changed are recreated, the others left running. Unlike it, a
// one-shot service (no restart policy) whose container completed (exit 0)
// and was not recreated is not run again: Compose would start it on every
// up, re-running a seed or migration job that nothing changed.
func (c *Compose) Up(ctx context.Context, p *types.Project) error {
	err := c.svc.Create(ctx, p, api.CreateOptions{
		RemoveOrphans:        true,
		Recreate:             api.RecreateDiverged,
		RecreateDependencies: api.RecreateDiverged,
		Inherit:              true,
		QuietPull:            true,
	})
	if err != nil {
		return err
	}
	start, err := c.withoutCompleted(ctx, p)
	if err != nil {
		return err
	}
	return c.svc.Start(ctx, p.Name, api.StartOptions{Project: start})
}

// withoutCompleted returns p, or a copy of it in which the one-shot services
// whose containers all completed are not started (Compose starts no
// service with zero replicas; their dependants still see them completed).
// Run after create: a recreated container is "created", not "exited".
func (c *Compose) withoutCompleted(ctx context.Context, p *types.Project) (*types.Project, error) {
	list, err := c.api.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(
		filters.Arg("label", api.ProjectLabel+"="+p.Name), filters.Arg("label", api.OneoffLabel+"=False"))})
	if err != nil {
		return nil, fmt.Errorf("listing the project's containers: %w", err)
	}
	byService := map[string][]container.Summary{}
	for _, ctr := range list {
		svc := ctr.Labels[api.ServiceLabel]
		byService[svc] = append(byService[svc], ctr)
	}
	var done []string
	for name, s := range p.Services {
		if !oneShot(s) || len(byService[name]) == 0 {
			continue
		}
		completed := true
		for _, ctr := range byService[name] {
			if ctr.State != container.StateExited {
				completed = false
				break
			}
			info, err := c.api.ContainerInspect(ctx, ctr.ID)
			if err != nil {
				return nil, fmt.Errorf("inspecting %s: %w", ctr.ID, err)
			}
			if info.State == nil || info.State.ExitCode != 0 {
				completed = false
				break
			}
		}
		if completed {
			done = append(done, name)
		}
	}
	if len(done) == 0 {
		return p, nil
	}
	sort.Strings(done)
	cp := *p
	cp.Services = types.Services{}
	zero := 0
	for name, s := range p.Services {
		if slices.Contains(done, name) {
			d := types.DeployConfig{}
			if s.Deploy != nil {
				d = *s.Deploy
			}
			d.Replicas = &zero
			s.Deploy = &d
		}
		cp.Services[name] = s
	}
	fmt.Fprintf(c.out, "%s: completed and unchanged, not run again\n", strings.Join(done, ", "))
	return &cp, nil
}

// oneShot reports whether Compose leaves s stopped once it exits.
func oneShot(s types.ServiceConfig) bool {
	if s.Restart != "" && s.Restart != types.RestartPolicyNo {
		return false
	}
	return s.Deploy == nil || s.Deploy.RestartPolicy == nil || s.Deploy.RestartPolicy.Condition == "" || s.Deploy.RestartPolicy.Condition == "none"
}

// Scale is `docker compose up --no-deps --no-recreate --scale service=n
// service`, with -d when start (else --no-start): n containers of service,
// the ones there are kept whatever their definition, the others created
// from p's.
func (c *Compose) Scale(ctx context.Context, p *types.Project, service string, n int, start bool) error {
	sp, err := p.WithSelectedServices([]string{service}, types.IgnoreDependencies)
	if err != nil {
		return err
	}
	s, ok := sp.Services[service]
	if !ok {
		return fmt.Errorf("no service %q in the release", service)
	}
	s.SetScale(n)
	sp.Services[service] = s
	err = c.svc.Create(ctx, sp, api.CreateOptions{
		Services:             []string{service},
		Recreate:             api.RecreateNever,
		RecreateDependencies: api.RecreateNever,
		Inherit:              true,
		QuietPull:            true,
	})
	if err != nil || !start {
		return err
	}
	return c.svc.Start(ctx, sp.Name, api.StartOptions{Project: sp, Services: []string{service}})
}

// Hashes are the config hashes Compose labels each service's containers
// with (com.docker.compose.config-hash), as `docker compose config --hash`.
func Hashes(p *types.Project) (map[string]string, error) {
	out := map[string]string{}
	for name, s := range p.Services {
		h, err := compose.ServiceHash(s)
		if err != nil {
			return nil, fmt.Errorf("service %q: %w", name, err)
		}
		out[name] = h
	}
	return out, nil
}

// Down is `docker compose down --remove-orphans` (volumes kept).
func (c *Compose) Down(ctx context.Context, p *types.Project) error {
	return c.svc.Down(ctx, p.Name, api.DownOptions{RemoveOrphans: true, Project: p})
}

// ExitError is a one-off container's non-zero exit.
type ExitError struct {
	Code int
	Err  error // what Compose said, may be nil
}

func (e *ExitError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("exit status %d: %v", e.Code, e.Err)
	}
	return fmt.Sprintf("exit status %d", e.Code)
}

func (e *ExitError) Unwrap() error { return e.Err }

// Run is `docker compose run --rm -T service command...`: a one-off
// container of service, its dependencies started first; its output goes to
// the Compose's out.
func (c *Compose) Run(ctx context.Context, p *types.Project, service string, command []string) error {
	s, ok := p.Services[service]
	if !ok {
		return fmt.Errorf("no service %q in the release", service)
	}
	s.StdinOpen = false
	p.Services[service] = s
	code, err := c.svc.RunOneOffContainer(ctx, p, api.RunOptions{
		CreateOptions: api.CreateOptions{QuietPull: true},
		Service:       service,
		Command:       command,
		AutoRemove:    true,
	})
	if code != 0 {
		return &ExitError{Code: code, Err: err}
	}
	return err
}

// printer writes Compose's finished steps as lines, like its plain progress
// output, for a log that is read after the fact.
type printer struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *printer) Start(context.Context, string) {}

func (p *printer) Done(string, bool) {}

func (p *printer) On(events ...api.Resource) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range events {
		if e.Status == api.Working || e.ID == "" {
			continue
		}
		line := strings.TrimSpace(e.ID + " " + e.Text)
		if e.Details != "" {
			line += ": " + e.Details
		}
		fmt.Fprintln(p.w, line)
	}
}

// Version is the version of the Compose module built in (go.mod's
// github.com/docker/compose/v5; a test holds them equal). Compose's CLI
// stamps its version in at link time, which a library user cannot.
const Version = "5.0.0"

func init() {
	// Without it, containers' com.docker.compose.version label is empty.
	if api.ComposeVersion == "" {
		api.ComposeVersion = Version
	}
}
