package engine_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"github.com/slipway-dev/slipway/tools/internal/engine"
	"github.com/slipway-dev/slipway/tools/internal/sshx"
	"github.com/slipway-dev/slipway/tools/internal/testenv"
)

func dialTarget(t *testing.T, tg testenv.Target, port int) *sshx.Conn {
	t.Helper()
	o := sshx.Options{Identity: tg.KeyFile, KnownHosts: tg.KnownHosts, ConfigFile: "none", ConnectTimeout: 20 * time.Second}
	c, err := sshx.Dial(context.Background(), fmt.Sprintf("%s@%s:%d", tg.User, tg.Host, port), o)
	if err != nil {
		t.Fatalf("ssh to %s port %d: %v", tg.Name, port, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// engineID is the ID the target's engine reports when reached directly
// through its socket from the agent.
func engineID(t *testing.T, tg testenv.Target) string {
	t.Helper()
	api, err := client.NewClientWithOpts(client.WithHost(tg.DockerHost), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	info, err := api.Info(context.Background())
	if err != nil {
		t.Fatalf("engine of %s: %v", tg.Name, err)
	}
	return info.ID
}

func socketOf(tg testenv.Target) string { return strings.TrimPrefix(tg.DockerHost, "unix://") }

// TestOverSSH reaches a target's engine the three ways a server may allow:
// stream-local forwarding; only `docker system dial-stdio` (forwarding
// forbidden); only the engine and sshd (no docker CLI, no Compose).
func TestOverSSH(t *testing.T) {
	env := testenv.Require(t)
	tg := env.Target(t, "t1")
	if tg.PortNoForwarding == 0 || tg.PortBare == 0 {
		t.Fatalf("env.json has no PortNoForwarding/PortBare for %s: run test/scripts/services.sh up", tg.Name)
	}
	want := engineID(t, tg)
	cases := []struct {
		name string
		port int
		want engine.Transport
	}{
		{"stream-local", tg.Port, engine.StreamLocal},
		{"forwarding forbidden", tg.PortNoForwarding, engine.DialStdio},
		{"engine and sshd only", tg.PortBare, engine.StreamLocal},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			conn := dialTarget(t, tg, tc.port)
			if tc.port == tg.PortBare {
				if out, err := conn.Output(ctx, "command -v docker docker-compose", nil); err == nil {
					t.Fatalf("the bare port's PATH has %q", out)
				}
			}
			c, how, err := engine.OverSSH(ctx, conn, socketOf(tg))
			if err != nil {
				t.Fatalf("OverSSH: %v", err)
			}
			defer c.Close()
			if how != tc.want {
				t.Errorf("transport = %s, want %s", how, tc.want)
			}
			// Several calls, some concurrent: connections are reused and
			// the fallback's bound on sessions holds.
			errs := make(chan error, 6)
			for i := 0; i < 6; i++ {
				go func() {
					info, err := c.API().Info(ctx)
					if err == nil && info.ID != want {
						err = fmt.Errorf("engine ID %s, want %s (another engine?)", info.ID, want)
					}
					errs <- err
				}()
			}
			for i := 0; i < 6; i++ {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			// Scripts still get sessions while engine connections are open.
			if out, err := conn.Output(ctx, "echo ok", nil); err != nil || string(out) != "ok\n" {
				t.Fatalf("a command next to the engine connections: %q, %v", out, err)
			}
		})
	}
}

// TestOverSSHNoEngine: neither way reaches an engine; the error names the
// socket and says what to check.
func TestOverSSHNoEngine(t *testing.T) {
	env := testenv.Require(t)
	tg := env.Target(t, "t1")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn := dialTarget(t, tg, tg.PortBare)
	_, _, err := engine.OverSSH(ctx, conn, "/nonexistent/docker.sock")
	if err == nil {
		t.Fatal("OverSSH to a missing socket succeeded")
	}
	for _, s := range []string{"/nonexistent/docker.sock", "stream-local", "dial-stdio", "no engine socket", "not found"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}

}
