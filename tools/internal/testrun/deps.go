// Dependency conditions: when a service may start, and when a started
// dependency's death or ill health fails the run.

package testrun

import (
	"fmt"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/slipway-dev/slipway/tools/internal/exit"
)

// checkDependencies fails the run when a started dependency has died: compose
// itself would go on (docker/compose #6776), leaving the tests to hang or
// to pass against a dead service.
func (r *runner) checkDependencies() *failure {
	for _, n := range r.needed {
		s := r.svcs[n]
		if s.test || !s.started || r.completes(n) {
			continue // tests are judged by their exit code; one-shot dependencies by conditionMet
		}
		for _, c := range s.containers {
			if c.RestartCount > 0 && !r.warned["restart:"+c.Name] {
				r.warned["restart:"+c.Name] = true
				r.log.Warnf("dependency %s restarted (restart policy) after exiting with code %d", n, c.ExitCode)
			}
			if !c.Exited() {
				continue
			}
			if c.ExitCode != 0 || c.OOMKilled {
				why := fmt.Sprintf("exited with code %d", c.ExitCode)
				if c.OOMKilled {
					why += " (killed: out of memory)"
				}
				when := "while the tests were running"
				if !r.anyTestStarted() {
					when = "before the tests started"
				}
				return &failure{service: n, outcome: OutcomeCrashed, code: exit.TestsFailed,
					msg: fmt.Sprintf("dependency %s %s %s", n, why, when)}
			}
			if !r.warned["exit:"+c.Name] {
				r.warned["exit:"+c.Name] = true
				r.log.Warnf("dependency %s exited with code 0 while the stack was running", n)
			}
		}
	}
	return nil
}

// completes reports whether some service waits for n to complete.
func (r *runner) completes(n string) bool {
	for _, s := range r.svcs {
		if d, ok := s.cfg.DependsOn[n]; ok && d.Condition == types.ServiceConditionCompletedSuccessfully {
			return true
		}
	}
	return false
}

func (r *runner) anyTestStarted() bool {
	for _, t := range r.tests {
		if r.svcs[t].started {
			return true
		}
	}
	return false
}

// readyToStart returns the services whose dependencies' conditions hold.
func (r *runner) readyToStart() ([]*service, *failure) {
	var ready []*service
	for _, n := range r.needed {
		s := r.svcs[n]
		if s.started {
			continue
		}
		ok := true
		for _, dep := range sortedDeps(s.cfg.DependsOn) {
			d := s.cfg.DependsOn[dep]
			ds, known := r.svcs[dep]
			if !known {
				continue // optional dependency outside the stack
			}
			met, f := r.conditionMet(ds, d.Condition, n)
			if f != nil {
				return nil, f
			}
			if !met {
				ok = false
				break
			}
		}
		if ok {
			ready = append(ready, s)
		}
	}
	return ready, nil
}

func sortedDeps(deps types.DependsOnConfig) []string {
	out := make([]string, 0, len(deps))
	for d := range deps {
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}

// conditionMet evaluates one depends_on condition of dependent on dep.
func (r *runner) conditionMet(dep *service, condition, dependent string) (bool, *failure) {
	if !dep.started {
		return false, nil
	}
	if len(dep.containers) == 0 {
		return false, nil
	}
	switch condition {
	case types.ServiceConditionHealthy:
		for _, c := range dep.containers {
			switch {
			case c.Exited():
				return false, &failure{service: dep.name, outcome: OutcomeCrashed, code: exit.TestsFailed,
					msg: fmt.Sprintf("dependency %s exited with code %d before becoming healthy (%s waits for it to be healthy)", dep.name, c.ExitCode, dependent)}
			case c.Health == "":
				if c.Running {
					return false, &failure{service: dep.name, outcome: OutcomeNotHealthy, code: exit.Usage,
						msg: fmt.Sprintf("service %s depends on %s with condition service_healthy, but %s has no healthcheck (neither in the compose file nor in its image): add one, or use condition service_started", dependent, dep.name, dep.name)}
				}
				return false, nil
			case c.Health == "unhealthy":
				return false, &failure{service: dep.name, outcome: OutcomeUnhealthy, code: exit.TestsFailed,
					msg: fmt.Sprintf("dependency %s is unhealthy (%s waits for it to be healthy); last health check: %s", dep.name, dependent, orNone(c.HealthOutput))}
			case c.Health != "healthy":
				return false, nil
			}
		}
		return true, nil
	case types.ServiceConditionCompletedSuccessfully:
		for _, c := range dep.containers {
			if !c.Exited() {
				return false, nil
			}
			if c.ExitCode != 0 {
				return false, &failure{service: dep.name, outcome: OutcomeFailed, code: exit.TestsFailed,
					msg: fmt.Sprintf("dependency %s exited with code %d; %s needs it to complete successfully", dep.name, c.ExitCode, dependent)}
			}
		}
		return true, nil
	default: // service_started, and compose's default
		return true, nil
	}
}

func orNone(s string) string {
	if s == "" {
		return "(no output)"
	}
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return strings.ReplaceAll(s, "\n", " | ")
}
