package push

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/engine"
	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/progress"
	"github.com/slipway-dev/slipway/tools/internal/regauth"
	"github.com/slipway-dev/slipway/tools/internal/testenv"
)

// countingEngine is the real engine, counting slipway's push calls.
type countingEngine struct {
	*engine.Client
	mu     sync.Mutex
	pushes int
	errs   []error
}

func (c *countingEngine) Push(ctx context.Context, ref string, a regauth.Auth, fn func(engine.Message)) (engine.PushResult, error) {
	res, err := c.Client.Push(ctx, ref, a, fn)
	c.mu.Lock()
	c.pushes++
	if err != nil {
		c.errs = append(c.errs, err)
	}
	c.mu.Unlock()
	return res, err
}

type faultPush struct {
	repo   string // repository path in the registry
	digest string
	err    error
	log    string
	pushes int     // slipway's calls to the engine's push
	errs   []error // what each failed call returned
	done   time.Time
}

// faultRetry keeps the tests short; the waits are still real.
var faultRetry = Retry{Attempts: 4, Initial: 200 * time.Millisecond, Max: 2 * time.Second}

// pushThrough builds an image with payload as its layer, tagged on the
// proxy, and pushes it with the real engine and the test credentials.
func pushThrough(t *testing.T, env *testenv.Env, p *faultProxy, payload []byte, retry Retry) faultPush {
	t.Helper()
	repo := "slipway-it/" + randomName(t)
	m, _ := payloadImage(t, p.addr+"/"+repo+":v1", payload)
	var logbuf syncBuffer
	cfg := Config{Auth: regauth.New(regauth.Options{Getenv: credEnv(env.RegistryUser, env.RegistryPassword, nil), EnvHosts: []string{p.addr}}),
		Log: progress.New(&logbuf), Retry: retry}
	eng, err := engine.New(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	ce := &countingEngine{Client: eng}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	digests, err := Images(ctx, ce, m, cfg)
	r := faultPush{repo: repo, digest: digests["tiny"], err: err, log: logbuf.String(), pushes: ce.pushes, errs: ce.errs, done: time.Now()}
	t.Logf("slipway log:\n%s", r.log)
	if err != nil {
		t.Logf("slipway error: %v", err)
	}
	return r
}

// syncBuffer: the logger is shared by push goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// registryGet fetches a path of the real registry (not through the proxy)
// with the test credentials, answering a bearer challenge if there is one.
func registryGet(t *testing.T, env *testenv.Env, path, accept string) []byte {
	t.Helper()
	c, err := env.RegistryHTTPClient()
	if err != nil {
		t.Fatal(err)
	}
	get := func(authz string) (*http.Response, []byte) {
		req, _ := http.NewRequest(http.MethodGet, "https://"+env.Registry+path, nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		if authz != "" {
			req.Header.Set("Authorization", authz)
		} else {
			req.SetBasicAuth(env.RegistryUser, env.RegistryPassword)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		return resp, b
	}
	resp, body := get("")
	if ch := resp.Header.Get("WWW-Authenticate"); resp.StatusCode == http.StatusUnauthorized && strings.HasPrefix(ch, "Bearer ") {
		resp, body = get("Bearer " + bearerToken(t, c, env, ch))
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", path, resp.Status)
	}
	return body
}

// checkStored asserts that the registry (asked directly) has repo:v1 at
// digest and that every layer blob it references is whole: its content
// hashes to its digest and has the manifest's size.
func checkStored(t *testing.T, env *testenv.Env, repo, digest string) {
	t.Helper()
	if got := registryDigest(t, env, env.Registry, repo, "v1"); got != digest {
		t.Fatalf("registry has %s:v1 at %s, the push recorded %s", repo, got, digest)
	}
	raw := registryGet(t, env, "/v2/"+repo+"/manifests/"+digest,
		"application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json")
	if sum := fmt.Sprintf("sha256:%x", sha256.Sum256(raw)); sum != digest {
		t.Fatalf("manifest content hashes to %s, not %s", sum, digest)
	}
	var man struct {
		Layers []struct {
			Digest string `json:"digest"`
			Size   int64  `json:"size"`
		} `json:"layers"`
	}
	if err := json.Unmarshal(raw, &man); err != nil || len(man.Layers) == 0 {
		t.Fatalf("manifest %s: %v\n%s", digest, err, raw)
	}
	for _, l := range man.Layers {
		blob := registryGet(t, env, "/v2/"+repo+"/blobs/"+l.Digest, "")
		if sum := fmt.Sprintf("sha256:%x", sha256.Sum256(blob)); sum != l.Digest || int64(len(blob)) != l.Size {
			t.Errorf("layer %s: stored blob is %d bytes hashing to %s, manifest says %d bytes", l.Digest, len(blob), sum, l.Size)
		}
	}
}

func isRetryLog(line string) bool { return strings.Contains(line, "retrying in") }

func countLines(log string, pred func(string) bool) int {
	n := 0
	for _, l := range strings.Split(log, "\n") {
		if pred(l) {
			n++
		}
	}
	return n
}

// TestRegistryFault429ThenSuccess: a registry rate-limits the push twice,
// then lets it through. dockerd never retries a 429 itself (it marks
// TOOMANYREQUESTS "do not retry" for blobs, and never retries a manifest
// PUT), so each 429 fails the engine's push with an errorDetail and slipway
// retries the whole push: three pushes, two logged retries.
//
// Retry-After is sent in one case but cannot be honoured: the engine API
// passes on only the registry's error text, never its headers (dockerd
// 20.10 and moby up to v28 have no Retry-After handling), so slipway's own
// capped backoff decides the wait, and the log shows it.
func TestRegistryFault429ThenSuccess(t *testing.T) {
	env := testenv.Require(t)
	cases := []struct {
		name  string
		match func(*http.Request) bool
		fault fault
		text  string // what the engine reports
		seen  int    // matching requests the proxy sees in all
	}{
		{"manifest PUT without Retry-After", isManifestPut,
			fault{Status: http.StatusTooManyRequests},
			"error parsing HTTP 429 response body", 3},
		// The layer's upload is refused twice; the third push uploads the
		// layer, then the config blob: four upload starts.
		{"blob upload with Retry-After", isUploadStart,
			fault{Status: http.StatusTooManyRequests, Header: map[string]string{"Retry-After": "1"}, Body: registryError("TOOMANYREQUESTS", "injected rate limit")},
			"toomanyrequests: injected rate limit", 4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := startFaultProxy(t, env)
			rule := p.Add(&faultRule{Name: "429", Match: c.match, Times: 2, Fault: c.fault})
			r := pushThrough(t, env, p, []byte(randomName(t)), faultRetry)
			if r.err != nil {
				t.Fatalf("push failed: %v", r.err)
			}
			if got := p.Fired(rule); got != 2 {
				t.Errorf("%d 429s injected, want 2", got)
			}
			if got := p.Seen(rule); got != c.seen {
				t.Errorf("the proxy saw %d matching requests, want %d", got, c.seen)
			}
			if r.pushes != 3 {
				t.Errorf("slipway pushed %d times, want 3 (two 429s, then success)", r.pushes)
			}
			for i, err := range r.errs {
				var se *engine.StreamError
				if !errors.As(err, &se) || !strings.Contains(se.Message, c.text) {
					t.Errorf("push %d failed with %v, want an errorDetail with %q", i+1, err, c.text)
				}
			}
			if n := countLines(r.log, isRetryLog); n != 2 {
				t.Errorf("%d retries logged, want 2:\n%s", n, r.log)
			}
			// Slipway's backoff, not Retry-After (see above): 200ms, then 400ms.
			for _, want := range []string{c.text, "retrying in 200ms (attempt 2 of 4)", "retrying in 400ms (attempt 3 of 4)"} {
				if !strings.Contains(r.log, want) {
					t.Errorf("log lacks %q:\n%s", want, r.log)
				}
			}
			if strings.Contains(r.log, "Retrying in") {
				t.Errorf("dockerd retried a 429 itself:\n%s", r.log)
			}
			checkStored(t, env, r.repo, r.digest)
			testenv.Recovery(t, r.done.Sub(p.First(rule)))
		})
	}
}

// TestRegistryFault401FailsFast: a 401 on a blob upload or on the manifest
// PUT (the credentials worked for GET /v2/) ends the push at once: one
// request refused, one push, nothing retried by slipway or dockerd, and the
// message names the registry, the user and where the credentials came from.
func TestRegistryFault401FailsFast(t *testing.T) {
	env := testenv.Require(t)
	for _, c := range []struct {
		name  string
		match func(*http.Request) bool
	}{{"blob upload", isUploadStart}, {"manifest PUT", isManifestPut}} {
		t.Run(c.name, func(t *testing.T) {
			p := startFaultProxy(t, env)
			rule := p.Add(&faultRule{Name: "401", Match: c.match, Times: 100, Fault: fault{Status: http.StatusUnauthorized,
				Header: map[string]string{"WWW-Authenticate": `Basic realm="fault proxy"`},
				Body:   registryError("UNAUTHORIZED", "injected: authentication required")}})
			r := pushThrough(t, env, p, []byte(randomName(t)), faultRetry)
			if r.err == nil {
				t.Fatal("push succeeded through a 401")
			}
			if got := p.Seen(rule); got != 1 {
				t.Errorf("the refused request was made %d times, want 1", got)
			}
			if r.pushes != 1 {
				t.Errorf("slipway pushed %d times, want 1", r.pushes)
			}
			if code := exit.Code(r.err); code != exit.Failed {
				t.Errorf("exit code %d, want %d", code, exit.Failed)
			}
			msg := r.err.Error()
			for _, want := range []string{"pushing " + p.addr + "/" + r.repo + ":v1", "unauthorized: injected: authentication required",
				"registry " + p.addr + " refused the credentials", fmt.Sprintf("user %q", env.RegistryUser), "env SLIPWAY_REGISTRY_USER/SLIPWAY_REGISTRY_PASSWORD"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error lacks %q:\n%s", want, msg)
				}
			}
			if strings.Contains(r.log, "retrying in") || strings.Contains(r.log, "Retrying in") {
				t.Errorf("a 401 was retried:\n%s", r.log)
			}
			if strings.Contains(msg+r.log, env.RegistryPassword) {
				t.Error("the password was printed")
			}
		})
	}
}

// TestRegistryFaultResetMidBlob: the proxy passes the first 256 KiB of the
// 1 MiB layer's upload on to the registry, then resets the TCP connection.
// dockerd retries the layer itself (after 5 s, on a fresh upload session),
// reporting "Retrying in N seconds" in the push stream, which slipway logs;
// slipway's push call succeeds the first time, and the registry holds the
// whole layer under the right digest.
func TestRegistryFaultResetMidBlob(t *testing.T) {
	env := testenv.Require(t)
	p := startFaultProxy(t, env)
	rule := p.Add(&faultRule{Name: "reset", Match: isUploadData, Times: 1, Fault: fault{ResetAfter: 256 << 10}})
	r := pushThrough(t, env, p, randomBytes(t, 1<<20), faultRetry)
	if r.err != nil {
		t.Fatalf("push failed: %v", r.err)
	}
	if got := p.Fired(rule); got != 1 {
		t.Fatalf("%d resets injected, want 1", got)
	}
	tr := p.Trace()
	var resetAt int
	for i, x := range tr {
		if x.Fault != "" {
			resetAt = i
		}
	}
	// What happened next: a new upload session for the layer, sent whole.
	if len(tr) < resetAt+4 || !(tr[resetAt+1].Method == http.MethodPost && tr[resetAt+1].Status == http.StatusAccepted &&
		tr[resetAt+2].Method == http.MethodPatch && tr[resetAt+2].Status == http.StatusAccepted &&
		tr[resetAt+3].Method == http.MethodPut && tr[resetAt+3].Status == http.StatusCreated) {
		t.Errorf("after the reset, want POST 202, PATCH 202, PUT 201 (a new upload); got %v", tr[resetAt:])
	}
	// Layer twice (cut, then whole), config once.
	if n := p.Count(func(x traced) bool {
		return x.Method == http.MethodPost && strings.HasSuffix(x.Path, "/blobs/uploads/")
	}); n != 3 {
		t.Errorf("%d upload sessions started, want 3", n)
	}
	if r.pushes != 1 {
		t.Errorf("slipway pushed %d times, want 1 (dockerd retries a blob upload itself)", r.pushes)
	}
	if !strings.Contains(r.log, "Retrying in 5 seconds") {
		t.Errorf("dockerd's retry is not in slipway's log:\n%s", r.log)
	}
	if strings.Contains(r.log, "retrying in") {
		t.Errorf("slipway retried although the engine's push succeeded:\n%s", r.log)
	}
	checkStored(t, env, r.repo, r.digest)
	testenv.Recovery(t, r.done.Sub(p.First(rule)))
}

// TestRegistryFaultErrorDetailFailsThePush: the registry refuses the
// manifest (400 MANIFEST_INVALID). The engine's push call itself returns
// 200; the refusal arrives as an errorDetail in its JSON stream. slipway
// fails the push with exit 1, naming the image (and so the registry) and
// the registry's text, and does not retry: the manifest was PUT once.
func TestRegistryFaultErrorDetailFailsThePush(t *testing.T) {
	env := testenv.Require(t)
	p := startFaultProxy(t, env)
	rule := p.Add(&faultRule{Name: "400", Match: isManifestPut, Times: 100, Fault: fault{Status: http.StatusBadRequest,
		Body: registryError("MANIFEST_INVALID", "injected: manifest rejected by policy")}})
	r := pushThrough(t, env, p, []byte(randomName(t)), faultRetry)
	if r.err == nil {
		t.Fatal("push succeeded although the registry refused the manifest")
	}
	if got := p.Seen(rule); got != 1 {
		t.Errorf("%d manifest PUTs, want 1 (not retried)", got)
	}
	if r.pushes != 1 || len(r.errs) != 1 {
		t.Fatalf("slipway pushed %d times (%d failed), want 1", r.pushes, len(r.errs))
	}
	var se *engine.StreamError
	if !errors.As(r.errs[0], &se) {
		t.Errorf("the engine's push failed with %T %v, want an errorDetail from its stream", r.errs[0], r.errs[0])
	}
	if code := exit.Code(r.err); code != exit.Failed {
		t.Errorf("exit code %d, want %d", code, exit.Failed)
	}
	msg := r.err.Error()
	for _, want := range []string{"pushing " + p.addr + "/" + r.repo + ":v1 (service tiny)", "manifest invalid: injected: manifest rejected by policy",
		"registry " + p.addr} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(r.log, "retrying in") {
		t.Errorf("a refused manifest was retried:\n%s", r.log)
	}
}

// TestRegistryFault503EveryTimeGivesUp: a registry that answers every
// manifest PUT with 503 is retried, but only Attempts times; then the push
// fails naming the registry and the number of attempts.
func TestRegistryFault503EveryTimeGivesUp(t *testing.T) {
	env := testenv.Require(t)
	p := startFaultProxy(t, env)
	rule := p.Add(&faultRule{Name: "503", Match: isManifestPut, Times: 100, Fault: fault{Status: http.StatusServiceUnavailable,
		Body: registryError("UNAVAILABLE", "injected: down for maintenance")}})
	r := pushThrough(t, env, p, []byte(randomName(t)), faultRetry)
	if r.err == nil {
		t.Fatal("push succeeded through a registry that is always down")
	}
	if got := p.Seen(rule); got != faultRetry.Attempts {
		t.Errorf("%d manifest PUTs, want exactly %d", got, faultRetry.Attempts)
	}
	if r.pushes != faultRetry.Attempts {
		t.Errorf("slipway pushed %d times, want %d", r.pushes, faultRetry.Attempts)
	}
	if n := countLines(r.log, isRetryLog); n != faultRetry.Attempts-1 {
		t.Errorf("%d retries logged, want %d:\n%s", n, faultRetry.Attempts-1, r.log)
	}
	if code := exit.Code(r.err); code != exit.Failed {
		t.Errorf("exit code %d, want %d", code, exit.Failed)
	}
	msg := r.err.Error()
	// dockerd passes on a 5xx's status line, not its body.
	for _, want := range []string{"pushing " + p.addr + "/" + r.repo + ":v1", "503 Service Unavailable",
		fmt.Sprintf("gave up after %d attempts", faultRetry.Attempts), "registry " + p.addr + " kept failing"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
}
