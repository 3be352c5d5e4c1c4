package deploy

import (
	"bufio"
	"context"
	"io"
	"os"
	"strings"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/grace"

	"github.com/slipway-dev/slipway/tools/internal/deploy/remote"
	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/progress"
	"github.com/slipway-dev/slipway/tools/internal/sshx"
)

// Conn is one SSH connection to a host, as the deploy uses it.
type Conn interface {
	remote.Conn
	Handshakes() int
	Close() error
}

// DialFunc opens the one connection to a host.
type DialFunc func(ctx context.Context, target string, opts sshx.Options) (Conn, error)

// SSHDial is the real DialFunc: sshx.Dial.
func SSHDial(ctx context.Context, target string, opts sshx.Options) (Conn, error) {
	c, err := sshx.Dial(ctx, target, opts)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Target says where to deploy: the hosts, the directory on them and how to
// connect. Every command of this package takes one.
type Target struct {
	Hosts     []string // [user@]host[:port] or ssh config aliases
	HostsFile string   // one host per line, # comments
	Dir       string   // deploy directory on the hosts
	SSH       sshx.Options
	// Dial connects to a host; nil means sshx.Dial. Tests inject a fake.
	Dial DialFunc
}

// hostList returns the hosts from --host and --hosts-file, validated.
func (t *Target) hostList() ([]string, error) {
	hosts := append([]string(nil), t.Hosts...)
	if t.HostsFile != "" {
		f, err := os.Open(t.HostsFile)
		if err != nil {
			return nil, exit.Usagef("--hosts-file: %v", err)
		}
		defer f.Close()
		more, err := readHostsFile(f, t.HostsFile)
		if err != nil {
			return nil, err
		}
		hosts = append(hosts, more...)
	}
	if len(hosts) == 0 {
		return nil, exit.Usagef("no hosts: give --host [user@]host[:port] (repeatable) or --hosts-file FILE")
	}
	seen := map[string]bool{}
	for _, h := range hosts {
		if _, err := sshx.ParseTarget(h); err != nil {
			return nil, err
		}
		if seen[h] {
			return nil, exit.Usagef("host %q is given twice", h)
		}
		seen[h] = true
	}
	if strings.TrimSpace(t.Dir) == "" {
		return nil, exit.Usagef("--dir is required: the deploy directory on the hosts, e.g. --dir /srv/shop")
	}
	return hosts, nil
}

func readHostsFile(r io.Reader, name string) ([]string, error) {
	var hosts []string
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if strings.ContainsAny(line, " \t") {
			return nil, exit.Usagef("--hosts-file %s line %d: %q: one host per line", name, n, line)
		}
		hosts = append(hosts, line)
	}
	if err := sc.Err(); err != nil {
		return nil, exit.Usagef("--hosts-file %s: %v", name, err)
	}
	return hosts, nil
}

// conn is a connected host with its remote operations.
type conn struct {
	name string
	c    Conn
	h    *remote.Host
	log  *progress.Logger
}

func (t *Target) dial(ctx context.Context, host string, log *progress.Logger) (*conn, error) {
	dial := t.Dial
	if dial == nil {
		dial = SSHDial
	}
	opts := t.SSH
	if opts.Log == nil {
		opts.Log = log
	}
	c, err := dial(ctx, host, opts)
	if err != nil {
		// Every caller names the host (its logger or the per-host error);
		// sshx's error says "connecting" and what went wrong.
		return nil, err
	}
	return &conn{name: host, c: c, log: log, h: &remote.Host{Name: host, Conn: c, Dir: t.Dir, Log: log}}, nil
}

// cleanupContext is a context for cleanup that still runs after ctx was
// cancelled, bounded by d and, after a signal, by the grace (grace.Cleanup).
func cleanupContext(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return grace.Cleanup(ctx, d)
}
