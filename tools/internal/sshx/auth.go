package sshx

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/progress"
)

// agentConn is the ssh-agent from SSH_AUTH_SOCK, used for signing during
// handshakes only: slipway never requests agent forwarding.
type agentConn struct {
	conn   net.Conn
	client agent.ExtendedAgent
	keys   []*agent.Key
}

func openAgent(log *progress.Logger) *agentConn {
	sock := os.Getenv("SSH_AUTH_SOCK")
	if sock == "" {
		return nil
	}
	c, err := net.Dial("unix", sock)
	if err != nil {
		log.Warnf("ssh-agent at SSH_AUTH_SOCK=%s is not reachable (%v); using key files only", sock, err)
		return nil
	}
	a := &agentConn{conn: c, client: agent.NewClient(c)}
	if keys, err := a.client.List(); err == nil {
		a.keys = keys
	}
	return a
}

func (a *agentConn) close() {
	if a != nil {
		a.conn.Close()
	}
}

func (a *agentConn) has(pub ssh.PublicKey) bool {
	if a == nil || pub == nil {
		return false
	}
	for _, k := range a.keys {
		if bytes.Equal(k.Marshal(), pub.Marshal()) {
			return true
		}
	}
	return false
}

// authFor loads the hop's identity files and returns the auth method plus a
// description of what is offered, for the error when the server refuses all.
// An encrypted key without SLIPWAY_SSH_PASSPHRASE (and not in the agent) is an
// error now, before any connection: never a prompt, never a hang.
func authFor(h *hop, ag *agentConn) (ssh.AuthMethod, []string, error) {
	var signers []ssh.Signer
	var offered []string
	for _, kf := range h.keys {
		s, note, err := loadKey(kf, ag)
		if err != nil {
			return nil, nil, err
		}
		if s != nil {
			signers = append(signers, s)
			offered = append(offered, kf.path)
		} else if note != "" {
			offered = append(offered, note)
		}
	}
	if ag != nil {
		offered = append(offered, fmt.Sprintf("%d key(s) from ssh-agent", len(ag.keys)))
	}
	if len(signers) == 0 && ag == nil {
		who := "no SSH key"
		if !h.target {
			who += " for " + h.name
		}
		return nil, nil, fmt.Errorf("%s: %s gave none usable (%s) and SSH_AUTH_SOCK is unset; pass --identity FILE or start ssh-agent: %w",
			who, h.keyHint, strings.Join(offered, "; "), ErrAuth)
	}
	method := ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
		all := append([]ssh.Signer(nil), signers...)
		if ag != nil {
			if as, err := ag.client.Signers(); err == nil {
				all = append(all, as...)
			}
		}
		return all, nil
	})
	return method, offered, nil
}

// loadKey returns a signer, or nil and a note when the file is to be skipped.
func loadKey(kf keyFile, ag *agentConn) (ssh.Signer, string, error) {
	b, err := os.ReadFile(kf.path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			if kf.explicit {
				return nil, kf.path + " (missing)", nil
			}
			return nil, "", nil
		}
		return nil, "", exit.Usagef("reading SSH key %s: %v", kf.path, err)
	}
	s, err := ssh.ParsePrivateKey(b)
	if err == nil {
		return s, "", nil
	}
	var missing *ssh.PassphraseMissingError
	if !errors.As(err, &missing) {
		return nil, "", exit.Usagef("SSH key %s is not a private key slipway can read: %v", kf.path, err)
	}
	// An empty value counts as unset: CI systems often export unset secrets as "".
	if pass := os.Getenv(PassphraseEnv); pass != "" {
		s, err := ssh.ParsePrivateKeyWithPassphrase(b, []byte(pass))
		if err != nil {
			return nil, "", fmt.Errorf("decrypting SSH key %s with %s: %v; check the passphrase: %w", kf.path, PassphraseEnv, err, ErrPassphrase)
		}
		return s, "", nil
	}
	pub := missing.PublicKey
	if pub == nil {
		if pb, err := os.ReadFile(kf.path + ".pub"); err == nil {
			pub, _, _, _, _ = ssh.ParseAuthorizedKey(pb)
		}
	}
	if ag.has(pub) {
		return nil, kf.path + " (encrypted, using its ssh-agent copy)", nil
	}
	if !kf.explicit {
		return nil, kf.path + " (encrypted; set " + PassphraseEnv + ")", nil
	}
	return nil, "", fmt.Errorf("SSH key %s is encrypted: set %s to its passphrase (environment only, never a flag), or add the key to ssh-agent: %w", kf.path, PassphraseEnv, ErrPassphrase)
}
