package engine

import (
	"context"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// localConn runs commands with the local sh, for the advice's socket checks.
type localConn struct{}

func (localConn) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return nil, net.ErrClosed
}

func (localConn) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	c := exec.CommandContext(ctx, "sh", "-c", cmd)
	c.Stdin, c.Stdout, c.Stderr = stdin, stdout, stderr
	return c.Run()
}

func TestAdvice(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "it's docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	if got := advice(ctx, localConn{}, sock); !strings.Contains(got, "AllowStreamLocalForwarding yes") {
		t.Errorf("usable socket: advice %q should say to allow stream-local forwarding", got)
	}
	if got := advice(ctx, localConn{}, filepath.Join(dir, "none.sock")); !strings.Contains(got, "no engine socket") {
		t.Errorf("missing socket: advice %q should say there is no engine socket", got)
	}
}
