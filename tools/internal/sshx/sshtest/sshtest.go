// Package sshtest runs a real OpenSSH sshd on 127.0.0.1 for tests, with its
// own host keys, authorized_keys and a generated client key, plus small TCP
// fault injectors (a proxy that freezes or cuts, a listener that never
// speaks). Tests that need sshd skip when it is missing, and fail instead when
// CI=true or SLIPWAY_REQUIRE_SERVICES=1.
package sshtest

import (
	"bufio"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"fmt"
	"net"
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

	"github.com/slipway-dev/slipway/tools/internal/testenv"
)

// SSHD is the daemon binary; sshd insists on an absolute path (it re-executes itself).
const SSHD = "/usr/sbin/sshd"

// Key types accepted in Options.HostKeyTypes and Options.ClientKeyType.
const (
	Ed25519 = "ed25519"
	ECDSA   = "ecdsa"
	RSA     = "rsa"
)

// Options for Start. The zero value is a server for the current user with
// ed25519, ecdsa and rsa host keys and an unencrypted ed25519 client key.
type Options struct {
	User          string   // login user (must exist, account not locked); default the current user
	HostKeyTypes  []string // host keys to generate; default ed25519, ecdsa, rsa
	ClientKeyType string   // default ed25519
	Passphrase    string   // encrypt the client key file with this passphrase
	ExtraConfig   []string // extra sshd_config lines (they override the defaults)
	// AuthorizedKeys are accepted besides the generated client key (e.g.
	// another Server's ClientPublic, so one key opens a bastion and a target).
	AuthorizedKeys []ssh.PublicKey
}

// HostKey is one of the server's host keys.
type HostKey struct {
	Type        string // "ed25519", "ecdsa" or "rsa"
	Path        string // private key file given to sshd
	Public      ssh.PublicKey
	Fingerprint string // SHA256:...
}

// Server is a running sshd.
type Server struct {
	Addr         string // "127.0.0.1:<port>"
	Host         string // "127.0.0.1"
	Port         int
	User         string
	Dir          string             // scratch directory holding keys, config and logs
	KeyFile      string             // the client private key (encrypted when Options.Passphrase is set)
	ClientPublic ssh.PublicKey      // its public key, in authorized_keys
	KnownHosts   string             // known_hosts file trusting every host key of this server
	HostKeys     map[string]HostKey // by type: "ed25519", "ecdsa", "rsa"

	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	stop    sync.Once
}

// Require skips (or fails under CI=true / SLIPWAY_REQUIRE_SERVICES=1) when
// sshd cannot run here.
func Require(t testing.TB) {
	t.Helper()
	if err := available(); err != nil {
		if testenv.Required() {
			t.Fatalf("sshd needed: %v (install openssh-server)", err)
		}
		t.Skipf("sshd not available: %v (install openssh-server)", err)
	}
}

func available() error {
	if _, err := os.Stat(SSHD); err != nil {
		return err
	}
	return nil
}

// Start runs sshd on 127.0.0.1 at a free port; it stops when the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	Require(t)
	me, err := user.Current()
	if err != nil {
		t.Fatalf("sshtest: current user: %v", err)
	}
	if opts.User == "" {
		opts.User = me.Username
	}
	if opts.User != me.Username && os.Geteuid() != 0 {
		t.Fatalf("sshtest: logging in as %q needs sshd running as root (running as %s)", opts.User, me.Username)
	}
	if len(opts.HostKeyTypes) == 0 {
		opts.HostKeyTypes = []string{Ed25519, ECDSA, RSA}
	}
	if opts.ClientKeyType == "" {
		opts.ClientKeyType = Ed25519
	}
	if os.Geteuid() == 0 {
		// sshd's privilege separation directory (absent until the service ran once).
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatalf("sshtest: %v", err)
		}
	}

	// Not t.TempDir: a non-current login user must be able to read
	// authorized_keys, and TempDir's parents are 0700.
	dir, err := os.MkdirTemp("", "sshtest-")
	if err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("sshtest: %v", err)
	}

	s := &Server{Host: "127.0.0.1", User: opts.User, Dir: dir, HostKeys: map[string]HostKey{}}
	for _, typ := range opts.HostKeyTypes {
		path := filepath.Join(dir, "ssh_host_"+typ+"_key")
		pub, err := GenerateKey(path, typ, "")
		if err != nil {
			t.Fatalf("sshtest: host key: %v", err)
		}
		s.HostKeys[typ] = HostKey{Type: typ, Path: path, Public: pub, Fingerprint: ssh.FingerprintSHA256(pub)}
	}
	s.KeyFile = filepath.Join(dir, "client_key")
	s.ClientPublic, err = GenerateKey(s.KeyFile, opts.ClientKeyType, opts.Passphrase)
	if err != nil {
		t.Fatalf("sshtest: client key: %v", err)
	}
	authKeys := filepath.Join(dir, "authorized_keys")
	ak := ssh.MarshalAuthorizedKey(s.ClientPublic)
	for _, k := range opts.AuthorizedKeys {
		ak = append(ak, ssh.MarshalAuthorizedKey(k)...)
	}
	if err := os.WriteFile(authKeys, ak, 0o644); err != nil {
		t.Fatalf("sshtest: %v", err)
	}

	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("sshtest: %v", err)
		}
		if lastErr = s.start(port, authKeys, opts); lastErr == nil {
			break
		}
		if !strings.Contains(lastErr.Error(), "Address already in use") {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("sshtest: starting sshd: %v", lastErr)
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("sshd %s log:\n%s", s.Addr, s.Log())
		}
	})

	var lines []string
	for _, typ := range opts.HostKeyTypes {
		lines = append(lines, s.KnownHostsLine(typ, false))
	}
	s.KnownHosts = filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(s.KnownHosts, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	return s
}

