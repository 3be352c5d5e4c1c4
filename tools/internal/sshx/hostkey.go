package sshx

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"
	xknownhosts "golang.org/x/crypto/ssh/knownhosts"

	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/progress"
)

// preferredHostKeyAlgos is OpenSSH's client order, used when known_hosts says
// nothing about a host (first contact, or a --host-key pin), so the key we
// report and pin is the one `ssh` would show.
var preferredHostKeyAlgos = []string{
	ssh.KeyAlgoED25519,
	ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
	ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256,
}

// hostKeyChecker verifies one hop's host key.
type hostKeyChecker struct {
	hop   *hop
	db    *knownhosts.HostKeyDB // nil when no known_hosts file exists
	read  []string              // the files db was built from
	log   *progress.Logger
	err   *HostKeyError // set when the callback refused the key
	added string        // line appended under --accept-new
}

func newHostKeyChecker(h *hop, log *progress.Logger) (*hostKeyChecker, error) {
	k := &hostKeyChecker{hop: h, log: log}
	if h.pin != "" {
		return k, nil // the pin overrides known_hosts
	}
	for _, f := range h.knownHosts {
		st, err := os.Stat(f)
		if err != nil || st.IsDir() {
			continue // ssh treats a missing known_hosts as empty
		}
		k.read = append(k.read, f)
	}
	if len(k.read) > 0 {
		db, err := knownhosts.NewDB(k.read...)
		if err != nil {
			return nil, exit.Usagef("reading known_hosts (%s): %v; fix or remove the bad lines", strings.Join(k.read, ", "), err)
		}
		k.db = db
	}
	return k, nil
}

// algorithms are the host key algorithms to offer: exactly the types
// known_hosts holds for this host (golang/go#29286: otherwise a server with
// several key types may present one we do not know and look "changed"), an
// ssh-rsa entry mapping to rsa-sha2-512/256.
func (k *hostKeyChecker) algorithms() []string {
	if k.db != nil && k.hop.pin == "" {
		if algos := k.db.HostKeyAlgorithms(k.hop.checkAddr()); len(algos) > 0 {
			return algos
		}
	}
	return preferredHostKeyAlgos
}

// knownName is the host as known_hosts writes it: host, or [host]:port.
func (k *hostKeyChecker) knownName() string { return knownhosts.Normalize(k.hop.checkAddr()) }

func (k *hostKeyChecker) callback(_ string, remote net.Addr, key ssh.PublicKey) error {
	err := k.check(remote, key)
	var hk *HostKeyError
	if errors.As(err, &hk) {
		k.err = hk
	}
	return err
}

func (k *hostKeyChecker) check(remote net.Addr, key ssh.PublicKey) error {
	h := k.hop
	fp := ssh.FingerprintSHA256(key)
	base := HostKeyError{
		Host:        k.knownName(),
		Target:      h.name,
		KeyType:     key.Type(),
		Fingerprint: fp,
		Line:        knownhosts.Line([]string{h.checkAddr()}, key),
		KnownHosts:  h.writeKnown,
	}
	if h.pin != "" {
		if fp == h.pin {
			return nil
		}
		e := base
		e.Problem = HostKeyPinMismatch
		e.Want = []string{h.pin + " (--host-key)"}
		return &e
	}
	if k.db == nil {
		return k.unknown(base, key)
	}
	err := k.db.HostKeyCallback()(h.checkAddr(), remote, key)
	if err == nil {
		return nil
	}
	var revoked *xknownhosts.RevokedError
	if errors.As(err, &revoked) {
		e := base
		e.Problem = HostKeyRevoked
		e.Want = []string{fmt.Sprintf("%s:%d", revoked.Revoked.Filename, revoked.Revoked.Line)}
		return &e
	}
	var ke *xknownhosts.KeyError
	if errors.As(err, &ke) {
		if len(ke.Want) == 0 {
			return k.unknown(base, key)
		}
		e := base
		e.Problem = HostKeyChanged
		for _, w := range ke.Want {
			e.Want = append(e.Want, fmt.Sprintf("%s (%s) at %s:%d", ssh.FingerprintSHA256(w.Key), w.Key.Type(), w.Filename, w.Line))
		}
		if len(k.read) > 0 {
			e.KnownHosts = ke.Want[0].Filename
		}
		return &e
	}
	return fmt.Errorf("checking host key of %s against known_hosts: %w", h.name, err)
}

// knownHostsMu serialises appends from parallel Dials in this process.
var knownHostsMu sync.Mutex

