package sshx_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/slipway-dev/slipway/tools/internal/exit"

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
	err = c.Run(ctx, "kill -KILL $$", nil, nil, nil)
	if !errors.As(err, &ee) || ee.Signal != "KILL" || ee.Code != 128+9 || !strings.Contains(err.Error(), "signal KILL") {
		t.Fatalf("killed by signal: err = %#v", err)
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

func TestManyRunsOneHandshake(t *testing.T) {
	s := sshtest.Start(t, sshtest.Options{})
	c := dial(t, s.Target(), baseOpts(s, nil))
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		out, err := c.Output(ctx, "echo "+strconv.Itoa(i), nil)
		if err != nil || strings.TrimSpace(string(out)) != strconv.Itoa(i) {
			t.Fatalf("run %d: %q, %v", i, out, err)
		}
	}
	// More concurrent sessions than sshd's MaxSessions (10): they must queue,
	// not fail with "open failed".
	var wg sync.WaitGroup
	errs := make(chan error, 25)
	for i := 0; i < 25; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			out, err := c.Output(ctx, fmt.Sprintf("sleep 0.3; echo %d", i), nil)
			if err == nil && strings.TrimSpace(string(out)) != strconv.Itoa(i) {
				err = fmt.Errorf("session %d got %q", i, out)
			}
			errs <- err
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := c.Handshakes(); got != 1 {
		t.Fatalf("Handshakes = %d, want 1", got)
	}
	if n := strings.Count(s.Log(), "Accepted publickey"); n != 1 {
		t.Fatalf("sshd accepted %d logins, want 1:\n%s", n, s.Log())
	}
}

func TestUnknownHostRefused(t *testing.T) {
	s := sshtest.Start(t, sshtest.Options{})
	o := baseOpts(s, nil)
	o.KnownHosts = filepath.Join(t.TempDir(), "known_hosts") // does not exist: every host unknown
	_, err := sshx.Dial(context.Background(), s.Target(), o)
	var hk *sshx.HostKeyError
	if !errors.As(err, &hk) || hk.Problem != sshx.HostUnknown {
		t.Fatalf("want unknown-host error, got %v", err)
	}
	// ssh's own preference: the ed25519 key is the one reported.
	want := s.HostKeys[sshtest.Ed25519]
	line := s.KnownHostsLine(sshtest.Ed25519, false)
	msg := err.Error()
	for _, part := range []string{want.Fingerprint, line, "--accept-new", "--host-key", "[127.0.0.1]:" + strconv.Itoa(s.Port)} {
		if !strings.Contains(msg, part) {
			t.Errorf("error lacks %q:\n%s", part, msg)
		}
	}
	if hk.Line != line {
		t.Errorf("Line = %q, want %q", hk.Line, line)
	}
	if exit.Code(err) != exit.Failed {
		t.Errorf("exit code %d, want 1", exit.Code(err))
	}
	if _, err := os.Stat(o.KnownHosts); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("strict mode must not create known_hosts: %v", err)
	}
	// A port-22 entry for the same address does not vouch for another port.
	other := knownhosts.Line([]string{"127.0.0.1"}, want.Public)
	o.KnownHosts = sshtest.WriteKnownHosts(t, other)
	if _, err := sshx.Dial(context.Background(), s.Target(), o); !errors.As(err, &hk) || hk.Problem != sshx.HostUnknown {
		t.Fatalf("port-22 entry must not match port %d: %v", s.Port, err)
	}
}

func TestChangedHostKeyRefused(t *testing.T) {
	s := sshtest.Start(t, sshtest.Options{})
	impostor, err := sshtest.GenerateKey(filepath.Join(t.TempDir(), "k"), sshtest.Ed25519, "")
	if err != nil {
		t.Fatal(err)
	}
	o := baseOpts(s, nil)
	o.KnownHosts = sshtest.WriteKnownHosts(t, knownhosts.Line([]string{s.Addr}, impostor))
	for _, acceptNew := range []bool{false, true} {
		o.AcceptNew = acceptNew // trust on first use never covers a changed key
		_, err = sshx.Dial(context.Background(), s.Target(), o)
		var hk *sshx.HostKeyError
		if !errors.As(err, &hk) || hk.Problem != sshx.HostKeyChanged {
			t.Fatalf("accept-new=%v: want changed-key error, got %v", acceptNew, err)
		}
		msg := err.Error()
		for _, part := range []string{"HOST KEY CHANGED", ssh.FingerprintSHA256(impostor), s.HostKeys[sshtest.Ed25519].Fingerprint, "ssh-keygen -R"} {
			if !strings.Contains(msg, part) {
				t.Errorf("error lacks %q:\n%s", part, msg)
			}
		}
	}
	b, _ := os.ReadFile(o.KnownHosts)
	if strings.Count(string(b), "\n") != 1 {
		t.Fatalf("known_hosts was modified:\n%s", b)
	}
}

