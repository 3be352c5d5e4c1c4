// Package svcstate reads the test services' state (.state/env.json, written
// by test/scripts/services.sh up) for the end-to-end tests under test/.
// tools/internal/testenv is internal to tools/ and cannot be imported from
// here. Same rule as testenv.Require: without the services a test fails under
// CI=true or SLIPWAY_REQUIRE_SERVICES=1 and is skipped otherwise.
package svcstate

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Services is env.json: the registry (auth + TLS) and the SSH targets.
type Services struct {
	StateDir         string
	Registry         string
	RegistryUser     string
	RegistryPassword string
	CACert           string
	FixtureRegistry  string
	Targets          []Target
}

// Target is one SSH target: sshd and dockerd in a network namespace.
type Target struct {
	Name, Host, User, KeyFile, KnownHosts, DockerHost, Dir string
	Port                                                   int
}

// Addr is the target's sshd as host:port.
func (t Target) Addr() string { return net.JoinHostPort(t.Host, fmt.Sprint(t.Port)) }

// Target returns the target called name, else the first one.
func (s *Services) Target(name string) Target {
	for _, t := range s.Targets {
		if t.Name == name {
			return t
		}
	}
	return s.Targets[0]
}

// RepoRoot is the directory holding go.mod above the working directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Require returns the running services, or ends the test (see Unavailable).
func Require(t *testing.T) *Services {
	t.Helper()
	s, err := Load(t)
	if err != nil {
		Unavailable(t, fmt.Sprintf("test services unavailable: %v; start them with `make services` (test/scripts/services.sh up, as root)", err))
	}
	return s
}

// Unavailable ends a test whose services are missing: Fatal under CI=true or
// SLIPWAY_REQUIRE_SERVICES=1, Skip otherwise.
func Unavailable(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" || os.Getenv("SLIPWAY_REQUIRE_SERVICES") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg + " (set SLIPWAY_REQUIRE_SERVICES=1 to fail instead of skip)")
}

// Load reads env.json from SLIPWAY_TEST_STATE (default: <repo>/.state) and
// checks that the agent's engine, the registry and the first target's sshd
// answer.
func Load(t testing.TB) (*Services, error) {
	state := os.Getenv("SLIPWAY_TEST_STATE")
	if state == "" {
		state = filepath.Join(RepoRoot(t), ".state")
	}
	data, err := os.ReadFile(filepath.Join(state, "env.json"))
	if err != nil {
		return nil, err
	}
	var s Services
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("parsing %s/env.json: %w", state, err)
	}
	if s.Registry == "" || len(s.Targets) == 0 {
		return nil, fmt.Errorf("%s/env.json has no registry or no target", state)
	}
	if s.StateDir == "" {
		s.StateDir = state
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("the agent's docker engine: %v: %s", err, out)
	}
	c, err := s.RegistryClient()
	if err != nil {
		return nil, err
	}
	if code, err := s.RegistryGet(ctx, c, "/v2/", "", ""); err != nil || code != http.StatusUnauthorized {
		return nil, fmt.Errorf("registry %s: /v2/ answered %d, %v (want 401 without credentials)", s.Registry, code, err)
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", s.Targets[0].Addr())
	if err != nil {
		return nil, fmt.Errorf("target %s: sshd: %w", s.Targets[0].Name, err)
	}
	conn.Close()
	return &s, nil
}

// RegistryClient trusts the registry's CA.
func (s *Services) RegistryClient() (*http.Client, error) {
	ca, err := os.ReadFile(s.CACert)
	if err != nil {
		return nil, fmt.Errorf("reading the registry CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("%s holds no certificate", s.CACert)
	}
	return &http.Client{Timeout: 60 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}, nil
}

// RegistryGet returns the status of GET path (e.g. /v2/) on the registry with
// the given basic auth (none when user is "").
func (s *Services) RegistryGet(ctx context.Context, c *http.Client, path, user, pass string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+s.Registry+path, nil)
	if err != nil {
		return 0, err
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// AddRegistryUser adds user to the registry's htpasswd (bcrypt; the password
// never leaves this process) and removes it when the test ends. The registry
// (distribution 2.8) re-reads htpasswd when its modification time changes, so
// no restart is needed; the file is replaced by rename so the registry never
// reads half of it, and the existing users stay as they are.
func (s *Services) AddRegistryUser(t *testing.T, user, pass string) {
	t.Helper()
	path := filepath.Join(s.StateDir, "registry", "htpasswd")
	hash, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.DefaultCost)
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(lines []string) []string) error {
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("reading %s: %w", path, err)
		}
		var lines []string
		for _, l := range strings.Split(string(data), "\n") {
			if l != "" {
				lines = append(lines, l)
			}
		}
		tmp := fmt.Sprintf("%s.%s.tmp", path, user)
		if err := os.WriteFile(tmp, []byte(strings.Join(f(lines), "\n")+"\n"), 0o600); err != nil {
			return fmt.Errorf("writing %s: %w", tmp, err)
		}
		return os.Rename(tmp, path)
	}
	without := func(lines []string) []string {
		var out []string
		for _, l := range lines {
			if !strings.HasPrefix(l, user+":") {
				out = append(out, l)
			}
		}
		return out
	}
	if err := edit(func(lines []string) []string { return append(without(lines), user+":"+string(hash)) }); err != nil {
		t.Fatalf("adding registry user %s: %v", user, err)
	}
	t.Cleanup(func() {
		if err := edit(without); err != nil {
			t.Errorf("removing registry user %s from htpasswd: %v", user, err)
		}
	})
	c, err := s.RegistryClient()
	if err != nil {
		t.Fatal(err)
	}
	// The modification time has a granularity: wait for the registry to see it.
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, err := s.RegistryGet(context.Background(), c, "/v2/", user, pass)
		if err == nil && code == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the registry does not accept the new user %s after 30s (last: %d, %v): does it re-read %s?", user, code, err, path)
		}
		time.Sleep(300 * time.Millisecond)
	}
}
