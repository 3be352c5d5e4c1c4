package engine

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/client"
)

// DefaultSocket is where a server's Docker Engine listens unless told otherwise.
const DefaultSocket = "/var/run/docker.sock"

// SSHConn is what reaching a server's engine needs of an SSH connection:
// stream-local channels and, for the fallback, a command session.
// *sshx.Conn implements it.
type SSHConn interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
	Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error
}

// Transport names how an engine over SSH is reached.
type Transport string

// The two ways: a direct-streamlocal channel to the engine's socket (sshd
// allows it by default), or `docker system dial-stdio` in a session (what
// DOCKER_HOST=ssh:// does; needs the docker CLI on the server).
const (
	StreamLocal Transport = "stream-local"
	DialStdio   Transport = "dial-stdio"
)

// dialStdioConns bounds the fallback's engine connections: each holds one of
// the SSH connection's command sessions for as long as it lives.
const dialStdioConns = 2

// pingTimeout bounds the first request to an engine reached over SSH.
const pingTimeout = 30 * time.Second

// OverSSH connects to the Docker Engine of the server at the other end of
// conn, through its socket (DefaultSocket when empty), and says how. The
// server needs sshd and Docker Engine; no Compose and, with stream-local
// forwarding allowed, no docker CLI.
func OverSSH(ctx context.Context, conn SSHConn, socket string) (*Client, Transport, error) {
	if socket == "" {
		socket = DefaultSocket
	}
	streamDial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		return conn.DialContext(ctx, "unix", socket)
	}
	c, serr := newRemote(ctx, streamDial, nil)
	if serr == nil {
		return c, StreamLocal, nil
	}
	if ctx.Err() != nil {
		return nil, "", serr
	}
	var lastStdio *stdioConn
	var mu sync.Mutex
	stdioDial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		c := dialStdio(conn, socket)
		mu.Lock()
		lastStdio = c
		mu.Unlock()
		return c, nil
	}
	c, derr := newRemote(ctx, stdioDial, &http.Transport{MaxConnsPerHost: dialStdioConns, IdleConnTimeout: 30 * time.Second})
	if derr == nil {
		return c, DialStdio, nil
	}
	mu.Lock()
	if lastStdio != nil {
		// The remote command's own words (e.g. "docker: not found") say more
		// than the client's "cannot connect".
		if e := lastStdio.exitErr(); e != nil && e != io.EOF {
			derr = e
		}
	}
	mu.Unlock()
	return nil, "", fmt.Errorf("reaching the Docker Engine at %s: stream-local forwarding: %v; `docker system dial-stdio`: %v; %s",
		socket, serr, derr, advice(ctx, conn, socket))
}

func newRemote(ctx context.Context, dial func(context.Context, string, string) (net.Conn, error), tr *http.Transport) (*Client, error) {
	opts := []client.Opt{client.WithHost("http://docker"), client.WithAPIVersionNegotiation()}
	if tr != nil {
		tr.DialContext = dial
		opts = append(opts, client.WithHTTPClient(&http.Client{Transport: tr}))
	} else {
		opts = append(opts, client.WithDialContext(dial))
	}
	api, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, err
	}
	// Bounded: an engine (or a dial-stdio) that accepts and never answers
	// must not hold the deploy.
	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	if _, err := api.Ping(pctx); err != nil {
		api.Close()
		return nil, err
	}
	return &Client{api: api}, nil
}

// advice says what to change on the server, from what the socket looks like
// to the SSH user: sshd reports forbidden forwarding and a missing socket
// alike ("open failed").
func advice(ctx context.Context, conn SSHConn, socket string) string {
	q := "'" + strings.ReplaceAll(socket, "'", `'\''`) + "'"
	var out strings.Builder
	_ = conn.Run(ctx, "if [ ! -S "+q+" ]; then echo missing; elif [ -w "+q+" ] && [ -r "+q+" ]; then echo usable; else echo denied; fi", nil, &out, nil)
	switch strings.TrimSpace(out.String()) {
	case "missing":
		return "no engine socket there: start Docker Engine on the server (or set DOCKER_HOST=unix://<socket> for the SSH user)"
	case "usable":
		return "the socket is there and usable, so sshd refuses stream-local forwarding: allow it for the deploy user (sshd_config: AllowStreamLocalForwarding yes, DisableForwarding no) or install the docker CLI on the server"
	case "denied":
		return "the SSH user may not use the socket: add it to the docker group"
	}
	return "check that the engine runs and that the SSH user may use its socket (docker group)"
}

// stdioConn is one engine connection through `docker system dial-stdio`
// running in its own SSH session.
type stdioConn struct {
	r      *io.PipeReader // the remote's stdout
	w      *io.PipeWriter // to the remote's stdin
	cancel context.CancelFunc
	once   sync.Once
	done   chan struct{}
	errMu  sync.Mutex
	err    error
}

func dialStdio(conn SSHConn, socket string) *stdioConn {
	ctx, cancel := context.WithCancel(context.Background())
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	c := &stdioConn{r: outR, w: inW, cancel: cancel, done: make(chan struct{})}
	cmd := "DOCKER_HOST=unix://" + socket + " exec docker system dial-stdio"
	go func() {
		var stderr strings.Builder
		err := conn.Run(ctx, cmd, inR, outW, &stderr)
		if err != nil && stderr.Len() > 0 && !strings.Contains(err.Error(), strings.TrimSpace(stderr.String())) {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
		}
		if err == nil {
			err = io.EOF
		}
		c.errMu.Lock()
		c.err = err
		c.errMu.Unlock()
		outW.CloseWithError(err)
		inR.CloseWithError(err)
		close(c.done)
	}()
	return c
}

// exitErr is why the remote command ended, nil while it runs.
func (c *stdioConn) exitErr() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.err
}

func (c *stdioConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *stdioConn) Write(p []byte) (int, error) { return c.w.Write(p) }

// Close ends the remote command (its stdin closes, then the session).
func (c *stdioConn) Close() error {
	c.once.Do(func() {
		c.w.Close()
		c.r.Close()
		select {
		case <-c.done:
		case <-time.After(2 * time.Second):
		}
		c.cancel()
	})
	return nil
}

func (c *stdioConn) LocalAddr() net.Addr                { return stdioAddr{} }
func (c *stdioConn) RemoteAddr() net.Addr               { return stdioAddr{} }
func (c *stdioConn) SetDeadline(t time.Time) error      { return nil }
func (c *stdioConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *stdioConn) SetWriteDeadline(t time.Time) error { return nil }

type stdioAddr struct{}

func (stdioAddr) Network() string { return "dial-stdio" }
func (stdioAddr) String() string  { return "docker system dial-stdio" }