func (s *Server) start(port int, authKeys string, opts Options) error {
	s.Port = port
	s.Addr = net.JoinHostPort(s.Host, strconv.Itoa(port))
	cfg := []string{
		"ListenAddress " + s.Addr,
		"PidFile " + filepath.Join(s.Dir, "sshd.pid"),
		"AuthorizedKeysFile " + authKeys,
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"UsePAM no",
		"StrictModes no",
		"PermitRootLogin prohibit-password",
		"AllowUsers " + opts.User,
		"AllowTcpForwarding yes",
		"AllowStreamLocalForwarding yes",
		"AllowAgentForwarding yes", // so a test can prove the client never asks
		"PrintMotd no",
		"MaxStartups 100",
		"LogLevel VERBOSE",
		"Subsystem sftp /usr/lib/openssh/sftp-server",
	}
	for _, typ := range opts.HostKeyTypes {
		cfg = append(cfg, "HostKey "+s.HostKeys[typ].Path)
	}
	// An extra line replaces the default with its keyword (sshd keeps the
	// first value of most keywords but the last of some, MaxStartups one).
	extra := map[string]bool{}
	for _, l := range opts.ExtraConfig {
		extra[strings.ToLower(strings.Fields(l + " x")[0])] = true
	}
	kept := cfg[:0]
	for _, l := range cfg {
		if !extra[strings.ToLower(strings.Fields(l)[0])] {
			kept = append(kept, l)
		}
	}
	cfg = append(kept, opts.ExtraConfig...)
	cfgPath := filepath.Join(s.Dir, "sshd_config")
	if err := os.WriteFile(cfgPath, []byte(strings.Join(cfg, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	// A file, not a pipe: connection processes forked by sshd inherit it,
	// and a pipe would keep Wait from returning while any of them lives.
	s.logPath = filepath.Join(s.Dir, "sshd.log")
	logf, err := os.Create(s.logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	s.cmd = exec.Command(SSHD, "-D", "-e", "-f", cfgPath)
	s.cmd.Stdout = logf
	s.cmd.Stderr = logf
	// Its own process group, so Stop ends the per-connection processes too.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		return err
	}
	s.done = make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(s.done) }()

	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return fmt.Errorf("sshd exited: %s", s.Log())
		default:
		}
		if banner(s.Addr) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.kill()
	return fmt.Errorf("sshd on %s did not answer within 15s: %s", s.Addr, s.Log())
}

// banner reports whether an SSH server greets on addr.
func banner(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "SSH-2.0-")
}

func (s *Server) kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		// The group holds the listener and its per-connection children
		// (user commands run in their own sessions and get EOF/SIGPIPE).
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
}

// Stop kills sshd and its per-connection processes, as a crashed server
// would: open connections drop.
func (s *Server) Stop() { s.stop.Do(s.kill) }

// Log is what sshd wrote so far (LogLevel VERBOSE).
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

// Target is "user@127.0.0.1:port".
func (s *Server) Target() string { return s.User + "@" + s.Addr }

// KnownHostsLine is the known_hosts line for one host key type, under
// [127.0.0.1]:port, optionally with the host name hashed (HashKnownHosts).
func (s *Server) KnownHostsLine(keyType string, hashed bool) string {
	hk, ok := s.HostKeys[keyType]
	if !ok {
		panic("sshtest: server has no " + keyType + " host key")
	}
	name := knownhosts.Normalize(s.Addr)
	if hashed {
		name = knownhosts.HashHostname(name)
	}
	return knownhosts.Line([]string{name}, hk.Public)
}

// WriteKnownHosts writes lines to a new file in the test's temp dir and returns its path.
func WriteKnownHosts(t testing.TB, lines ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// GenerateKey writes a new OpenSSH private key of type typ to path (mode
// 0600, encrypted when passphrase is set) and its .pub beside it.
func GenerateKey(path, typ, passphrase string) (ssh.PublicKey, error) {
	var priv crypto.Signer
	var err error
	switch typ {
	case Ed25519:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case ECDSA:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case RSA:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		return nil, fmt.Errorf("unknown key type %q (want ed25519, ecdsa or rsa)", typ)
	}
	if err != nil {
		return nil, err
	}
	var block *pem.Block
	if passphrase != "" {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "sshtest", []byte(passphrase))
	} else {
		block, err = ssh.MarshalPrivateKey(priv, "sshtest")
	}
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	pub, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path+".pub", ssh.MarshalAuthorizedKey(pub), 0o644); err != nil {
		return nil, err
	}
	return pub, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
