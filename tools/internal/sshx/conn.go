package sshx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/slipway-dev/slipway/tools/internal/progress"
)

// Conn is one authenticated SSH connection (through zero or more jump hosts).
// It is safe for concurrent use; sessions beyond Options.MaxSessions wait.
type Conn struct {
	name       string
	target     Target // resolved user, host, port of the final hop
	handshakes int

	clients []*ssh.Client // jump hosts first, the target last
	client  *ssh.Client
	slots   chan struct{}

	reads *atomic.Int64 // read calls with data on the target's transport

	mu      sync.Mutex
	closed  bool
	lostErr error         // why the connection died, when it was not Close
	done    chan struct{} // closed when the transport is gone
}

// Dial resolves target through ssh config, connects (via jump hosts if any),
// verifies the host key(s) and authenticates. Errors say what to do next:
// bad input (target, --host-key, ssh config) exits 2, everything else 1.
func Dial(ctx context.Context, target string, opts Options) (*Conn, error) {
	if opts.Log == nil {
		opts.Log = progress.Discard()
	}
	if opts.MaxSessions <= 0 {
		opts.MaxSessions = DefaultMaxSessions
	}
	cfg, err := loadSSHConfig(opts.ConfigFile)
	if err != nil {
		return nil, err
	}
	route, err := resolveRoute(cfg, target, opts.Jump, &opts, true, 0)
	if err != nil {
		return nil, err
	}
	last := route[len(route)-1]

	// Everything that can be wrong locally (keys, passphrases, known_hosts
	// files) fails before the first packet.
	ag := openAgent(opts.Log)
	defer ag.close()
	type prepared struct {
		auth    ssh.AuthMethod
		offered []string
		hk      *hostKeyChecker
	}
	preps := make([]prepared, len(route))
	for i, h := range route {
		auth, offered, err := authFor(h, ag)
		if err != nil {
			return nil, err
		}
		hk, err := newHostKeyChecker(h, opts.Log)
		if err != nil {
			return nil, err
		}
		preps[i] = prepared{auth, offered, hk}
	}

	c := &Conn{
		name:   last.name,
		target: Target{Alias: last.name, User: last.user, Host: last.host, Port: last.port},
		slots:  make(chan struct{}, opts.MaxSessions),
		done:   make(chan struct{}),
	}
	var prev *ssh.Client
	for i, h := range route {
		p := preps[i]
		reads := new(atomic.Int64)
		client, err := c.dialHop(ctx, prev, h, p.auth, p.offered, p.hk, reads)
		if err != nil {
			c.closeClients()
			// A jump hop's error names that hop; the caller names the target.
			return nil, err
		}
		c.clients = append(c.clients, client)
		c.reads = reads
		prev = client
	}
	c.client = prev
	via := ""
	if len(route) > 1 {
		var hops []string
		for _, h := range route[:len(route)-1] {
			hops = append(hops, h.user+"@"+h.addr())
		}
		via = " via " + strings.Join(hops, ", ")
	}
	opts.Log.Printf("ssh: connected as %s to %s%s", last.user, last.addr(), via)
	go c.watch()
	if last.keepaliveInterval > 0 {
		go c.keepalive(last.keepaliveInterval, last.keepaliveCount)
	}
	return c, nil
}

