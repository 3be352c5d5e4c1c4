// Package testenv describes the real services slipway's tests run against,
// as started by test/scripts/services.sh up (`make services`): the agent's
// Docker Engine, a registry with TLS and htpasswd auth, base fixture images in
// it, and SSH targets with their own engines.
//
// A test that needs them calls Require (or RequireDocker for the engine
// alone). Without the services the test fails when CI=true or
// SLIPWAY_REQUIRE_SERVICES=1, and is skipped otherwise.
package testenv

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Env is $SLIPWAY_TEST_STATE/env.json.
type Env struct {
	StateDir         string
	Registry         string // "10.213.0.1:5443"
	RegistryUser     string
	RegistryPassword string
	CACert           string // path to the CA certificate
	FixtureRegistry  string // prefix of the base images, e.g. "10.213.0.1:5443/slipway-fixtures"
	ComposeV2        string // the agent's Compose v2 binary (standalone; also the targets' plugin)
	BuildKitd        string // a standalone buildkitd: "tcp://127.0.0.1:12340"
	BuildKitdSocket  string // the same buildkitd: "unix:///.../buildkitd.sock"
	Targets          []Target
}

// Target is one SSH host with its own Docker Engine.
type Target struct {
	Name             string // "t1"
	Host             string // "10.213.0.11"
	Port             int    // 22
	PortNoForwarding int    // the same sshd, stream-local forwarding forbidden
	PortBare         int    // the same sshd, a PATH without the docker CLI and Compose
	PortNoCompose    int    // the same sshd, the docker CLI but no Compose
	User             string // "deploy"
	KeyFile          string // private key for User (unencrypted)
	KnownHosts       string // known_hosts file holding this target's host keys
	DockerHost       string // "unix:///.../t1/docker.sock": the target's own engine, usable from the agent
	Dir              string // a directory User may deploy into
	Compose          string // "v1" (docker-compose) or "v2" (the docker compose plugin)
}

const hint = "start them with `make services` (test/scripts/services.sh up, as root)"

// RepoRoot is the repository's root directory: the nearest parent of the
// working directory holding go.mod (go test runs in the package directory).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding the repository root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("finding the repository root: no go.mod above the working directory")
		}
		dir = parent
	}
}

// StateDir is $SLIPWAY_TEST_STATE, else <repo>/.state.
func StateDir() (string, error) {
	if d := os.Getenv("SLIPWAY_TEST_STATE"); d != "" {
		return d, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, ".state"), nil
}

// Load reads env.json from the state directory.
func Load() (*Env, error) {
	dir, err := StateDir()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "env.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading test services description: %w", err)
	}
	var e Env
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("parsing %s: %w (rerun test/scripts/services.sh up)", path, err)
	}
	if e.Registry == "" || e.CACert == "" {
		return nil, fmt.Errorf("%s has no registry (rerun test/scripts/services.sh up)", path)
	}
	return &e, nil
}

// The services are checked once per test binary; each Require reports the
// same result.
var (
	checkOnce sync.Once
	checkEnv  *Env
	checkErr  error

	dockerOnce sync.Once
	dockerErr  error
)

// Require returns the services' description, or ends the test: Fatal when
// CI=true or SLIPWAY_REQUIRE_SERVICES=1, Skip otherwise.
func Require(t testing.TB) *Env {
	t.Helper()
	checkOnce.Do(func() { checkEnv, checkErr = check() })
	if checkErr != nil {
		unavailable(t, checkErr)
	}
	return checkEnv
}

// RequireDocker ends the test (as Require does) unless the agent's Docker
// Engine (DOCKER_HOST, default the local socket) answers.
func RequireDocker(t testing.TB) {
	t.Helper()
	dockerOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		dockerErr = pingEngine(ctx, os.Getenv("DOCKER_HOST"))
	})
	if dockerErr != nil {
		unavailable(t, dockerErr)
	}
}

// ComposeV2Version is the Compose v2 that services.sh builds
// (COMPOSE_V2_VERSION in test/scripts/lib-targets.sh).
const ComposeV2Version = "2.40.3"

// RequireComposeV2 returns the agent's Compose v2 binary, or ends the test as
// Require does when services.sh has not built it.
func RequireComposeV2(t testing.TB) (*Env, string) {
	t.Helper()
	env := Require(t)
	if env.ComposeV2 == "" {
		unavailable(t, errors.New("env.json has no ComposeV2 (services.sh up builds Compose v2)"))
	}
	if _, err := os.Stat(env.ComposeV2); err != nil {
		unavailable(t, fmt.Errorf("the Compose v2 binary named in env.json: %w", err))
	}
	return env, env.ComposeV2
}

