package testrun

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
)

// prepare rewrites the loaded project into the stack this run starts:
// only the needed services, built services on the manifest's images, and
// nothing that would make two runs collide. It returns warnings for the log.
//
// Collisions avoided: container_name is dropped (compose names containers
// after the unique project), and published ports keep their container port
// but lose the fixed host port, so the engine picks a free one. A test stack
// reaches its services over the compose network, never through host ports.
//
// A test service runs once: a restart policy on it would keep it from ever
// finishing, so it is dropped, with a warning.
func prepare(p *types.Project, needed, tests []string, images map[string]imageSource) (*types.Project, []string, error) {
	keep := map[string]bool{}
	for _, n := range needed {
		keep[n] = true
	}
	var warnings []string
	out := *p
	out.Services = types.Services{}
	out.DisabledServices = types.Services{}
	for name, s := range p.Services {
		if !keep[name] {
			continue
		}
		src := images[name]
		s.Profiles = nil
		switch {
		case src.FromManifest != "":
			s.Image = src.Ref
			s.Build = nil
			s.PullPolicy = ""
		case src.Built != "":
			s.Image = src.Built
			s.PullPolicy = ""
		}
		if contains(tests, name) && s.Restart != "" && s.Restart != types.RestartPolicyNo {
			warnings = append(warnings, fmt.Sprintf("service %s: restart: %s dropped: a test service runs once", name, s.Restart))
			s.Restart = types.RestartPolicyNo
		}
		if s.Deploy != nil && s.Deploy.RestartPolicy != nil && contains(tests, name) {
			d := *s.Deploy
			d.RestartPolicy = nil
			s.Deploy = &d
		}
		if s.ContainerName != "" {
			warnings = append(warnings, fmt.Sprintf("service %s: container_name %q dropped so parallel runs do not collide", name, s.ContainerName))
			s.ContainerName = ""
		}
		s.Ports = append([]types.ServicePortConfig(nil), s.Ports...) // p's slice stays as loaded
		for i, port := range s.Ports {
			if port.Published != "" {
				warnings = append(warnings, fmt.Sprintf("service %s: host port %s of container port %d not published at a fixed number (the engine picks a free one) so parallel runs do not collide",
					name, port.Published, port.Target))
				s.Ports[i].Published = ""
			}
		}
		out.Services[name] = s
	}
	sort.Strings(warnings)
	return &out, warnings, nil
}

// render writes the project as a compose file both Compose v1 and v2 accept.
// The project is already interpolated, so every '$' is escaped to keep the
// CLI from interpolating a second time.
func render(p *types.Project, v1 bool) ([]byte, error) {
	data, err := p.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("rendering the test stack: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("rendering the test stack: %w", err)
	}
	// The name goes on the command line (-p); v1 rejects a top-level name.
	delete(m, "name")
	services, _ := m["services"].(map[string]any)
	for name, raw := range services {
		s, ok := raw.(map[string]any)
		if !ok {
			continue
		}
		for k, v := range s {
			if v == nil {
				delete(s, k) // "command": null and friends: v1's schema rejects them
			}
		}
		// compose-go merged env_file (and label_file) into environment (labels).
		delete(s, "env_file")
		delete(s, "label_file")
		if ports, ok := s["ports"].([]any); ok {
			short, err := shortPorts(name, ports)
			if err != nil {
				return nil, err
			}
			s["ports"] = short
		}
		// slipway waits on the conditions itself, through the Engine API; the
		// CLI only creates containers, and v1 would block creating a service
		// until its dependency is healthy, which never happens before start.
		if deps, ok := s["depends_on"].(map[string]any); ok {
			for _, d := range deps {
				if dm, ok := d.(map[string]any); ok {
					dm["condition"] = "service_started"
					if v1 {
						delete(dm, "required")
						delete(dm, "restart")
					}
				}
			}
		}
		if v1 {
			if hc, ok := s["healthcheck"].(map[string]any); ok {
				delete(hc, "start_interval")
			}
		}
	}
	escapeDollars(m)
	out, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("rendering the test stack: %w", err)
	}
	return append(out, '\n'), nil
}

// shortPorts turns long-form ports into the short syntax every Compose reads
// ("127.0.0.1::8080/udp", "8080/tcp"): v1's long form has no host_ip.
func shortPorts(service string, ports []any) ([]any, error) {
	out := make([]any, 0, len(ports))
	for _, raw := range ports {
		p, ok := raw.(map[string]any)
		if !ok {
			out = append(out, raw)
			continue
		}
		target, ok := p["target"].(float64)
		if !ok {
			return nil, fmt.Errorf("service %s: port %v has no container port", service, p)
		}
		spec := strconv.Itoa(int(target))
		published, _ := p["published"].(string)
		hostIP, _ := p["host_ip"].(string)
		switch {
		case hostIP != "":
			if strings.Contains(hostIP, ":") {
				hostIP = "[" + hostIP + "]"
			}
			spec = hostIP + ":" + published + ":" + spec
		case published != "":
			spec = published + ":" + spec
		}
		if proto, _ := p["protocol"].(string); proto != "" {
			spec += "/" + proto
		}
		out = append(out, spec)
	}
	return out, nil
}

func escapeDollars(v any) any {
	switch x := v.(type) {
	case string:
		return strings.ReplaceAll(x, "$", "$$")
	case map[string]any:
		for k, e := range x {
			x[k] = escapeDollars(e)
		}
	case []any:
		for i, e := range x {
			x[i] = escapeDollars(e)
		}
	}
	return v
}