// dialHop makes the TCP connection (directly, or as a direct-tcpip channel
// through prev) and the SSH handshake, both within the hop's connect timeout.
func (c *Conn) dialHop(ctx context.Context, prev *ssh.Client, h *hop, auth ssh.AuthMethod, offered []string, hk *hostKeyChecker, reads *atomic.Int64) (*ssh.Client, error) {
	dctx, cancel := context.WithTimeout(ctx, h.connectTimeout)
	defer cancel()
	timeoutErr := func(stage string) error {
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", h.connecting(), ctx.Err())
		}
		return fmt.Errorf("%s: %s did not finish within %s (is sshd listening there and answering? raise ConnectTimeout in ssh config if the link is slow): %w",
			h.connecting(), stage, h.connectTimeout, ErrConnectTimeout)
	}

	// sshd closes new connections before its banner while MaxStartups
	// unauthenticated ones are pending (10 by default): many deploys to one
	// server at once meet that. Such a connection is tried again, with
	// backoff, within the hop's connect timeout.
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		client, dropped, err := c.dialHopOnce(dctx, prev, h, auth, offered, hk, reads, timeoutErr)
		if !dropped {
			return client, err
		}
		wait := backoff + time.Duration(rand.Int64N(int64(backoff)))
		if d, ok := dctx.Deadline(); ok && time.Until(d) < wait+100*time.Millisecond {
			return nil, fmt.Errorf("%s: the server closed the connection before its SSH banner %d times (sshd drops new connections while too many are unauthenticated: raise MaxStartups in its sshd_config, or lower --parallel): %w", h.connecting(), attempt, err)
		}
		select {
		case <-dctx.Done():
			return nil, timeoutErr("SSH handshake")
		case <-time.After(wait):
		}
		if backoff < time.Second {
			backoff *= 2
		}
	}
}

// dialHopOnce is one attempt of dialHop; dropped reports a connection the
// server closed before sending anything (worth another attempt).
func (c *Conn) dialHopOnce(dctx context.Context, prev *ssh.Client, h *hop, auth ssh.AuthMethod, offered []string, hk *hostKeyChecker, reads *atomic.Int64, timeoutErr func(string) error) (*ssh.Client, bool, error) {
	var raw net.Conn
	var err error
	if prev == nil {
		var d net.Dialer
		raw, err = d.DialContext(dctx, "tcp", h.addr())
	} else {
		raw, err = prev.DialContext(dctx, "tcp", h.addr())
	}
	if err != nil {
		if dctx.Err() != nil {
			return nil, false, timeoutErr("TCP connect")
		}
		if prev != nil {
			return nil, false, fmt.Errorf("%s: the jump host could not open a connection to %s: %w", h.connecting(), h.addr(), err)
		}
		// net's "dial tcp host:port: " would name the host a second time.
		var op *net.OpError
		if errors.As(err, &op) && op.Err != nil {
			err = op.Err
		}
		return nil, false, fmt.Errorf("%s: %w (check the host name and port, and that sshd runs there)", h.connecting(), err)
	}

	// Deadlines do not work on channel conns, so the bound is enforced by
	// closing the conn, which makes the handshake return.
	stop := context.AfterFunc(dctx, func() { raw.Close() })
	kexed := false // the server got as far as showing its host key
	config := &ssh.ClientConfig{
		User: h.user,
		Auth: []ssh.AuthMethod{auth},
		HostKeyCallback: func(host string, remote net.Addr, key ssh.PublicKey) error {
			kexed = true
			return hk.callback(host, remote, key)
		},
		HostKeyAlgorithms: hk.algorithms(),
		ClientVersion:     "SSH-2.0-slipway",
	}
	cc, chans, reqs, err := ssh.NewClientConn(activityConn{raw, reads}, h.checkAddr(), config)
	if !stop() {
		// The timer fired (or ctx ended): whatever the handshake returned,
		// the conn is closed now.
		if cc != nil {
			cc.Close()
		}
		return nil, false, timeoutErr("SSH handshake")
	}
	if err != nil {
		raw.Close()
		if hk.err != nil {
			return nil, false, fmt.Errorf("%s: %w", h.connecting(), hk.err)
		}
		if !kexed && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
			return nil, true, err
		}
		if strings.Contains(err.Error(), "unable to authenticate") {
			return nil, false, fmt.Errorf("%s: the server refused every key offered as %q (%s); check the user name and that one of these public keys is in ~%s/.ssh/authorized_keys on the server: %w",
				h.connecting(), h.user, strings.Join(offered, ", "), h.user, ErrAuth)
		}
		return nil, false, fmt.Errorf("%s: %w", h.connecting(), err)
	}
	c.handshakes++
	return ssh.NewClient(cc, chans, reqs), false, nil
}