// golang/go#29286: a server with three key types and a known_hosts holding
// only one of them must connect, whichever it is.
func TestOneKnownKeyOfThree(t *testing.T) {
	s := sshtest.Start(t, sshtest.Options{})
	for _, typ := range []string{sshtest.Ed25519, sshtest.ECDSA, sshtest.RSA} {
		for _, hashed := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/hashed=%v", typ, hashed), func(t *testing.T) {
				o := baseOpts(s, nil)
				o.KnownHosts = sshtest.WriteKnownHosts(t, "# only one key", s.KnownHostsLine(typ, hashed))
				c := dial(t, s.Target(), o)
				if out, err := c.Output(context.Background(), "echo ok", nil); err != nil || string(out) != "ok\n" {
					t.Fatalf("%q %v", out, err)
				}
			})
		}
	}
}

// An ssh-rsa known_hosts entry must work with a server that refuses SHA-1
// signatures (OpenSSH >= 8.8): the client has to negotiate rsa-sha2-*.
func TestSSHRSAEntryUsesRSASHA2(t *testing.T) {
	s := sshtest.Start(t, sshtest.Options{ExtraConfig: []string{"HostKeyAlgorithms rsa-sha2-512,rsa-sha2-256,ssh-ed25519,ecdsa-sha2-nistp256"}})
	line := s.KnownHostsLine(sshtest.RSA, false)
	if !strings.Contains(line, " ssh-rsa ") {
		t.Fatalf("line %q is not an ssh-rsa entry", line)
	}
	o := baseOpts(s, nil)
	o.KnownHosts = sshtest.WriteKnownHosts(t, line)
	c := dial(t, s.Target(), o)
	if _, err := c.Output(context.Background(), "true", nil); err != nil {
		t.Fatal(err)
	}
}

func TestHostKeyPin(t *testing.T) {
	s := sshtest.Start(t, sshtest.Options{})
	o := baseOpts(s, nil)
	o.KnownHosts = filepath.Join(t.TempDir(), "empty") // the pin overrides known_hosts
	o.HostKey = s.HostKeys[sshtest.Ed25519].Fingerprint
	dial(t, s.Target(), o)

	o.HostKey = strings.TrimPrefix(o.HostKey, "SHA256:") // prefix optional
	dial(t, s.Target(), o)

	o.HostKey = s.HostKeys[sshtest.ECDSA].Fingerprint // a real key, but not the one negotiated
	_, err := sshx.Dial(context.Background(), s.Target(), o)
	var hk *sshx.HostKeyError
	if !errors.As(err, &hk) || hk.Problem != sshx.HostKeyPinMismatch || !strings.Contains(err.Error(), o.HostKey) {
		t.Fatalf("want pin mismatch naming %s, got %v", o.HostKey, err)
	}

	o.HostKey = "SHA256:not-a-fingerprint"
	_, err = sshx.Dial(context.Background(), s.Target(), o)
	if exit.Code(err) != exit.Usage || !strings.Contains(err.Error(), "--host-key") {
		t.Fatalf("bad pin: want usage error naming --host-key, got %v (code %d)", err, exit.Code(err))
	}
}

