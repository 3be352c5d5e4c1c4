package sshx

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kevinburke/ssh_config"

	"github.com/slipway-dev/slipway/tools/internal/exit"
)

// hop is one SSH server on the way to the target, fully resolved.
type hop struct {
	name    string // as the user named it (target or jump spec), for messages
	target  bool   // the last hop: callers already name it in their errors
	alias   string // the host part used to match ssh config Host patterns
	host    string // HostName: what is actually dialled
	port    int
	user    string
	keys    []keyFile // identity files to offer, in order
	keyHint string    // where keys came from, for auth errors

	knownHosts   []string // known_hosts files to read (missing ones are skipped)
	writeKnown   string   // file --accept-new appends to ("" when UserKnownHostsFile none)
	acceptNew    bool
	hostKeyAlias string
	pin          string // SHA256:... (target only)

	connectTimeout    time.Duration
	keepaliveInterval time.Duration
	keepaliveCount    int
}

type keyFile struct {
	path     string
	explicit bool // from --identity or IdentityFile: an encrypted key without passphrase is an error
}

// addr is host:port as dialled.
func (h *hop) addr() string { return joinHostPort(h.host, h.port) }

// checkAddr is host:port as looked up in known_hosts: HostKeyAlias (port
// ignored, as ssh does) or HostName with the port.
func (h *hop) checkAddr() string {
	if h.hostKeyAlias != "" {
		return joinHostPort(h.hostKeyAlias, 22)
	}
	return h.addr()
}

func (h *hop) String() string {
	s := h.user + "@" + h.addr()
	name := strings.TrimPrefix(h.name, "jump host ")
	if name == "" || name == s || name == h.user+"@"+h.host {
		return strings.TrimSuffix(h.name, name) + s
	}
	return h.name + " (" + s + ")"
}

// connecting starts this hop's connection errors. The target is named by every
// caller (deploy prefixes the host), so its errors add only what the caller's
// name does not say: the address ssh config resolved it to. A jump host is
// always named.
func (h *hop) connecting() string {
	if h.target && (strings.Contains(h.name, h.host) || h.name == "") {
		return "connecting"
	}
	return "connecting to " + h.String()
}

// sshConfig is the user's ssh config, then (only when the default file is
// used, as `ssh` without -F does) the system one; the first value found wins.
type sshConfig struct {
	files []*ssh_config.Config
	names []string
}

func loadSSHConfig(path string) (*sshConfig, error) {
	c := &sshConfig{}
	if path == "none" {
		return c, nil
	}
	var paths []string
	explicit := path != ""
	if explicit {
		paths = []string{expandHome(path)}
	} else {
		if home := homeDir(); home != "" {
			paths = append(paths, filepath.Join(home, ".ssh", "config"))
		}
		paths = append(paths, "/etc/ssh/ssh_config")
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) && !explicit {
				continue
			}
			return nil, exit.Usagef("reading ssh config %s: %v", p, err)
		}
		cfg, err := decodeSSHConfig(b)
		if err != nil {
			return nil, exit.Usagef("parsing ssh config %s: %v (fix the file, or pass a different one)", p, err)
		}
		c.files = append(c.files, cfg)
		c.names = append(c.names, p)
	}
	return c, nil
}

// decodeSSHConfig guards against the parser panicking on odd input: a broken
// config is bad input, not a crash.
func decodeSSHConfig(b []byte) (cfg *ssh_config.Config, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	return ssh_config.DecodeBytes(b)
}

