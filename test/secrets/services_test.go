package secrets

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/test/internal/svcstate"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/ssh"
)

// The services' state comes from test/internal/svcstate.
type (
	services = svcstate.Services
	target   = svcstate.Target
)

func repoRoot(t testing.TB) string { return svcstate.RepoRoot(t) }

func requireServices(t *testing.T) *services { return svcstate.Require(t) }

func unavailable(t *testing.T, msg string) { svcstate.Unavailable(t, msg) }

// addRegistryUser adds user to the registry's htpasswd (bcrypt; the password
// never leaves this process) and removes it when the test ends. The registry
// (distribution 2.8) re-reads htpasswd when its modification time changes, so
// no restart is needed; the file is replaced by rename so the registry never
// reads half of it, and the existing users stay as they are.
func addRegistryUser(t *testing.T, s *services, user, pass string) {
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