func TestAcceptNew(t *testing.T) {
	s := sshtest.Start(t, sshtest.Options{})
	var log testLog
	o := baseOpts(s, &log)
	o.KnownHosts = filepath.Join(t.TempDir(), "sub", "known_hosts")
	o.AcceptNew = true
	dial(t, s.Target(), o)
	b, err := os.ReadFile(o.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	want := s.KnownHostsLine(sshtest.Ed25519, false) + "\n"
	if string(b) != want {
		t.Fatalf("known_hosts = %q, want %q", b, want)
	}
	if !strings.Contains(log.String(), "warning:") || !strings.Contains(log.String(), s.HostKeys[sshtest.Ed25519].Fingerprint) {
		t.Fatalf("no warning with the fingerprint logged: %q", log.String())
	}
	// Second connection: strict, verified against the recorded line.
	o.AcceptNew = false
	dial(t, s.Target(), o)
	if b2, _ := os.ReadFile(o.KnownHosts); string(b2) != want {
		t.Fatalf("known_hosts changed on second connect: %q", b2)
	}
}

func TestEncryptedKey(t *testing.T) {
	const pass = `pa$$ w'o"rd`
	s := sshtest.Start(t, sshtest.Options{Passphrase: pass})
	o := baseOpts(s, nil)

	t.Setenv(sshx.PassphraseEnv, "")
	os.Unsetenv(sshx.PassphraseEnv)
	before := strings.Count(s.Log(), "Connection from")
	_, err := sshx.Dial(context.Background(), s.Target(), o)
	if !errors.Is(err, sshx.ErrPassphrase) || !strings.Contains(err.Error(), sshx.PassphraseEnv) || exit.Code(err) != exit.Failed {
		t.Fatalf("without passphrase: want a clear error naming %s, got %v", sshx.PassphraseEnv, err)
	}
	if strings.Count(s.Log(), "Connection from") != before {
		t.Errorf("a key problem must fail before connecting")
	}

	t.Setenv(sshx.PassphraseEnv, "wrong")
	if _, err := sshx.Dial(context.Background(), s.Target(), o); !errors.Is(err, sshx.ErrPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}

	t.Setenv(sshx.PassphraseEnv, pass)
	c := dial(t, s.Target(), o)
	if _, err := c.Output(context.Background(), "true", nil); err != nil {
		t.Fatal(err)
	}
}

func TestWrongKeyRefused(t *testing.T) {
	s := sshtest.Start(t, sshtest.Options{})
	o := baseOpts(s, nil)
	o.Identity = filepath.Join(t.TempDir(), "other")
	if _, err := sshtest.GenerateKey(o.Identity, sshtest.Ed25519, ""); err != nil {
		t.Fatal(err)
	}
	_, err := sshx.Dial(context.Background(), s.Target(), o)
	if !errors.Is(err, sshx.ErrAuth) || !strings.Contains(err.Error(), o.Identity) || !strings.Contains(err.Error(), "authorized_keys") {
		t.Fatalf("want auth error naming the key, got %v", err)
	}
}

func TestAgentAuthNoForwarding(t *testing.T) {
	agentBin, err := exec.LookPath("ssh-agent")
	if err != nil {
		t.Skip("ssh-agent not installed")
	}
	const pass = "agent-held"
	s := sshtest.Start(t, sshtest.Options{Passphrase: pass})
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ag := exec.Command(agentBin, "-D", "-a", sock)
	if err := ag.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ag.Process.Kill(); _ = ag.Wait() })
	for i := 0; i < 200; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	add := exec.Command("ssh-add", s.KeyFile)
	add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock, "SSH_ASKPASS_REQUIRE=force", "SSH_ASKPASS="+writeAskpass(t, pass), "DISPLAY=none")
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v: %s", err, out)
	}
	t.Setenv("SSH_AUTH_SOCK", sock)

	// Agent only, no key file.
	o := baseOpts(s, nil)
	o.Identity = ""
	c := dial(t, s.Target(), o)
	out, err := c.Output(context.Background(), `echo "${SSH_AUTH_SOCK:-none}"`, nil)
	if err != nil || strings.TrimSpace(string(out)) != "none" {
		t.Fatalf("agent must never be forwarded: SSH_AUTH_SOCK on server = %q, %v", out, err)
	}
	// The encrypted key file named, no passphrase: its agent copy is used.
	o.Identity = s.KeyFile
	dial(t, s.Target(), o)
}

