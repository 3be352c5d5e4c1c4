package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/deploy/remote"
	"github.com/slipway-dev/slipway/tools/internal/progress"
)

// HealthError is a failed health gate: the containers that failed (or were
// still not ready at the timeout) and why, or the smoke check's failure.
type HealthError struct {
	Release string
	Reason  string            // "container failed", "timeout", "smoke check", "no containers"
	Failing []FailedContainer // empty for smoke-check failures
	Smoke   string            // what the smoke check got
}

// FailedContainer is a container that did not pass, with its last log lines.
type FailedContainer struct {
	Name    string `json:"name"`
	Service string `json:"service"`
	State   string `json:"state"`
	Logs    string `json:"logs,omitempty"`
	id      string
}

func (e *HealthError) Error() string {
	switch {
	case e.Smoke != "":
		return fmt.Sprintf("health gate of release %s: smoke check: %s", short(e.Release), e.Smoke)
	case len(e.Failing) > 0:
		var parts []string
		for _, c := range e.Failing {
			parts = append(parts, c.Name+" "+c.State)
		}
		return fmt.Sprintf("health gate of release %s: %s: %s", short(e.Release), e.Reason, strings.Join(parts, ", "))
	default:
		return fmt.Sprintf("health gate of release %s: %s", short(e.Release), e.Reason)
	}
}

// healthPoll is how often container states are read (one session each).
const healthPoll = 500 * time.Millisecond

// logTail is how many log lines of each failing container are shown.
const logTail = 20

// healthGate waits until every container of the project is running, and
// healthy where it has a healthcheck, within timeout; a container that exits
// or turns unhealthy fails it at once. Then, with smokeURL set, it fetches the
// URL through the SSH connection (from the server's own network view) until
// it answers 2xx. Failing containers' last log lines are printed.
func healthGate(ctx context.Context, h *remote.Host, c remote.Conn, timeout time.Duration, smokeURL, release string, log *progress.Logger) error {
	if h.DryRun {
		msg := fmt.Sprintf("health gate (up to %s): every container of project %s running, healthy where it has a healthcheck", timeout, h.Project)
		if smokeURL != "" {
			msg += "; then GET " + smokeURL + " through the SSH connection, expect 2xx"
		}
		h.Planf("%s", msg)
		return nil
	}
	start := time.Now()
	deadline := start.Add(timeout)
	lastReport := time.Time{}
	for {
		cs, err := h.Containers(ctx)
		if err != nil {
			return err
		}
		var failed, pending []FailedContainer
		for _, ct := range cs {
			v, why := remote.Judge(ct)
			fc := FailedContainer{Name: ct.Name, Service: ct.Service, State: why, id: ct.ID}
			switch v {
			case remote.Failed:
				failed = append(failed, fc)
			case remote.Pending:
				pending = append(pending, fc)
			}
		}
		if len(failed) > 0 {
			return withLogs(ctx, h, log, &HealthError{Release: release, Reason: "container failed", Failing: failed})
		}
		if len(cs) == 0 {
			pending = nil
			if !time.Now().Before(deadline) {
				return &HealthError{Release: release, Reason: "no containers of project " + h.Project + " are running"}
			}
		} else if len(pending) == 0 {
			break
		}
		if !time.Now().Before(deadline) {
			return withLogs(ctx, h, log, &HealthError{Release: release, Reason: fmt.Sprintf("not ready after --health-timeout %s", timeout), Failing: pending})
		}
		if time.Since(lastReport) > 10*time.Second && len(pending) > 0 {
			var names []string
			for _, p := range pending {
				names = append(names, p.Name+" ("+p.State+")")
			}
			log.Printf("waiting for %s", strings.Join(names, ", "))
			lastReport = time.Now()
		}
		if err := sleep(ctx, healthPoll); err != nil {
			return err
		}
	}
	log.Done("health gate", start)
	if smokeURL == "" {
		return nil
	}
	if err := smoke(ctx, c, smokeURL, deadline); err != nil {
		return &HealthError{Release: release, Reason: "smoke check", Smoke: err.Error()}
	}
	log.Printf("smoke check %s: ok", smokeURL)
	return nil
}

func withLogs(ctx context.Context, h *remote.Host, log *progress.Logger, e *HealthError) error {
	var ids []string
	for _, c := range e.Failing {
		ids = append(ids, c.id)
	}
	lctx, cancel := cleanupContext(ctx, 30*time.Second)
	defer cancel()
	logs, err := h.Logs(lctx, ids, logTail)
	if err != nil {
		log.Warnf("%v", err)
	}
	for i, c := range e.Failing {
		e.Failing[i].Logs = logs[c.id]
		log.Printf("container %s: %s; last %d log lines:", c.Name, c.State, logTail)
		if l := logs[c.id]; l != "" {
			log.With(c.Name).Printf("%s", l)
		} else {
			log.With(c.Name).Printf("(no output)")
		}
	}
	return e
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// smoke GETs u through c (the server resolves and connects, so
// http://localhost:8080/ is the server's own port) until it answers 2xx or the
// deadline passes. Connection errors and 502/503/504 (a proxy whose upstream is
// still starting) are retried; any other status fails at once.
func smoke(ctx context.Context, c remote.Conn, u string, deadline time.Time) error {
	client := &http.Client{
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return c.DialContext(ctx, network, addr)
			},
			DisableKeepAlives: true,
		},
		Timeout: 10 * time.Second,
	}
	var last string
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			if resp.StatusCode >= 200 && resp.StatusCode < 300 {
				return nil
			}
			last = fmt.Sprintf("GET %s: %s", u, resp.Status)
			if b := strings.TrimSpace(string(body)); b != "" {
				last += ": " + firstLine(b)
			}
			switch resp.StatusCode {
			case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			default:
				return errors.New(last)
			}
		} else {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			last = fmt.Sprintf("GET %s: %v", u, err)
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("%s (still failing at the --health-timeout)", last)
		}
		if err := sleep(ctx, healthPoll); err != nil {
			return err
		}
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	if len(l) > 200 {
		l = l[:200] + "..."
	}
	return l
}

// checkSmokeURL validates --smoke-url (bad input: exit 2).
func checkSmokeURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--smoke-url %q: want an http:// or https:// URL as seen from the server, e.g. http://localhost:8080/health", s)
	}
	return nil
}
