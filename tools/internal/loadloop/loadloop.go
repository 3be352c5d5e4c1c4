// Package loadloop is a small HTTP GET load loop for measuring what a
// deploy does to a running service: it sends requests back to back (from a
// few workers) until a request count or a time bound is reached, or it is
// stopped, and counts the answers that were OK and those that failed.
//
// It only talks to loopback addresses and the project's own test network
// (10.213.0.0/24): it is a measuring tool for tests and benchmarks, not a
// load generator for other people's servers.
package loadloop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
)

// testNet is the project's own test range, besides loopback.
var testNet = &net.IPNet{IP: net.IPv4(10, 213, 0, 0), Mask: net.CIDRMask(24, 32)}

// Options bound a loop. Count and Duration are both required: the loop ends
// at whichever comes first (or at Stop).
type Options struct {
	URL         string                             // http://<loopback or 10.213.0.x>[:port]/path
	Count       int                                // at most this many requests in all
	Duration    time.Duration                      // at most this long
	Workers     int                                // requests in flight at once, default 1
	Timeout     time.Duration                      // per request, default 15s
	KeepAlive   bool                               // reuse connections (default: a new connection per request)
	OK          func(status int, body string) bool // default: status 200
	MaxFailures int                                // failure samples kept, default 20
}

// Failure is one failed request, for the log.
type Failure struct {
	At     time.Duration // since the start
	Reason string
}

// Stats are the counts so far.
type Stats struct {
	OK, Failed int
	Elapsed    time.Duration
	Bodies     map[string]int // OK answers by (trimmed, abbreviated) body
	Last       string         // body of the last OK answer
	Failures   []Failure      // the first MaxFailures failures
}

// Total is OK + Failed.
func (s Stats) Total() int { return s.OK + s.Failed }

// String is a one-line summary: "5123 requests: 5123 ok, 0 failed in 12.3s (416/s); bodies: 1.0.0 x2001, 2.0.0 x3122".
func (s Stats) String() string {
	rate := 0.0
	if s.Elapsed > 0 {
		rate = float64(s.Total()) / s.Elapsed.Seconds()
	}
	var parts []string
	keys := make([]string, 0, len(s.Bodies))
	for k := range s.Bodies {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%q x%d", k, s.Bodies[k]))
	}
	return fmt.Sprintf("%d requests: %d ok, %d failed in %s (%.0f/s); bodies: %s",
		s.Total(), s.OK, s.Failed, s.Elapsed.Round(100*time.Millisecond), rate, strings.Join(parts, ", "))
}

// Loop is a running load loop.
type Loop struct {
	o      Options
	start  time.Time
	cancel context.CancelFunc
	done   chan struct{}

	mu    sync.Mutex
	stats Stats
	sent  int
}

// Check says whether u may be a target: http(s) to a literal loopback or
// 10.213.0.x address, or "localhost".
func Check(u string) error {
	p, err := url.Parse(u)
	if err != nil {
		return fmt.Errorf("load loop URL %q: %w", u, err)
	}
	if p.Scheme != "http" && p.Scheme != "https" {
		return fmt.Errorf("load loop URL %q: want http:// or https://", u)
	}
	host := p.Hostname()
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !(ip.IsLoopback() || testNet.Contains(ip)) {
		return fmt.Errorf("load loop URL %q: only loopback and the test network 10.213.0.0/24 are allowed", u)
	}
	return nil
}

func allowedAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	ip := net.ParseIP(host)
	if ip == nil || !(ip.IsLoopback() || testNet.Contains(ip)) {
		return fmt.Errorf("load loop: connection to %s refused: only loopback and 10.213.0.0/24", addr)
	}
	return nil
}

