// Package sshx is the SSH layer slipway deploys through: one TCP connection and
// one handshake per host (plus one per jump host), many sessions over it,
// strict host-key checking against known_hosts (or a pinned fingerprint),
// ssh-agent and key-file auth, ~/.ssh/config resolution as `ssh alias` does,
// bounded connect/handshake time and keepalives so a dead peer is an error,
// never a hang.
package sshx

import (
	"errors"
	"fmt"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/progress"
)

// PassphraseEnv names the environment variable holding the passphrase of an
// encrypted identity file (secrets never come from argv).
const PassphraseEnv = "SLIPWAY_SSH_PASSPHRASE"

// Defaults used when neither Options nor ssh config set a value.
const (
	DefaultConnectTimeout    = 15 * time.Second
	DefaultKeepaliveInterval = 15 * time.Second
	DefaultKeepaliveCount    = 3
	// DefaultMaxSessions stays below sshd's MaxSessions default (10) so that
	// callers running commands in parallel never see "open failed".
	DefaultMaxSessions = 8
)

// Options configure Dial. Zero values mean "ssh config, then the default".
// Flags (these fields) override ssh config.
type Options struct {
	Identity          string        // --identity key file; passphrase from env SLIPWAY_SSH_PASSPHRASE
	KnownHosts        string        // --known-hosts (default ~/.ssh/known_hosts, or ssh config UserKnownHostsFile)
	HostKey           string        // --host-key SHA256:... pin for the target (overrides known_hosts)
	AcceptNew         bool          // --accept-new: trust on first use (target and jump hosts), append to known_hosts; a changed key is still refused
	Jump              string        // --jump [user@]host[:port][,more...]; "none" disables config ProxyJump
	ConfigFile        string        // ssh config (default ~/.ssh/config; "none" disables)
	ConnectTimeout    time.Duration // default 15s, TCP connect + handshake, per hop
	KeepaliveInterval time.Duration // default 15s; negative disables keepalives
	KeepaliveCount    int           // default 3 missed replies, then the connection is closed
	MaxSessions       int           // concurrent sessions per Conn, default 8 (sshd allows 10)
	Log               *progress.Logger
}

// Target is a host as the user gave it: [user@]host[:port]. Port 0 and User ""
// mean "not given" (ssh config, then defaults, decide).
type Target struct {
	Alias string // the text as given, for log prefixes and messages
	User  string
	Host  string // a name (maybe an ssh config alias) or an IP address, without brackets
	Port  int
}

// String renders t back as [user@]host[:port], bracketing IPv6 addresses.
func (t Target) String() string {
	s := t.Host
	if t.Port != 0 {
		s = joinHostPort(t.Host, t.Port)
	} else if isIPv6(t.Host) {
		s = "[" + t.Host + "]"
	}
	if t.User != "" {
		s = t.User + "@" + s
	}
	return s
}

// Sentinel errors, for errors.Is.
var (
	// ErrConnectTimeout: TCP connect or the SSH handshake did not finish in ConnectTimeout.
	ErrConnectTimeout = errors.New("ssh connect timed out")
	// ErrConnectionLost: keepalives went unanswered (or the transport broke) while in use.
	ErrConnectionLost = errors.New("ssh connection lost")
	// ErrAuth: the server refused every key offered.
	ErrAuth = errors.New("ssh authentication failed")
	// ErrPassphrase: an identity file is encrypted and SLIPWAY_SSH_PASSPHRASE is unset or wrong.
	ErrPassphrase = errors.New("ssh key passphrase missing or wrong")
)

// HostKeyProblem says why a host key was refused.
type HostKeyProblem int

const (
	HostUnknown        HostKeyProblem = iota + 1 // no known_hosts entry for the host
	HostKeyChanged                               // known_hosts holds a different key of that type
	HostKeyPinMismatch                           // --host-key does not match what the server presented
	HostKeyRevoked                               // known_hosts marks the key @revoked
)

// HostKeyError is returned (wrapped) by Dial when a host key is not trusted.
// Its message carries what to do next: the line to add, or the ssh-keygen -R
// command, and the --accept-new / --host-key alternatives.
type HostKeyError struct {
	Problem     HostKeyProblem
	Host        string   // the name checked, as known_hosts stores it: host or [host]:port
	Target      string   // the host as the user named it
	KeyType     string   // the server's key type
	Fingerprint string   // SHA256:... of the key the server presented
	Line        string   // the known_hosts line that would trust it
	KnownHosts  string   // the known_hosts file consulted (first one)
	Want        []string // for HostKeyChanged/PinMismatch: the expected fingerprint(s), with file:line
	Searched    []string // known_hosts files consulted
	Note        string   // extra context (e.g. why --accept-new could not record the key)
}

func (e *HostKeyError) Error() string { return e.message() }

// ExitError is a remote command that ran and exited non-zero (or by a signal).
type ExitError struct {
	Cmd    string // the command line run, for context
	Code   int    // exit status; 128+n when killed by signal n (as a shell reports it)
	Signal string // e.g. "KILL" when the remote process died by a signal
	Stderr string // the last few KiB of its stderr
}

func (e *ExitError) Error() string {
	what := fmt.Sprintf("exit status %d", e.Code)
	if e.Signal != "" {
		what = "killed by signal " + e.Signal
	}
	msg := fmt.Sprintf("remote command %q: %s", abbreviate(e.Cmd, 120), what)
	if e.Stderr != "" {
		msg += ": " + lastLines(e.Stderr, 5)
	}
	return msg
}
