package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func TestRegistryAuth(t *testing.T) {
	e := Require(t)
	c, err := e.RegistryHTTPClient()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name       string
		user, pass string
		want       int
	}{
		{"no credentials", "", "", http.StatusUnauthorized},
		{"wrong password", e.RegistryUser, e.RegistryPassword + "x", http.StatusUnauthorized},
		{"wrong user", "nobody", e.RegistryPassword, http.StatusUnauthorized},
		{"right password", e.RegistryUser, e.RegistryPassword, http.StatusOK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, "https://"+e.Registry+"/v2/", nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.user != "" {
				req.SetBasicAuth(tc.user, tc.pass)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("GET /v2/ as %q: %s, want %d", tc.user, resp.Status, tc.want)
			}
		})
	}
}

func TestFixtureImagesInRegistry(t *testing.T) {
	e := Require(t)
	c, err := e.RegistryHTTPClient()
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range []string{"debian:bookworm", "python:bookworm", "postgres:15", "nginx:bookworm"} {
		repo, tag, _ := strings.Cut(img, ":")
		path := strings.TrimPrefix(e.FixtureImage(repo), e.Registry+"/")
		req, err := http.NewRequest(http.MethodHead, "https://"+e.Registry+"/v2/"+path+"/manifests/"+tag, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth(e.RegistryUser, e.RegistryPassword)
		req.Header.Set("Accept", "application/vnd.docker.distribution.manifest.v2+json")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: manifest HEAD answered %s", e.FixtureImage(img), resp.Status)
		}
	}
}

func dialTarget(t *testing.T, tg Target, algos []string) (*ssh.Client, error) {
	t.Helper()
	keyPEM, err := os.ReadFile(tg.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(keyPEM)
	if err != nil {
		t.Fatalf("parsing %s: %v", tg.KeyFile, err)
	}
	hostKeys, err := knownhosts.New(tg.KnownHosts)
	if err != nil {
		t.Fatalf("reading %s: %v", tg.KnownHosts, err)
	}
	cfg := &ssh.ClientConfig{
		User:              tg.User,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback:   hostKeys,
		HostKeyAlgorithms: algos,
		Timeout:           10 * time.Second,
	}
	return ssh.Dial("tcp", tg.Addr(), cfg)
}

func runSSH(t *testing.T, c *ssh.Client, cmd string) string {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var out, errb bytes.Buffer
	s.Stdout, s.Stderr = &out, &errb
	if err := s.Run(cmd); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, errb.String())
	}
	return strings.TrimSpace(out.String())
}

// Each target's sshd proves every host key type with a key that its
// known_hosts holds, and a host key from elsewhere is refused.
func TestTargetHostKeys(t *testing.T) {
	e := Require(t)
	if len(e.Targets) == 0 {
		t.Fatal("env.json lists no targets")
	}
	for _, tg := range e.Targets {
		t.Run(tg.Name, func(t *testing.T) {
			for _, algo := range []string{ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoRSASHA512} {
				c, err := dialTarget(t, tg, []string{algo})
				if err != nil {
					t.Fatalf("ssh %s@%s with host key %s: %v", tg.User, tg.Addr(), algo, err)
				}
				if got := runSSH(t, c, "id -un"); got != tg.User {
					t.Errorf("logged in as %q, want %q", got, tg.User)
				}
				c.Close()
			}
		})
	}
	if len(e.Targets) > 1 {
		// t1's known_hosts must not vouch for t2's keys (keys are per target).
		other := e.Targets[1]
		other.KnownHosts = e.Targets[0].KnownHosts
		if c, err := dialTarget(t, other, nil); err == nil {
			c.Close()
			t.Errorf("%s accepted with %s's known_hosts", other.Name, e.Targets[0].Name)
		}
	}
}

func engineID(t *testing.T, dockerHost string) string {
	t.Helper()
	c, base, err := EngineClient(dockerHost)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/info", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("engine %q: %v", dockerHost, err)
	}
	defer resp.Body.Close()
	var info struct{ ID string }
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil || info.ID == "" {
		t.Fatalf("engine %q: /info without an ID (%v)", dockerHost, err)
	}
	return info.ID
}

// Each target has its own engine, and the deploy user's docker over SSH
// talks to exactly that engine.
func TestTargetEngines(t *testing.T) {
	e := Require(t)
	seen := map[string]string{engineID(t, os.Getenv("DOCKER_HOST")): "agent"}
	for _, tg := range e.Targets {
		id := engineID(t, tg.DockerHost)
		if prev, ok := seen[id]; ok {
			t.Errorf("target %s shares engine %s with %s", tg.Name, id, prev)
		}
		seen[id] = tg.Name

		c, err := dialTarget(t, tg, nil)
		if err != nil {
			t.Fatalf("ssh %s: %v", tg.Addr(), err)
		}
		if got := runSSH(t, c, `docker info --format '{{.ID}}'`); got != id {
			t.Errorf("%s: docker over SSH reaches engine %q, want the target's own %q", tg.Name, got, id)
		}
		if got := runSSH(t, c, "test -w "+tg.Dir+" && echo writable"); got != "writable" {
			t.Errorf("%s: %s is not writable by %s", tg.Name, tg.Dir, tg.User)
		}
		c.Close()
	}
}

func TestUnavailable(t *testing.T) {
	t.Setenv("SLIPWAY_TEST_STATE", t.TempDir())
	if _, err := Load(); err == nil {
		t.Error("Load with an empty state dir succeeded")
	}
	if pingEngine(context.Background(), "unix:///nonexistent/slipway-test.sock") == nil {
		t.Error("pingEngine of a missing socket reported no error")
	}
	if pingEngine(context.Background(), "ssh://x") == nil {
		t.Error("pingEngine accepted an ssh:// DOCKER_HOST")
	}
	t.Setenv("CI", "")
	t.Setenv("SLIPWAY_REQUIRE_SERVICES", "")
	if Required() {
		t.Error("Required() without CI or SLIPWAY_REQUIRE_SERVICES")
	}
	t.Setenv("CI", "true")
	if !Required() {
		t.Error("Required() false with CI=true")
	}
}