// watch notices the transport going away for any reason.
func (c *Conn) watch() {
	err := c.client.Wait()
	c.mu.Lock()
	if !c.closed && c.lostErr == nil {
		if err == nil {
			err = io.EOF
		}
		c.lostErr = fmt.Errorf("connection to %s closed: %v: %w", c.name, err, ErrConnectionLost)
	}
	c.mu.Unlock()
	close(c.done)
	c.closeClients()
}

// keepalive works as OpenSSH's ServerAliveInterval/CountMax: after an
// interval in which nothing arrived from the server it sends
// keepalive@openssh.com; count silent intervals in a row close the
// connection, which fails every session in use. Any packet received (a
// reply, output, window adjustments during an upload) proves the peer alive,
// so a busy link is never mistaken for a dead one.
func (c *Conn) keepalive(interval time.Duration, count int) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var pending chan error
	seen := c.reads.Load()
	missed := 0
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		if now := c.reads.Load(); now != seen {
			seen, missed = now, 0
			continue
		}
		if missed >= count {
			c.lose(fmt.Errorf("no reply from %s to %d keepalives (%s of silence): the peer or the network is dead: %w",
				c.name, count, time.Duration(count+1)*interval, ErrConnectionLost))
			return
		}
		missed++
		if pending != nil {
			select {
			case <-pending:
				pending = nil
			default:
				continue // one request in flight at a time
			}
		}
		pending = make(chan error, 1)
		go func(ch chan error) {
			_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
			ch <- err
		}(pending)
	}
}

// activityConn records when bytes last arrived, for keepalive.
type activityConn struct {
	net.Conn
	lastRead *atomic.Int64
}

func (a activityConn) Read(p []byte) (int, error) {
	n, err := a.Conn.Read(p)
	if n > 0 {
		a.lastRead.Add(1)
	}
	return n, err
}

func (c *Conn) lose(err error) {
	c.mu.Lock()
	if c.lostErr == nil && !c.closed {
		c.lostErr = err
	}
	c.mu.Unlock()
	c.closeClients()
}

// closeClients tears the transports down, target first; errors are moot here.
func (c *Conn) closeClients() {
	for i := len(c.clients) - 1; i >= 0; i-- {
		_ = c.clients[i].Close()
	}
}

// lost returns why the connection died, or nil while it is alive.
func (c *Conn) lost() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lostErr
}

// Err reports why the connection died (wrapping ErrConnectionLost), or nil
// while it is usable.
func (c *Conn) Err() error { return c.lost() }

func (c *Conn) acquire(ctx context.Context) error {
	select {
	case c.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.done:
		if err := c.lost(); err != nil {
			return err
		}
		return fmt.Errorf("connection to %s is closed", c.name)
	}
}

func (c *Conn) release() { <-c.slots }

// Run runs cmd through the remote user's shell. stdin may be nil; stdout and
// stderr may be nil (discarded). A non-zero exit is an *ExitError carrying the
// tail of stderr. Cancelling ctx signals the remote process (TERM) and closes
// the session. A dead connection is an error wrapping ErrConnectionLost.
func (c *Conn) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	if err := c.acquire(ctx); err != nil {
		return fmt.Errorf("running %q on %s: %w", abbreviate(cmd, 80), c.name, err)
	}
	defer c.release()
	err := c.run(ctx, cmd, stdin, stdout, stderr)
	if err == nil {
		return nil
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return err
	}
	return fmt.Errorf("running %q on %s: %w", abbreviate(cmd, 80), c.name, err)
}