// ComposePluginConfig returns a new DOCKER_CONFIG directory holding bin as
// the docker CLI's compose plugin (cli-plugins/docker-compose).
func ComposePluginConfig(t testing.TB, bin string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "cli-plugins"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(bin, filepath.Join(dir, "cli-plugins", "docker-compose")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// ComposeV2Target returns the first target whose server runs Compose v2 (t3),
// or ends the test as Require does.
func ComposeV2Target(t testing.TB) (*Env, Target, string) {
	t.Helper()
	env, bin := RequireComposeV2(t)
	for _, tg := range env.Targets {
		if tg.Compose == "v2" {
			return env, tg, bin
		}
	}
	unavailable(t, errors.New("env.json lists no target with Compose v2 (services.sh up installs it on t3)"))
	return nil, Target{}, ""
}

// Required says whether missing services fail tests (CI=true or
// SLIPWAY_REQUIRE_SERVICES=1) rather than skip them.
func Required() bool {
	return os.Getenv("CI") == "true" || os.Getenv("SLIPWAY_REQUIRE_SERVICES") == "1"
}

// Recovery reports how long a fault took to recover from (from the fault to
// the first moment everything asserted held again). test/scripts/reliability.sh
// collects these lines from go test -v output into RELIABILITY.md.
func Recovery(t testing.TB, d time.Duration) {
	t.Helper()
	t.Logf("RECOVERY %s", d.Round(time.Millisecond))
}

func unavailable(t testing.TB, err error) {
	t.Helper()
	if Required() {
		t.Fatalf("test services unavailable: %v; %s", err, hint)
	}
	t.Skipf("test services unavailable: %v; %s (set SLIPWAY_REQUIRE_SERVICES=1 to fail instead of skip)", err, hint)
}

func check() (*Env, error) {
	e, err := Load()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := pingEngine(ctx, os.Getenv("DOCKER_HOST")); err != nil {
		return nil, err
	}
	if err := e.pingRegistry(ctx); err != nil {
		return nil, err
	}
	for _, tg := range e.Targets {
		if err := pingEngine(ctx, tg.DockerHost); err != nil {
			return nil, fmt.Errorf("target %s: %w", tg.Name, err)
		}
		d := net.Dialer{Timeout: 5 * time.Second}
		c, err := d.DialContext(ctx, "tcp", tg.Addr())
		if err != nil {
			return nil, fmt.Errorf("target %s: sshd: %w", tg.Name, err)
		}
		c.Close()
	}
	return e, nil
}

// Addr is host:port for dialling the target's sshd.
func (t Target) Addr() string { return net.JoinHostPort(t.Host, fmt.Sprint(t.Port)) }

// EngineClient is an HTTP client for the Docker Engine API at dockerHost
// ("unix:///path", "tcp://host:port" or "" for the local socket), with the
// base URL to put paths after. Only for test checks: slipway's own engine
// calls go through package engine.
func EngineClient(dockerHost string) (*http.Client, string, error) {
	if dockerHost == "" {
		dockerHost = "unix:///var/run/docker.sock"
	}
	u, err := url.Parse(dockerHost)
	if err != nil {
		return nil, "", fmt.Errorf("parsing DOCKER_HOST %q: %w", dockerHost, err)
	}
	switch u.Scheme {
	case "unix":
		sock := u.Path
		tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}}
		return &http.Client{Transport: tr, Timeout: 30 * time.Second}, "http://docker", nil
	case "tcp":
		return &http.Client{Timeout: 30 * time.Second}, "http://" + u.Host, nil
	default:
		return nil, "", fmt.Errorf("DOCKER_HOST %q: only unix:// and tcp:// are supported here", dockerHost)
	}
}

func pingEngine(ctx context.Context, dockerHost string) error {
	c, base, err := EngineClient(dockerHost)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/_ping", nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		name := dockerHost
		if name == "" {
			name = "the local Docker Engine"
		}
		return fmt.Errorf("%s does not answer: %w", name, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: /_ping answered %s", dockerHost, resp.Status)
	}
	return nil
}

// RegistryHTTPClient trusts the registry's test CA.
func (e *Env) RegistryHTTPClient() (*http.Client, error) {
	pem, err := os.ReadFile(e.CACert)
	if err != nil {
		return nil, fmt.Errorf("reading the registry CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", e.CACert)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}, nil
}

// pingRegistry wants the registry's /v2/ to demand credentials (401).
func (e *Env) pingRegistry(ctx context.Context) error {
	c, err := e.RegistryHTTPClient()
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+e.Registry+"/v2/", nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("registry %s does not answer: %w", e.Registry, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		return fmt.Errorf("registry %s: /v2/ without credentials answered %s, want 401", e.Registry, resp.Status)
	}
	return nil
}

// FixtureImage is a base image in the fixture registry, e.g.
// FixtureImage("postgres:15").
func (e *Env) FixtureImage(nameTag string) string { return e.FixtureRegistry + "/" + nameTag }

// Target returns the named target, failing the test if there is none.
func (e *Env) Target(t testing.TB, name string) Target {
	t.Helper()
	for _, tg := range e.Targets {
		if tg.Name == name {
			return tg
		}
	}
	t.Fatalf("no test target %q in %s/env.json (SLIPWAY_TARGETS too small?)", name, e.StateDir)
	return Target{}
}

// DockerConfig writes a Docker config directory holding credentials for the
// test registry and returns it, for DOCKER_CONFIG (removed after the test).
func (e *Env) DockerConfig(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte(e.RegistryUser + ":" + e.RegistryPassword))
	cfg := map[string]any{"auths": map[string]any{e.Registry: map[string]string{"auth": auth}}}
	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatalf("encoding docker config: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o600); err != nil {
		t.Fatalf("writing docker config: %v", err)
	}
	return dir
}

// SampleAppDir is test/fixtures/sampleapp in the repository (read only: copy
// it, or use SampleAppRepo, before changing anything).
func SampleAppDir(t testing.TB) string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "test", "fixtures", "sampleapp")
}

// SampleAppRepo makes a git repository of the sample app in a temporary
// directory (test/scripts/sampleapp-repo.sh) and returns its path. With
// versions, each one is a further commit changing the version baked into the
// web image (a visibly different release).
func SampleAppRepo(t testing.TB, versions ...string) string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "sampleapp")
	script := filepath.Join(root, "test", "scripts", "sampleapp-repo.sh")
	args := [][]string{{dest}}
	for _, v := range versions {
		args = append(args, []string{dest, v})
	}
	for _, a := range args {
		out, err := exec.Command(script, a...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", script, strings.Join(a, " "), err, out)
		}
	}
	return dest
}