func writeAskpass(t *testing.T, pass string) string {
	p := filepath.Join(t.TempDir(), "askpass")
	if err := os.WriteFile(p, []byte("#!/bin/sh\nprintf '%s\\n' "+sshx.Quote(pass)+"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSSHConfigAlias(t *testing.T) {
	s := sshtest.Start(t, sshtest.Options{})
	home := t.TempDir()
	t.Setenv("HOME", home)
	if err := os.MkdirAll(filepath.Join(home, "keys"), 0o700); err != nil {
		t.Fatal(err)
	}
	keyBytes, _ := os.ReadFile(s.KeyFile)
	if err := os.WriteFile(filepath.Join(home, "keys", "deploy"), keyBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(home, "ssh_config")
	writeFile(t, cfg, fmt.Sprintf(`
Host prod-web
    HostName 127.0.0.1
    Port %d
    User %s
    IdentityFile ~/keys/deploy
    UserKnownHostsFile ~/kh/%%h_known

Host wrongport
    HostName 127.0.0.1
    Port 1
    User %s
    IdentityFile ~/keys/deploy
    UserKnownHostsFile ~/kh/%%h_known

Host tofu-*
    HostName 127.0.0.1
    Port %d
    IdentityFile ~/keys/deploy
    UserKnownHostsFile ~/kh/tofu
    StrictHostKeyChecking accept-new

Host *
    User nobody-such
`, s.Port, s.User, s.User, s.Port))
	writeFile(t, filepath.Join(home, "kh", "127.0.0.1_known"), s.KnownHostsLine(sshtest.ECDSA, false)+"\n")

	o := sshx.Options{ConfigFile: cfg, ConnectTimeout: 10 * time.Second}
	c := dial(t, "prod-web", o)
	if c.Name() != "prod-web" {
		t.Errorf("Name = %q", c.Name())
	}
	if got := c.Target(); got.Host != "127.0.0.1" || got.Port != s.Port || got.User != s.User {
		t.Errorf("resolved %+v", got)
	}
	out, err := c.Output(context.Background(), "id -un", nil)
	if err != nil || strings.TrimSpace(string(out)) != s.User {
		t.Fatalf("id -un = %q, %v", out, err)
	}
	// The flag's port overrides the config's.
	dial(t, "wrongport:"+strconv.Itoa(s.Port), o)
	// The flag's user overrides the config's (Host * says nobody-such).
	dial(t, s.User+"@tofu-1", o)
	// StrictHostKeyChecking accept-new in config acts as --accept-new.
	b, err := os.ReadFile(filepath.Join(home, "kh", "tofu"))
	if err != nil || !strings.Contains(string(b), "[127.0.0.1]:"+strconv.Itoa(s.Port)+" ssh-ed25519 ") {
		t.Fatalf("accept-new from config did not record the key: %q %v", b, err)
	}
	// Host * applies where nothing more specific set User.
	_, err = sshx.Dial(context.Background(), "tofu-2", o)
	if !errors.Is(err, sshx.ErrAuth) || !strings.Contains(err.Error(), "nobody-such") {
		t.Fatalf("want auth failure as nobody-such, got %v", err)
	}
}

func TestProxyJump(t *testing.T) {
	target := sshtest.Start(t, sshtest.Options{})
	bastion := sshtest.Start(t, sshtest.Options{HostKeyTypes: []string{sshtest.ECDSA, sshtest.Ed25519}})
	home := t.TempDir()
	t.Setenv("HOME", home)
	known := sshtest.WriteKnownHosts(t,
		target.KnownHostsLine(sshtest.RSA, false),
		bastion.KnownHostsLine(sshtest.Ed25519, true))
	cfg := filepath.Join(home, "config")
	writeFile(t, cfg, fmt.Sprintf(`
Host app
    HostName 127.0.0.1
    Port %d
    User %s
    IdentityFile %s
    ProxyJump bastion

Host bastion
    HostName 127.0.0.1
    Port %d
    User %s
    IdentityFile %s
`, target.Port, target.User, target.KeyFile, bastion.Port, bastion.User, bastion.KeyFile))

	o := sshx.Options{ConfigFile: cfg, KnownHosts: known, ConnectTimeout: 10 * time.Second}
	c := dial(t, "app", o)
	if out, err := c.Output(context.Background(), "echo via-bastion", nil); err != nil || string(out) != "via-bastion\n" {
		t.Fatalf("%q %v", out, err)
	}
	if c.Handshakes() != 2 {
		t.Fatalf("Handshakes = %d, want 2", c.Handshakes())
	}
	if !strings.Contains(bastion.Log(), "Accepted publickey") {
		t.Fatalf("bastion saw no login:\n%s", bastion.Log())
	}

	// --jump on the command line, bastion named by address; --identity is
	// offered to both hops (the bastion also trusts the target's client key).
	bastion2 := sshtest.Start(t, sshtest.Options{AuthorizedKeys: []ssh.PublicKey{target.ClientPublic}})
	o2 := sshx.Options{ConfigFile: "none", Identity: target.KeyFile, ConnectTimeout: 10 * time.Second,
		Jump:       bastion2.Target(),
		KnownHosts: sshtest.WriteKnownHosts(t, target.KnownHostsLine(sshtest.Ed25519, false), bastion2.KnownHostsLine(sshtest.ECDSA, false))}
	c2 := dial(t, target.Target(), o2)
	if c2.Handshakes() != 2 {
		t.Fatalf("Handshakes = %d, want 2", c2.Handshakes())
	}

	// The bastion's own key is verified: unknown bastion, refused.
	o2.KnownHosts = sshtest.WriteKnownHosts(t, target.KnownHostsLine(sshtest.Ed25519, false))
	_, err := sshx.Dial(context.Background(), target.Target(), o2)
	var hk *sshx.HostKeyError
	if !errors.As(err, &hk) || hk.Problem != sshx.HostUnknown || hk.Host != "[127.0.0.1]:"+strconv.Itoa(bastion2.Port) {
		t.Fatalf("want the bastion's key refused, got %v", err)
	}
	if !strings.Contains(err.Error(), "jump host") {
		t.Errorf("error should say it was the jump host: %v", err)
	}
	// --host-key pins the target only; the bastion still goes by known_hosts.
	o2.HostKey = target.HostKeys[sshtest.Ed25519].Fingerprint
	if _, err := sshx.Dial(context.Background(), target.Target(), o2); !errors.As(err, &hk) || hk.Problem != sshx.HostUnknown {
		t.Fatalf("pin must not cover the bastion: %v", err)
	}
}

func TestSilentServerTimesOut(t *testing.T) {
	addr := sshtest.SilentListener(t)
	o := sshx.Options{ConfigFile: "none", Identity: writeKey(t), KnownHosts: filepath.Join(t.TempDir(), "kh"), ConnectTimeout: 300 * time.Millisecond}
	_, err := sshx.Dial(context.Background(), "root@"+addr, o)
	if !errors.Is(err, sshx.ErrConnectTimeout) || !strings.Contains(err.Error(), "SSH handshake") {
		t.Fatalf("want handshake timeout, got %v", err)
	}
	// Cancellation ends a hanging handshake too.
	o.ConnectTimeout = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(200 * time.Millisecond); cancel() }()
	_, err = sshx.Dial(ctx, "root@"+addr, o)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
}

func TestKeepaliveDetectsDeadPeer(t *testing.T) {
	s := sshtest.Start(t, sshtest.Options{})
	p := sshtest.NewProxy(t, s.Addr)
	o := baseOpts(s, nil)
	o.KnownHosts = sshtest.WriteKnownHosts(t, knownhosts.Line([]string{p.Addr}, s.HostKeys[sshtest.Ed25519].Public))
	// Wide enough that a live but loaded sshd (CI runs deploy tests on the
	// same two cores) is never taken for dead; a frozen one is still found in
	// seconds, far inside the 30 s hang bound below.
	o.KeepaliveInterval = time.Second
	o.KeepaliveCount = 3
	c := dial(t, "root@"+p.Addr, o)

	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := c.Run(context.Background(), "echo started; sleep 60", nil, pw, nil)
		pw.CloseWithError(fmt.Errorf("run returned: %w", err))
		done <- err
	}()
	if line, err := bufio.NewReader(pr).ReadString('\n'); err != nil || line != "started\n" {
		t.Fatalf("read %q, %v", line, err)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	p.Freeze() // the peer vanishes without a FIN
	select {
	case err := <-done:
		if !errors.Is(err, sshx.ErrConnectionLost) || !strings.Contains(err.Error(), "keepalive") {
			t.Fatalf("want connection lost via keepalive, got %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run hung on a dead peer")
	}
	if _, err := c.Output(context.Background(), "true", nil); !errors.Is(err, sshx.ErrConnectionLost) {
		t.Fatalf("later Run: want ErrConnectionLost, got %v", err)
	}
	if !errors.Is(c.Err(), sshx.ErrConnectionLost) {
		t.Fatalf("Err() = %v", c.Err())
	}
}

// A peer that goes silent after the handshake: opening a session, and an
// upload in flight, both end with ErrConnectionLost instead of blocking.
func TestFrozenPeerSessionAndUpload(t *testing.T) {
	s := sshtest.Start(t, sshtest.Options{})
	connect := func() (*sshx.Conn, *sshtest.Proxy) {
		p := sshtest.NewProxy(t, s.Addr)
		o := baseOpts(s, nil)
		o.HostKey = s.HostKeys[sshtest.Ed25519].Fingerprint
		o.KeepaliveInterval = time.Second // see TestKeepaliveDetectsDeadPeer
		o.KeepaliveCount = 3
		return dial(t, "root@"+p.Addr, o), p
	}
	t.Run("new session", func(t *testing.T) {
		c, p := connect()
		p.Freeze()
		if _, err := c.Output(context.Background(), "true", nil); !errors.Is(err, sshx.ErrConnectionLost) {
			t.Fatalf("want ErrConnectionLost, got %v", err)
		}
		if _, err := c.DialContext(context.Background(), "tcp", "127.0.0.1:1"); !errors.Is(err, sshx.ErrConnectionLost) {
			t.Fatalf("DialContext on a dead conn: want ErrConnectionLost, got %v", err)
		}
	})
	t.Run("upload", func(t *testing.T) {
		c, p := connect()
		pr, pw := io.Pipe()
		done := make(chan error, 1)
		go func() {
			err := c.Run(context.Background(), "echo ready; cat > /dev/null", endless{}, pw, nil)
			pw.CloseWithError(fmt.Errorf("run returned: %w", err))
			done <- err
		}()
		if _, err := bufio.NewReader(pr).ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		go func() { _, _ = io.Copy(io.Discard, pr) }()
		p.Freeze()
		select {
		case err := <-done:
			if !errors.Is(err, sshx.ErrConnectionLost) {
				t.Fatalf("want ErrConnectionLost, got %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("upload hung on a dead peer")
		}
	})
}

// endless is an infinite stdin.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

func TestCutConnectionFailsRun(t *testing.T) {
	s := sshtest.Start(t, sshtest.Options{})
	p := sshtest.NewProxy(t, s.Addr)
	o := baseOpts(s, nil)
	o.HostKey = s.HostKeys[sshtest.Ed25519].Fingerprint
	c := dial(t, "root@"+p.Addr, o)
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := c.Run(context.Background(), "echo started; sleep 60", nil, pw, nil)
		pw.CloseWithError(fmt.Errorf("run returned: %w", err))
		done <- err
	}()
	if _, err := bufio.NewReader(pr).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	p.Cut()
	select {
	case err := <-done:
		if !errors.Is(err, sshx.ErrConnectionLost) {
			t.Fatalf("want ErrConnectionLost, got %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run hung on a cut connection")
	}
}

// Cancelling ctx ends the remote command: sshd delivers TERM to the session's
// process group for an unprivileged login; for root logins (no privilege
// separation, so sshd ignores signal requests) the closed channel ends a
// command at its next write.
func TestCancelKillsRemoteCommand(t *testing.T) {
	t.Run("signal", func(t *testing.T) {
		if _, err := user.Lookup("deploy"); err != nil || os.Geteuid() != 0 {
			t.Skip("needs root and a 'deploy' user (test/scripts/services.sh up creates it)")
		}
		s := sshtest.Start(t, sshtest.Options{User: "deploy"})
		cancelAndWait(t, s, "echo $$; exec sleep 120")
	})
	t.Run("closed channel", func(t *testing.T) {
		s := sshtest.Start(t, sshtest.Options{})
		cancelAndWait(t, s, "echo $$; while :; do echo tick; sleep 0.1; done")
	})
}

func cancelAndWait(t *testing.T, s *sshtest.Server, cmd string) {
	c := dial(t, s.Target(), baseOpts(s, nil))
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := c.Run(ctx, cmd, nil, pw, nil)
		pw.CloseWithError(fmt.Errorf("run returned: %w", err))
		done <- err
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("pid %q: %v", line, err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
	// sshd runs on this machine, so the remote process is visible here.
	for i := 0; ; i++ {
		if syscall.Kill(pid, 0) != nil {
			break
		}
		if i == 500 {
			t.Fatalf("remote process %d still running 10s after cancel", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The connection stays usable.
	if _, err := c.Output(context.Background(), "true", nil); err != nil {
		t.Fatal(err)
	}
}

func TestDialContextLoopbackHTTP(t *testing.T) {
	s := sshtest.Start(t, sshtest.Options{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "smoke %s", r.URL.Path)
	}))
	defer srv.Close()
	c := dial(t, s.Target(), baseOpts(s, nil))
	client := &http.Client{Transport: &http.Transport{DialContext: c.DialContext}}
	resp, err := client.Get(srv.URL + "/health")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "smoke /health" {
		t.Fatalf("body %q", body)
	}
	if _, err := c.DialContext(context.Background(), "tcp", "127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("want a refused connection naming the address, got %v", err)
	}
	if c.Handshakes() != 1 {
		t.Fatalf("Handshakes = %d", c.Handshakes())
	}
}

func TestBadTargetIsUsageError(t *testing.T) {
	for _, bad := range []string{"", "host:0", "host:99999", "user@", "[::1", "-oProxyCommand=x", "a b"} {
		_, err := sshx.Dial(context.Background(), bad, sshx.Options{ConfigFile: "none"})
		if exit.Code(err) != exit.Usage {
			t.Errorf("Dial(%q): want exit 2, got %v (code %d)", bad, err, exit.Code(err))
		}
	}
}

func writeKey(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "id")
	if _, err := sshtest.GenerateKey(p, sshtest.Ed25519, ""); err != nil {
		t.Fatal(err)
	}
	return p
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestMaxStartupsDropIsRetried: sshd closes new connections before its
// banner while MaxStartups unauthenticated ones are pending (what many
// deploys to one server at once meet). Dial tries again with backoff and
// connects once a slot frees.
func TestMaxStartupsDropIsRetried(t *testing.T) {
	s := sshtest.Start(t, sshtest.Options{ExtraConfig: []string{"MaxStartups 1", "LoginGraceTime 30"}})
	hog := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		// It holds the one unauthenticated slot once sshd has sent it a banner.
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err != nil {
			t.Fatalf("hog connection: %v", err)
		}
		return c
	}

	h := hog()
	go func() {
		time.Sleep(700 * time.Millisecond)
		h.Close()
	}()
	o := baseOpts(s, nil)
	o.ConnectTimeout = 20 * time.Second
	c := dial(t, s.Target(), o)
	if out, err := c.Output(context.Background(), "echo ok", nil); err != nil || string(out) != "ok\n" {
		t.Fatalf("%q %v", out, err)
	}
	if !strings.Contains(s.Log(), "past MaxStartups") {
		t.Errorf("sshd dropped no connection, so nothing was retried:\n%s", s.Log())
	}
}

// The caller names the target in its error (deploy prefixes the host), so
// sshx's own errors about the target must not name it again.
func TestTargetErrorsDoNotRepeatTheHost(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := l.Addr().String()
	l.Close() // a port nothing listens on
	key := writeKey(t)
	_, err = sshx.Dial(context.Background(), target, sshx.Options{ConfigFile: "none", Identity: key, KnownHosts: filepath.Join(t.TempDir(), "kh")})
	if err == nil || !strings.HasPrefix(err.Error(), "connecting: ") || strings.Contains(err.Error(), target) {
		t.Fatalf("want an error starting \"connecting: \" that does not name %s, got %v", target, err)
	}
	_, err = sshx.Dial(context.Background(), target, sshx.Options{ConfigFile: "none", Identity: key, Jump: target, KnownHosts: filepath.Join(t.TempDir(), "kh")})
	if err == nil || !strings.Contains(err.Error(), "jump host") {
		t.Fatalf("a jump host's error must name the jump host, got %v", err)
	}
}
