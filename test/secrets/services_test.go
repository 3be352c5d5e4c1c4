package secrets

// The test services (test/scripts/services.sh up), read from
// .state/env.json directly: tools/internal/testenv is internal to tools/ and
// cannot be imported from test/. Same rule as testenv.Require: without the
// services the test fails under CI=true or SLIPWAY_REQUIRE_SERVICES=1 and is
// skipped otherwise.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
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
	"golang.org/x/crypto/ssh"
)

type services struct {
	StateDir         string
	Registry         string
	RegistryUser     string
	RegistryPassword string
	CACert           string
	FixtureRegistry  string
	Targets          []target
}

type target struct {
	Name, Host, User, KeyFile, KnownHosts, DockerHost, Dir string
	Port                                                   int
}

func (t target) addr() string { return net.JoinHostPort(t.Host, fmt.Sprint(t.Port)) }

func repoRoot(t testing.TB) string {
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

func requireServices(t *testing.T) *services {
	t.Helper()
	s, err := loadServices(t)
	if err != nil {
		unavailable(t, fmt.Sprintf("test services unavailable: %v; start them with `make services` (test/scripts/services.sh up, as root)", err))
	}
	return s
}

// unavailable ends a test whose services are missing: Fatal under CI=true or
// SLIPWAY_REQUIRE_SERVICES=1 (as tools/internal/testenv, which test/ cannot
// import), Skip otherwise.
func unavailable(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" || os.Getenv("SLIPWAY_REQUIRE_SERVICES") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg + " (set SLIPWAY_REQUIRE_SERVICES=1 to fail instead of skip)")
}

func loadServices(t *testing.T) (*services, error) {
	state := os.Getenv("SLIPWAY_TEST_STATE")
	if state == "" {
		state = filepath.Join(repoRoot(t), ".state")
	}
	data, err := os.ReadFile(filepath.Join(state, "env.json"))
	if err != nil {
		return nil, err
	}
	var s services
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("parsing %s/env.json: %w", state, err)
	}
	if s.Registry == "" || len(s.Targets) == 0 {
		return nil, fmt.Errorf("%s/env.json has no registry or no target", state)
	}
	if s.StateDir == "" {
		s.StateDir = state
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("the agent's docker engine: %v: %s", err, out)
	}
	c, err := s.registryClient()
	if err != nil {
		return nil, err
	}
	if code, err := s.registryGet(ctx, c, "", ""); err != nil || code != http.StatusUnauthorized {
		return nil, fmt.Errorf("registry %s: /v2/ answered %d, %v (want 401 without credentials)", s.Registry, code, err)
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", s.Targets[0].addr())
	if err != nil {
		return nil, fmt.Errorf("target %s: sshd: %w", s.Targets[0].Name, err)
	}
	conn.Close()
	return &s, nil
}

func (s *services) registryClient() (*http.Client, error) {
	ca, err := os.ReadFile(s.CACert)
	if err != nil {
		return nil, fmt.Errorf("reading the registry CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("%s holds no certificate", s.CACert)
	}
	return &http.Client{Timeout: 30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}, nil
}

// registryGet returns the status of GET /v2/ with the given basic auth
// (none when user is "").
func (s *services) registryGet(ctx context.Context, c *http.Client, user, pass string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+s.Registry+"/v2/", nil)
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

// addRegistryUser adds user to the registry's htpasswd (bcrypt; the password
// never leaves this process) and removes it when the test ends. The registry
// (distribution 2.8) re-reads htpasswd when its modification time changes, so
// no restart is needed; the file is replaced by rename so the registry never
// reads half of it, and the existing users stay as they are.
func (s *services) addRegistryUser(t *testing.T, user, pass string) {
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
	c, err := s.registryClient()
	if err != nil {
		t.Fatal(err)
	}
	// The modification time has a granularity: wait for the registry to see it.
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, err := s.registryGet(context.Background(), c, user, pass)
		if err == nil && code == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the registry does not accept the new user %s after 30s (last: %d, %v): does it re-read %s?", user, code, err, path)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// encryptedKey writes the target's (unencrypted, already authorized) deploy
// key to path, encrypted with passphrase: the same key pair, so sshd needs no
// change, and the passphrase never passes through a command line.
func encryptedKey(t *testing.T, tg target, path, passphrase string) {
	t.Helper()
	raw, err := os.ReadFile(tg.KeyFile)
	if err != nil {
		t.Fatalf("reading the deploy key: %v", err)
	}
	key, err := ssh.ParseRawPrivateKey(raw)
	if err != nil {
		t.Fatalf("parsing %s: %v", tg.KeyFile, err)
	}
	block, err := ssh.MarshalPrivateKeyWithPassphrase(key, "slipway secrets test", []byte(passphrase))
	if err != nil {
		t.Fatalf("encrypting the deploy key: %v", err)
	}
	data := pem.EncodeToMemory(block)
	if _, err := ssh.ParsePrivateKey(data); err == nil {
		t.Fatal("the encrypted key parses without its passphrase")
	} else if !errors.As(err, new(*ssh.PassphraseMissingError)) {
		t.Fatalf("the encrypted key: %v", err)
	}
	if _, err := ssh.ParsePrivateKeyWithPassphrase(data, []byte(passphrase)); err != nil {
		t.Fatalf("the encrypted key does not open with its passphrase: %v", err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// docker runs the docker CLI against host ("" for the agent's engine).
func docker(ctx context.Context, host string, args ...string) (string, error) {
	if host != "" {
		args = append([]string{"-H", host}, args...)
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return strings.TrimSpace(out.String()), err
}
