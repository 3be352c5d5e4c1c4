package sshx_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/progress"
	"github.com/slipway-dev/slipway/tools/internal/sshx"
	"github.com/slipway-dev/slipway/tools/internal/sshx/sshtest"
)

func TestMain(m *testing.M) {
	// Hermetic: no agent, no passphrase from the caller's environment.
	os.Unsetenv("SSH_AUTH_SOCK")
	os.Unsetenv(sshx.PassphraseEnv)
	os.Exit(m.Run())
}

// testLog collects what sshx logs, for assertions on warnings.
type testLog struct{ bytes.Buffer }

func baseOpts(s *sshtest.Server, log *testLog) sshx.Options {
	o := sshx.Options{Identity: s.KeyFile, KnownHosts: s.KnownHosts, ConfigFile: "none", ConnectTimeout: 10 * time.Second}
	if log != nil {
		o.Log = progress.New(log)
	}
	return o
}

func dial(t *testing.T, target string, o sshx.Options) *sshx.Conn {
	t.Helper()
	c, err := sshx.Dial(context.Background(), target, o)
	if err != nil {
		t.Fatalf("Dial %s: %v", target, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRunExitCodesStdin(t *testing.T) {
	s := sshtest.Start(t, sshtest.Options{})
	c := dial(t, s.Target(), baseOpts(s, nil))
	ctx := context.Background()

	out, err := c.Output(ctx, "echo hello; echo err >&2", nil)
	if err != nil || string(out) != "hello\n" {
		t.Fatalf("Output = %q, %v", out, err)
	}
	out, err = c.Output(ctx, "tr a-z A-Z", strings.NewReader("from stdin\n"))
	if err != nil || string(out) != "FROM STDIN\n" {
		t.Fatalf("stdin: Output = %q, %v", out, err)
	}
	var stdout, stderr bytes.Buffer
	err = c.Run(ctx, "echo out; echo boom >&2; exit 7", nil, &stdout, &stderr)
	var ee *sshx.ExitError
	if !errors.As(err, &ee) || ee.Code != 7 || !strings.Contains(ee.Stderr, "boom") {
		t.Fatalf("Run exit 7: err = %#v", err)
	}
	if stdout.String() != "out\n" || stderr.String() != "boom\n" {
		t.Fatalf("stdout %q stderr %q", stdout.String(), stderr.String())
	}
	if !strings.Contains(err.Error(), "exit status 7") || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("error text %q lacks status or stderr", err)
	}
	// A remote command that does not read its stdin still returns.
	big := bytes.Repeat([]byte("x"), 4<<20)
	if err := c.Run(ctx, "true", bytes.NewReader(big), nil, nil); err != nil {
		t.Fatalf("unread stdin: %v", err)
	}
	// Large stdin round trip.
	out, err = c.Output(ctx, "wc -c", bytes.NewReader(big))
	if err != nil || strings.TrimSpace(string(out)) != "4194304" {
		t.Fatalf("wc -c = %q, %v", out, err)
	}
	if c.Handshakes() != 1 {
		t.Fatalf("Handshakes = %d, want 1", c.Handshakes())
	}
	if c.Name() != s.Target() {
		t.Fatalf("Name = %q, want %q", c.Name(), s.Target())
	}
}

var _ = io.Discard
