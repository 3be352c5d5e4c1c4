package secrets

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/test/internal/svcstate"
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

func addRegistryUser(t *testing.T, s *services, user, pass string) { s.AddRegistryUser(t, user, pass) }

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
