// Starting services, streaming their logs, and stopping the run: on the
// tests' end, a failure or the timeout.

package testrun

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/slipway-dev/slipway/tools/internal/engine"
	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/progress"
)

// start starts every container of a service. Compose v1 attached only the
// first network when it created the container; the others are attached here,
// with the aliases compose would give.
func (r *runner) start(ctx, logCtx context.Context, s *service) error {
	if len(s.containers) == 0 {
		return fmt.Errorf("compose created no container for it")
	}
	for _, c := range s.containers {
		if s.cfg.NetworkMode == "" {
			for key, nc := range s.cfg.Networks {
				netName := key
				if n, ok := r.stack.Networks[key]; ok && n.Name != "" {
					netName = n.Name
				}
				if contains(c.Networks, netName) {
					continue
				}
				aliases := []string{s.name}
				var ipv4, ipv6 string
				if nc != nil {
					aliases = append(aliases, nc.Aliases...)
					ipv4, ipv6 = nc.Ipv4Address, nc.Ipv6Address
				}
				if err := r.eng.ConnectNetwork(ctx, netName, c.ID, aliases, ipv4, ipv6); err != nil {
					return err
				}
			}
		}
		if err := r.eng.StartContainer(ctx, c.ID); err != nil {
			return err
		}
		if s.test {
			r.stream(logCtx, s, c)
		}
	}
	s.started = true
	if s.test {
		r.log.Printf("started test service %s", s.name)
	} else {
		r.log.Printf("started %s", s.name)
	}
	return nil
}

// stream shows a test container's output live, prefixed by its service.
func (r *runner) stream(ctx context.Context, s *service, c engine.Container) {
	name := s.name
	if len(s.containers) > 1 {
		name = fmt.Sprintf("%s-%d", s.name, c.Number)
	}
	r.streams.Add(1)
	go func() {
		defer r.streams.Done()
		w := r.log.With(name).Writer()
		defer w.Close()
		_ = r.eng.ContainerLogs(ctx, c, true, w)
	}()
}

// waitLogs lets live log streams drain, then cuts them off.
func (r *runner) waitLogs() {
	done := make(chan struct{})
	go func() { r.streams.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	r.stopLogs()
	<-done
}

// testsDone reports whether every test service ran and exited.
func (r *runner) testsDone() bool {
	for _, t := range r.tests {
		s := r.svcs[t]
		if !s.started {
			return false
		}
		for _, c := range s.containers {
			if !c.Exited() {
				return false
			}
		}
	}
	return true
}

// timeoutMessage names what the run was waiting for when time ran out.
func (r *runner) timeoutMessage() string {
	prefix := fmt.Sprintf("timed out after %s", r.opts.Timeout)
	if r.svcs == nil {
		return prefix + " while creating the stack"
	}
	// A dependency the next service still waits on is the likely culprit.
	for _, n := range r.needed {
		s := r.svcs[n]
		if s.started {
			continue
		}
		for _, dep := range sortedDeps(s.cfg.DependsOn) {
			ds, ok := r.svcs[dep]
			if !ok {
				continue
			}
			cond := s.cfg.DependsOn[dep].Condition
			if met, _ := r.conditionMet(ds, cond, n); met {
				continue
			}
			if !ds.started {
				continue
			}
			switch cond {
			case types.ServiceConditionHealthy:
				health, out := "", ""
				for _, c := range ds.containers {
					health, out = c.Health, c.HealthOutput
				}
				r.markWaiting(dep, OutcomeNotHealthy)
				return fmt.Sprintf("%s: dependency %s never became healthy (health: %s; last health check: %s); %s waits for it",
					prefix, dep, orNone(health), orNone(out), n)
			case types.ServiceConditionCompletedSuccessfully:
				return fmt.Sprintf("%s: dependency %s never completed; %s waits for it", prefix, dep, n)
			}
		}
	}
	var running []string
	for _, t := range r.tests {
		if r.svcs[t].started && !r.exited(t) {
			running = append(running, t)
		}
	}
	if len(running) > 0 {
		return fmt.Sprintf("%s: test services still running: %s", prefix, strings.Join(running, ", "))
	}
	return prefix
}

func (r *runner) markWaiting(dep, outcome string) {
	r.fail(&failure{service: dep, outcome: outcome, code: exit.TestsFailed})
}

func (r *runner) exited(n string) bool {
	for _, c := range r.svcs[n].containers {
		if !c.Exited() {
			return false
		}
	}
	return true
}

// stopEarly stops test containers still running after a timeout or a failed
// dependency, giving them their grace period to write results.
func (r *runner) stopEarly(ctx context.Context, timedOut bool) {
	if r.svcs == nil {
		return
	}
	var wg sync.WaitGroup
	for _, t := range r.tests {
		s := r.svcs[t]
		for _, c := range s.containers {
			if !c.Running && !c.Restarting {
				continue
			}
			s.stopped = true
			grace := r.opts.StopGrace
			if s.cfg.StopGracePeriod != nil {
				grace = time.Duration(*s.cfg.StopGracePeriod)
			}
			why := "a dependency failed"
			if timedOut {
				why = "the timeout expired"
			}
			r.log.Printf("stopping test service %s (%s), %s grace to write results", t, why, progress.Duration(grace))
			wg.Add(1)
			go func(id string) {
				defer wg.Done()
				if err := r.eng.StopContainer(ctx, id, grace); err != nil {
					r.log.Warnf("%v", err)
				}
			}(c.ID)
		}
	}
	wg.Wait()
}

func seconds(d time.Duration) float64 {
	return float64(d.Round(10*time.Millisecond)) / float64(time.Second)
}

// rel shows a path relative to the working directory when it lies below it.
func (r *runner) rel(p string) string {
	if rp, err := filepath.Rel(r.opts.WorkDir, p); err == nil && !strings.HasPrefix(rp, "..") {
		return rp
	}
	return p
}