// Start begins the loop in the background.
func Start(ctx context.Context, o Options) (*Loop, error) {
	if err := Check(o.URL); err != nil {
		return nil, err
	}
	if o.Count <= 0 || o.Duration <= 0 {
		return nil, errors.New("load loop: Count and Duration must both be positive (it is bounded in count and time)")
	}
	if o.Workers <= 0 {
		o.Workers = 1
	}
	if o.Timeout <= 0 {
		o.Timeout = 15 * time.Second
	}
	if o.OK == nil {
		o.OK = func(status int, _ string) bool { return status == http.StatusOK }
	}
	if o.MaxFailures <= 0 {
		o.MaxFailures = 20
	}
	ctx, cancel := context.WithTimeout(ctx, o.Duration)
	l := &Loop{o: o, start: time.Now(), cancel: cancel, done: make(chan struct{}), stats: Stats{Bodies: map[string]int{}}}
	dialer := &net.Dialer{Timeout: o.Timeout}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			// Checked after resolution too: "localhost" must be loopback.
			if err := allowedAddr(c.RemoteAddr().String()); err != nil {
				c.Close()
				return nil, err
			}
			return c, nil
		},
		DisableKeepAlives:   !o.KeepAlive,
		MaxIdleConnsPerHost: o.Workers,
		Proxy:               nil,
	}
	client := &http.Client{Transport: tr, Timeout: o.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var wg sync.WaitGroup
	for i := 0; i < o.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for l.next() {
				if ctx.Err() != nil {
					return
				}
				l.one(ctx, client)
			}
		}()
	}
	go func() {
		wg.Wait()
		tr.CloseIdleConnections()
		cancel()
		l.mu.Lock()
		l.stats.Elapsed = time.Since(l.start)
		l.mu.Unlock()
		close(l.done)
	}()
	return l, nil
}

// next reserves one request of the count.
func (l *Loop) next() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sent >= l.o.Count {
		return false
	}
	l.sent++
	return true
}

func (l *Loop) one(ctx context.Context, client *http.Client) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.o.URL, nil)
	if err != nil {
		l.record(false, "", err.Error())
		return
	}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			// Stopped or out of time: this request does not count.
			return
		}
		l.record(false, "", err.Error())
		return
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		l.record(false, "", "reading the body: "+err.Error())
		return
	}
	b := strings.TrimSpace(string(body))
	if len(b) > 64 {
		b = b[:64]
	}
	if !l.o.OK(resp.StatusCode, string(body)) {
		l.record(false, "", fmt.Sprintf("HTTP %d: %s", resp.StatusCode, b))
		return
	}
	l.record(true, b, "")
}

func (l *Loop) record(ok bool, body, reason string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ok {
		l.stats.OK++
		if len(l.stats.Bodies) < 16 || l.stats.Bodies[body] > 0 {
			l.stats.Bodies[body]++
		}
		l.stats.Last = body
		return
	}
	l.stats.Failed++
	if len(l.stats.Failures) < l.o.MaxFailures {
		l.stats.Failures = append(l.stats.Failures, Failure{At: time.Since(l.start), Reason: reason})
	}
}

// Stats returns a snapshot of the counts.
func (l *Loop) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.stats
	if s.Elapsed == 0 {
		s.Elapsed = time.Since(l.start)
	}
	s.Bodies = make(map[string]int, len(l.stats.Bodies))
	for k, v := range l.stats.Bodies {
		s.Bodies[k] = v
	}
	s.Failures = append([]Failure(nil), l.stats.Failures...)
	return s
}

// Done is closed when the loop has ended (count, time, or Stop).
func (l *Loop) Done() <-chan struct{} { return l.done }

// Stop ends the loop (requests in flight are abandoned and not counted) and
// returns the final counts.
func (l *Loop) Stop() Stats {
	l.cancel()
	<-l.done
	return l.Stats()
}

// WaitTotal waits until at least n requests were answered (or the loop
// ended, or ctx is done) and reports whether n was reached.
func (l *Loop) WaitTotal(ctx context.Context, n int) bool {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if l.Stats().Total() >= n {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-l.done:
			return l.Stats().Total() >= n
		case <-t.C:
		}
	}
}