func (c *Conn) run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	sess, err := c.client.NewSession()
	if err != nil {
		if lost := c.lost(); lost != nil {
			return lost
		}
		return fmt.Errorf("opening a session: %w", err)
	}
	defer sess.Close()

	tail := &tailBuffer{max: 4096}
	if stdout == nil {
		stdout = io.Discard
	}
	sess.Stdout = stdout
	if stderr == nil {
		sess.Stderr = tail
	} else {
		sess.Stderr = io.MultiWriter(tail, stderr)
	}
	// Stdin is copied by us, not by Session, so that Wait does not wait for a
	// reader the remote command never drains; a read error aborts the command
	// (the remote must not take a truncated upload for a complete one).
	stdinErr := make(chan error, 1)
	var w io.WriteCloser
	if stdin != nil {
		if w, err = sess.StdinPipe(); err != nil {
			return fmt.Errorf("opening stdin: %w", err)
		}
	}
	if err := sess.Start(cmd); err != nil {
		if lost := c.lost(); lost != nil {
			return lost
		}
		return fmt.Errorf("starting: %w", err)
	}
	if stdin != nil {
		go func() {
			_, err := io.Copy(w, readErrOnly{stdin, &stdinErr})
			_ = err // write errors: the remote stopped reading, its exit status tells
			w.Close()
		}()
	}
	waited := make(chan error, 1)
	go func() { waited <- sess.Wait() }()

	select {
	case err = <-waited:
	case err = <-stdinErr:
		_ = sess.Signal(ssh.SIGKILL)
		sess.Close()
		return fmt.Errorf("reading the input for the remote command: %w (the remote command was killed)", err)
	case <-ctx.Done():
		_ = sess.Signal(ssh.SIGTERM)
		sess.Close()
		select {
		case <-waited:
		case <-time.After(2 * time.Second):
		}
		return ctx.Err()
	}
	if err == nil {
		return nil
	}
	var exitErr *ssh.ExitError
	if errors.As(err, &exitErr) {
		return &ExitError{Cmd: cmd, Code: exitErr.ExitStatus(), Signal: exitErr.Signal(), Stderr: tail.String()}
	}
	if lost := c.lost(); lost != nil {
		return lost
	}
	var missing *ssh.ExitMissingError
	if errors.As(err, &missing) {
		// The channel closed without an exit status; the transport may be
		// dying: give watch a moment to say why.
		select {
		case <-c.done:
			if lost := c.lost(); lost != nil {
				return lost
			}
		case <-time.After(100 * time.Millisecond):
		}
		return fmt.Errorf("the remote command ended without an exit status (connection dropped?): %w", ErrConnectionLost)
	}
	return err
}

// readErrOnly passes reads through and reports a reader failure (not EOF) on ch.
type readErrOnly struct {
	r  io.Reader
	ch *chan error
}

func (r readErrOnly) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		select {
		case *r.ch <- err:
		default:
		}
	}
	return n, err
}

// Output runs cmd and returns its stdout; see Run for errors.
func (c *Conn) Output(ctx context.Context, cmd string, stdin io.Reader) ([]byte, error) {
	var out bytes.Buffer
	err := c.Run(ctx, cmd, stdin, &out, nil)
	return out.Bytes(), err
}

// DialContext opens a connection from the server to addr (direct-tcpip for
// "tcp", direct-streamlocal for "unix"), e.g. a smoke URL on the server's
// loopback. It does not use a session slot. The returned conn does not
// support deadlines.
func (c *Conn) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if err := c.lost(); err != nil {
		return nil, err
	}
	conn, err := c.client.DialContext(ctx, network, addr)
	if err != nil {
		if lost := c.lost(); lost != nil {
			return nil, lost
		}
		return nil, fmt.Errorf("opening %s connection to %s from %s: %w", network, addr, c.name, err)
	}
	return conn, nil
}

// Handshakes is the number of SSH handshakes made for this Conn: 1, plus one per jump host.
func (c *Conn) Handshakes() int { return c.handshakes }

// Name is the host as the user named it, for log prefixes.
func (c *Conn) Name() string { return c.name }

// Target is the final hop as resolved through ssh config (user, HostName, port).
func (c *Conn) Target() Target { return c.target }

// Close closes the connection and any jump-host connections under it.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	var first error
	for i := len(c.clients) - 1; i >= 0; i-- {
		if err := c.clients[i].Close(); err != nil && first == nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "closed") {
			first = err
		}
	}
	return first
}

// tailBuffer keeps the last max bytes written.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
