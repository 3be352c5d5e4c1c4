package push

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/testenv"
)

// faultProxy is a plain-HTTP proxy on 127.0.0.1 (an insecure registry for
// the agent's engine by default) in front of the real TLS registry. Rules
// pick requests and answer the first few of them with a fault instead of
// passing them on; every request is recorded so a test can count what the
// engine actually did.
type faultProxy struct {
	addr     string
	upstream *url.URL
	client   *http.Client

	mu    sync.Mutex
	rules []*faultRule
	trace []traced
}

// traced is one request the proxy saw and what it did with it.
type traced struct {
	Method, Path string
	Status       int    // status returned (upstream's or injected); 0 for a reset
	Fault        string // rule name when a fault was injected
}

func (r traced) String() string {
	s := fmt.Sprintf("%s %s %d", r.Method, r.Path, r.Status)
	if r.Fault != "" {
		s += " [" + r.Fault + "]"
	}
	return s
}

// fault is what a rule does to a matching request.
type fault struct {
	Status int               // HTTP status to answer with
	Header map[string]string // extra response headers (Retry-After, WWW-Authenticate)
	Body   string            // response body
	// ResetAfter > 0: pass that many bytes of the request body on to the
	// registry, then abort the upstream request and reset the client's TCP
	// connection (RST, not FIN) without answering.
	ResetAfter int64
}

// faultRule injects its fault into the first Times requests match accepts.
type faultRule struct {
	Name  string
	Match func(*http.Request) bool
	Times int
	Fault fault

	seen  int       // matching requests, faulted or not
	fired int       // faults injected
	first time.Time // when the first fault was injected
}

// Seen, Fired and First read the counters under the proxy's lock.
func (p *faultProxy) Seen(r *faultRule) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return r.seen
}

func (p *faultProxy) Fired(r *faultRule) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return r.fired
}

func (p *faultProxy) First(r *faultRule) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return r.first
}

// Trace is every request seen so far, in order.
func (p *faultProxy) Trace() []traced {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]traced(nil), p.trace...)
}

// Count is how many traced requests satisfy pred.
func (p *faultProxy) Count(pred func(traced) bool) int {
	n := 0
	for _, r := range p.Trace() {
		if pred(r) {
			n++
		}
	}
	return n
}

// Add installs a rule; rules are tried in the order added.
func (p *faultProxy) Add(r *faultRule) *faultRule {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = append(p.rules, r)
	return r
}

// Request predicates for the registry API's push calls.
func isManifestPut(r *http.Request) bool {
	return r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/")
}

func isUploadStart(r *http.Request) bool {
	return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/blobs/uploads/")
}

func isUploadData(r *http.Request) bool {
	return (r.Method == http.MethodPatch || r.Method == http.MethodPut) && strings.Contains(r.URL.Path, "/blobs/uploads/")
}

// registryError is a registry API error body (distribution's errcode JSON).
func registryError(code, message string) string {
	b, _ := json.Marshal(map[string]any{"errors": []map[string]string{{"code": code, "message": message}}})
	return string(b)
}

func startFaultProxy(t *testing.T, env *testenv.Env) *faultProxy {
	t.Helper()
	client, err := env.RegistryHTTPClient()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{addr: ln.Addr().String(), client: client}
	p.upstream, _ = url.Parse("https://" + env.Registry)
	rp := &httputil.ReverseProxy{
		Transport: client.Transport,
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(p.upstream)
			r.Out.Header.Set("X-Forwarded-Proto", "http")
			r.Out.Header.Set("X-Forwarded-Host", p.addr)
		},
		ModifyResponse: func(resp *http.Response) error {
			p.rewriteLocation(resp.Header)
			return nil
		},
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rule := p.pick(r)
		if rule == nil {
			sw := &statusWriter{ResponseWriter: w}
			rp.ServeHTTP(sw, r)
			p.record(traced{Method: r.Method, Path: r.URL.Path, Status: sw.status})
			return
		}
		f := rule.Fault
		if f.ResetAfter > 0 {
			p.record(traced{Method: r.Method, Path: r.URL.Path, Fault: rule.Name})
			p.resetMidBody(t, w, r, f.ResetAfter)
			return
		}
		io.Copy(io.Discard, r.Body)
		for k, v := range f.Header {
			w.Header().Set(k, v)
		}
		if f.Body != "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(f.Status)
		io.WriteString(w, f.Body)
		p.record(traced{Method: r.Method, Path: r.URL.Path, Status: f.Status, Fault: rule.Name})
	})}
	go srv.Serve(ln)
	t.Cleanup(func() {
		srv.Close()
		t.Logf("registry proxy saw %d request(s):\n  %s", len(p.Trace()), strings.Join(traceLines(p.Trace()), "\n  "))
	})
	return p
}

func traceLines(tr []traced) []string {
	out := make([]string, len(tr))
	for i, r := range tr {
		out[i] = r.String()
	}
	return out
}

// pick returns the rule whose fault this request gets, or nil to pass it on.
func (p *faultProxy) pick(r *http.Request) *faultRule {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, rule := range p.rules {
		if !rule.Match(r) {
			continue
		}
		rule.seen++
		if rule.fired < rule.Times {
			rule.fired++
			if rule.first.IsZero() {
				rule.first = time.Now()
			}
			return rule
		}
	}
	return nil
}

func (p *faultProxy) record(r traced) {
	p.mu.Lock()
	p.trace = append(p.trace, r)
	p.mu.Unlock()
}

// rewriteLocation points the registry's upload URLs back at the proxy.
func (p *faultProxy) rewriteLocation(h http.Header) {
	if loc := h.Get("Location"); loc != "" {
		h.Set("Location", strings.Replace(loc, p.upstream.String(), "http://"+p.addr, 1))
	}
}

// resetMidBody streams the first n bytes of the request body to the
// registry, aborts that upstream request (the registry is left with a
// half-written upload, as after a real network failure), and resets the
// client's connection.
func (p *faultProxy) resetMidBody(t *testing.T, w http.ResponseWriter, r *http.Request, n int64) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	out, err := http.NewRequestWithContext(ctx, r.Method, p.upstream.String()+r.URL.RequestURI(), pr)
	if err != nil {
		t.Errorf("fault proxy: %v", err)
		return
	}
	out.Header = r.Header.Clone()
	out.ContentLength = -1 // chunked: the registry must not see a complete body
	out.Header.Del("Content-Length")
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := p.client.Transport.RoundTrip(out); err == nil {
			resp.Body.Close()
		}
	}()
	copied, _ := io.CopyN(pw, r.Body, n)
	cancel()
	pw.CloseWithError(errors.New("fault proxy: connection reset"))
	<-done
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		t.Errorf("fault proxy: hijack: %v", err)
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0) // Close sends RST
	}
	conn.Close()
	t.Logf("fault proxy: reset %s %s after %d body byte(s)", r.Method, r.URL.Path, copied)
}

// statusWriter remembers the status the reverse proxy wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