func (c *sshConfig) get(alias, key string) string {
	for _, f := range c.files {
		if v, err := f.Get(alias, key); err == nil && v != "" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func (c *sshConfig) getAll(alias, key string) []string {
	var all []string
	for _, f := range c.files {
		if v, err := f.GetAll(alias, key); err == nil {
			for _, s := range v {
				if s = strings.TrimSpace(s); s != "" {
					all = append(all, s)
				}
			}
		}
	}
	return all
}

const maxJumpDepth = 8

// resolveRoute returns the hops to reach spec: jump hosts first, the target last.
// jump overrides the target's ProxyJump from ssh config ("none" disables it).
// A chain a,b means: reach b through a, then the target through b; a's own
// ProxyJump (from ssh config) is honoured too, as ssh -J does.
func resolveRoute(cfg *sshConfig, spec, jump string, opts *Options, isTarget bool, depth int) ([]*hop, error) {
	if depth > maxJumpDepth {
		return nil, exit.Usagef("ProxyJump chain for %s is longer than %d hops (a loop in ssh config?)", spec, maxJumpDepth)
	}
	h, cfgJump, err := resolveHop(cfg, spec, opts, isTarget)
	if err != nil {
		return nil, err
	}
	if jump == "" {
		jump = cfgJump
	}
	if jump == "" || strings.EqualFold(jump, "none") {
		return []*hop{h}, nil
	}
	parts := strings.Split(jump, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
		if parts[i] == "" {
			return nil, exit.Usagef("jump host list %q for %s has an empty entry", jump, spec)
		}
	}
	last := parts[len(parts)-1]
	// With rest empty, the hop's own ssh config ProxyJump applies.
	rest := strings.Join(parts[:len(parts)-1], ",")
	prefix, err := resolveRoute(cfg, last, rest, opts, false, depth+1)
	if err != nil {
		return nil, fmt.Errorf("jump host %s: %w", last, err)
	}
	return append(prefix, h), nil
}

// resolveHop applies ssh config to one [user@]host[:port] spec, flags first.
func resolveHop(cfg *sshConfig, spec string, opts *Options, isTarget bool) (*hop, string, error) {
	t, err := ParseTarget(spec)
	if err != nil {
		return nil, "", err
	}
	alias := t.Host
	h := &hop{name: t.Alias, alias: alias, target: isTarget}
	if !isTarget {
		h.name = "jump host " + t.Alias
	}

	h.host = alias
	if v := cfg.get(alias, "HostName"); v != "" {
		h.host = expandTokens(v, map[byte]string{'h': alias})
	}
	h.port = t.Port
	if h.port == 0 {
		if v := cfg.get(alias, "Port"); v != "" {
			p, perr := parsePort(v)
			if perr != "" {
				return nil, "", exit.Usagef("ssh config %s: Port for %s: %s", cfg.where(), alias, perr)
			}
			h.port = p
		} else {
			h.port = 22
		}
	}
	h.user = t.User
	if h.user == "" {
		h.user = cfg.get(alias, "User")
	}
	if h.user == "" {
		h.user = localUser()
	}
	if h.user == "" {
		return nil, "", exit.Usagef("no user for %s: write user@%s or set User in ssh config", t.Alias, t.Host)
	}

	tokens := map[byte]string{'h': h.host, 'n': alias, 'r': h.user, 'p': strconv.Itoa(h.port), 'u': localUser(), 'd': homeDir()}

	// Identities: --identity first (offered to jump hosts too: ssh users
	// expect one deploy key to open the bastion), then IdentityFile, else the
	// default key files.
	if opts.Identity != "" {
		h.keys = append(h.keys, keyFile{path: expandHome(opts.Identity), explicit: true})
		h.keyHint = "--identity " + opts.Identity
	}
	ids := cfg.getAll(alias, "IdentityFile")
	for _, id := range ids {
		if strings.EqualFold(id, "none") {
			continue
		}
		h.keys = append(h.keys, keyFile{path: expandTokens(id, tokens), explicit: true})
	}
	if len(ids) > 0 {
		h.keyHint = strings.TrimPrefix(h.keyHint+", IdentityFile in ssh config", ", ")
	}
	if len(h.keys) == 0 {
		if home := homeDir(); home != "" {
			for _, n := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
				h.keys = append(h.keys, keyFile{path: filepath.Join(home, ".ssh", n)})
			}
		}
		h.keyHint = "default keys in ~/.ssh"
	}

	// known_hosts: --known-hosts, else UserKnownHostsFile, else ~/.ssh/known_hosts;
	// the global file is read too unless --known-hosts names the only one.
	switch {
	case opts.KnownHosts != "":
		h.knownHosts = []string{expandHome(opts.KnownHosts)}
		h.writeKnown = h.knownHosts[0]
	default:
		files := strings.Fields(cfg.get(alias, "UserKnownHostsFile"))
		if len(files) == 1 && strings.EqualFold(files[0], "none") {
			files = nil
		} else if len(files) == 0 {
			if home := homeDir(); home != "" {
				files = []string{filepath.Join(home, ".ssh", "known_hosts")}
			}
		}
		for i := range files {
			files[i] = expandTokens(files[i], tokens)
		}
		if len(files) > 0 {
			h.writeKnown = files[0]
		}
		global := strings.Fields(cfg.get(alias, "GlobalKnownHostsFile"))
		if len(global) == 0 {
			global = []string{"/etc/ssh/ssh_known_hosts"}
		}
		for _, g := range global {
			if !strings.EqualFold(g, "none") {
				files = append(files, expandTokens(g, tokens))
			}
		}
		h.knownHosts = files
	}

	h.acceptNew = opts.AcceptNew
	switch strings.ToLower(cfg.get(alias, "StrictHostKeyChecking")) {
	case "accept-new":
		h.acceptNew = true
	case "no", "off":
		// ssh would also accept a changed key; slipway only ever trusts
		// on first use, and still refuses a changed key.
		h.acceptNew = true
	}
	h.hostKeyAlias = cfg.get(alias, "HostKeyAlias")
	if isTarget && opts.HostKey != "" {
		pin, err := normalizePin(opts.HostKey)
		if err != nil {
			return nil, "", err
		}
		h.pin = pin
	}

	h.connectTimeout = opts.ConnectTimeout
	if h.connectTimeout == 0 {
		h.connectTimeout = cfgSeconds(cfg, alias, "ConnectTimeout", DefaultConnectTimeout)
	}
	h.keepaliveInterval = opts.KeepaliveInterval
	if h.keepaliveInterval == 0 {
		h.keepaliveInterval = cfgSeconds(cfg, alias, "ServerAliveInterval", DefaultKeepaliveInterval)
	}
	h.keepaliveCount = opts.KeepaliveCount
	if h.keepaliveCount <= 0 {
		h.keepaliveCount = DefaultKeepaliveCount
		if v, err := strconv.Atoi(cfg.get(alias, "ServerAliveCountMax")); err == nil && v > 0 {
			h.keepaliveCount = v
		}
	}

	jump := cfg.get(alias, "ProxyJump")
	if jump == "" && isTarget && opts.Jump == "" {
		if pc := cfg.get(alias, "ProxyCommand"); pc != "" && !strings.EqualFold(pc, "none") {
			return nil, "", exit.Usagef("ssh config %s: ProxyCommand for %s is not supported by slipway; use ProxyJump (or --jump) instead", cfg.where(), alias)
		}
	}
	return h, jump, nil
}

func (c *sshConfig) where() string {
	if len(c.names) == 0 {
		return "(none)"
	}
	return c.names[0]
}

// cfgSeconds reads a positive number of seconds; 0 or junk keep the default
// (slipway always wants a bound, unlike ssh whose default is none).
func cfgSeconds(cfg *sshConfig, alias, key string, def time.Duration) time.Duration {
	if v, err := strconv.Atoi(cfg.get(alias, key)); err == nil && v > 0 {
		return time.Duration(v) * time.Second
	}
	return def
}

// expandTokens expands ~, ${VAR} and the ssh_config %-tokens slipway knows.
func expandTokens(s string, tokens map[byte]string) string {
	s = expandHome(s)
	if strings.Contains(s, "${") {
		s = os.Expand(s, os.Getenv)
	}
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		if s[i] == '%' {
			b.WriteByte('%')
		} else if v, ok := tokens[s[i]]; ok {
			b.WriteString(v)
		} else {
			b.WriteByte('%')
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

func expandHome(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home := homeDir(); home != "" {
			return filepath.Join(home, p[1:])
		}
	}
	return p
}

func homeDir() string {
	if h, err := os.UserHomeDir(); err == nil {
		return h
	}
	if u, err := user.Current(); err == nil {
		return u.HomeDir
	}
	return ""
}

func localUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return os.Getenv("USER")
}