func (k *hostKeyChecker) unknown(base HostKeyError, key ssh.PublicKey) error {
	e := base
	e.Problem = HostUnknown
	e.Searched = k.hop.knownHosts
	if !k.hop.acceptNew {
		return &e
	}
	if k.hop.writeKnown == "" {
		e.Note = "--accept-new cannot record the key: UserKnownHostsFile is none; pass --known-hosts FILE"
		return &e
	}
	if err := appendKnownHost(k.hop.writeKnown, base.Line); err != nil {
		e.Note = fmt.Sprintf("--accept-new could not record the key: %v", err)
		return &e
	}
	k.added = base.Line
	k.log.Warnf("%s: trusting new host key %s %s on first use (--accept-new); added %s to %s",
		k.hop.name, key.Type(), base.Fingerprint, base.Host, k.hop.writeKnown)
	return nil
}

func appendKnownHost(file, line string) error {
	knownHostsMu.Lock()
	defer knownHostsMu.Unlock()
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	// One write with O_APPEND: concurrent writers (other slipway processes,
	// ssh itself) never interleave inside a line.
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	prefix := ""
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		// Do not glue our line to a last line missing its newline.
		b := make([]byte, 1)
		if r, err := os.Open(file); err == nil {
			if _, err := r.ReadAt(b, st.Size()-1); err == nil && b[0] != '\n' {
				prefix = "\n"
			}
			r.Close()
		}
	}
	if _, err := f.WriteString(prefix + line + "\n"); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// normalizePin accepts SHA256:<base64>, with or without the prefix and padding.
func normalizePin(s string) (string, error) {
	p := strings.TrimSpace(s)
	p = strings.TrimPrefix(p, "SHA256:")
	p = strings.TrimRight(p, "=")
	if b, err := base64.RawStdEncoding.DecodeString(p); err != nil || len(b) != sha256.Size {
		return "", exit.Usagef("--host-key %q is not a SHA256 fingerprint: want SHA256: followed by 43 base64 characters, as printed by `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the server", s)
	}
	return "SHA256:" + p, nil
}

func (e *HostKeyError) message() string {
	var b strings.Builder
	who := e.Host
	if e.Target != "" && e.Target != e.Host {
		who = e.Target + " (" + e.Host + ")"
	}
	jump := strings.HasPrefix(e.Target, "jump host ")
	switch e.Problem {
	case HostKeyChanged:
		fmt.Fprintf(&b, "@@@ HOST KEY CHANGED for %s @@@\n", who)
		fmt.Fprintf(&b, "The server presented %s key %s, but known_hosts holds %s.\n", e.KeyType, e.Fingerprint, strings.Join(e.Want, "; "))
		b.WriteString("Someone could be intercepting the connection (man-in-the-middle), or the server was reinstalled. Do not deploy until the new fingerprint is confirmed by the server's administrator.\n")
		fmt.Fprintf(&b, "If the change is expected, remove the old entry with\n  ssh-keygen -R %s -f %s\nand connect again with --accept-new, or add this line:\n  %s", shellWord(e.Host), shellWord(e.KnownHosts), e.Line)
	case HostKeyPinMismatch:
		fmt.Fprintf(&b, "host key of %s does not match --host-key: the server presented %s key %s, expected %s. Check the fingerprint on the server (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub); if the server has several keys, pin the %s one", who, e.KeyType, e.Fingerprint, strings.Join(e.Want, ", "), e.KeyType)
	case HostKeyRevoked:
		fmt.Fprintf(&b, "host key of %s (%s %s) is marked @revoked in %s: refusing to connect", who, e.KeyType, e.Fingerprint, strings.Join(e.Want, ", "))
	default:
		where := e.KnownHosts
		if len(e.Searched) > 0 {
			where = strings.Join(e.Searched, ", ")
		}
		fmt.Fprintf(&b, "host key of %s is unknown (not in %s): the server presented %s key %s.\n", who, where, e.KeyType, e.Fingerprint)
		if e.Note != "" {
			b.WriteString(e.Note + ".\n")
		}
		fmt.Fprintf(&b, "If that fingerprint is the server's (check with `ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub` on it), add this line to %s:\n  %s\n", orDefault(e.KnownHosts, "your known_hosts file"), e.Line)
		if jump {
			b.WriteString("or trust it on first use with --accept-new (--host-key pins the target only)")
		} else {
			fmt.Fprintf(&b, "or pin it with --host-key %s, or trust it on first use with --accept-new", e.Fingerprint)
		}
	}
	return b.String()
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// shellWord quotes s for a command line shown to the user.
func shellWord(s string) string { return Quote(s) }
