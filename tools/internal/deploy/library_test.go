package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/tools/internal/deploy/remote"
)

func TestChooseConverger(t *testing.T) {
	noCompose := fmt.Errorf("%w: install it", remote.ErrNoCompose)
	noEngine := fmt.Errorf("%w: start it", remote.ErrNoEngine)
	noDocker := fmt.Errorf("%w: no CLI", remote.ErrNoDocker)
	for _, tc := range []struct {
		mode, strategy string
		kind           remote.ComposeKind
		probeErr       error
		lib            bool
		errHas         string
	}{
		{"auto", "recreate", remote.ComposeV1, nil, false, ""},
		{"", "recreate", remote.ComposeV2, nil, false, ""},
		{"auto", "recreate", "", noCompose, true, ""},
		{"auto", "rolling", "", noCompose, true, ""},
		{"library", "rolling", remote.ComposeV1, nil, true, ""},
		{"auto", "rolling", "", noDocker, true, ""},
		{"auto", "recreate", "", noDocker, true, ""},
		{"auto", "swarm", "", noCompose, false, "--strategy recreate or rolling converges"},
		{"library", "recreate", remote.ComposeV1, nil, true, ""},
		{"library", "recreate", "", noCompose, true, ""},
		{"library", "swarm", remote.ComposeV2, nil, false, "roll it back with --compose auto"},
		{"cli", "recreate", "", noCompose, false, "compose not found"},
		{"cli", "recreate", remote.ComposeV1, nil, false, ""},
		{"library", "recreate", "", noEngine, false, "engine not reachable"},
		{"auto", "recreate", "", noEngine, false, "engine not reachable"},
	} {
		h := &remote.Host{Kind: tc.kind, Conn: engineStub(t)}
		err := chooseConverger(t.Context(), tc.mode, tc.strategy, h, &remote.Facts{Compose: tc.kind, EngineSocket: "/run/docker.sock"}, tc.probeErr)
		name := fmt.Sprintf("%s/%s/%q/%v", tc.mode, tc.strategy, tc.kind, tc.probeErr)
		if (h.Lib != nil) != tc.lib {
			t.Errorf("%s: library %v, want %v", name, h.Lib != nil, tc.lib)
		}
		if tc.lib && h.Kind != remote.ComposeV2 {
			t.Errorf("%s: renders for %q, want v2 (what the library reads)", name, h.Kind)
		}
		switch {
		case tc.errHas == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case tc.errHas != "" && (err == nil || !strings.Contains(err.Error(), tc.errHas)):
			t.Errorf("%s: error %v, want one saying %q", name, err, tc.errHas)
		}
		if tc.probeErr != nil && err != nil && !errors.Is(err, tc.probeErr) && tc.mode != "library" {
			t.Errorf("%s: %v does not wrap the probe's error", name, err)
		}
	}
	// An engine the library cannot reach: refused before anything changes.
	h := &remote.Host{Conn: unreachable{}}
	err := chooseConverger(t.Context(), "auto", "recreate", h, &remote.Facts{}, noCompose)
	if err == nil || !errors.Is(err, remote.ErrNoCompose) || !strings.Contains(err.Error(), "could not reach the server's engine") {
		t.Errorf("unreachable engine: %v", err)
	}
	if err := chooseConverger(t.Context(), "library", "recreate", &remote.Host{Conn: unreachable{}}, &remote.Facts{Compose: remote.ComposeV2}, nil); err == nil || !strings.Contains(err.Error(), "--compose library") {
		t.Errorf("unreachable engine with --compose library: %v", err)
	}
	if err := validComposeMode("libary"); err == nil || !strings.Contains(err.Error(), "--compose") {
		t.Errorf("validComposeMode: %v", err)
	}
}

// engineStub is an SSH connection whose stream-local channels reach a
// minimal engine API (ping and version) served here.
func engineStub(t *testing.T) remote.Conn {
	sock := filepath.Join(t.TempDir(), "engine.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.41")
		if strings.HasSuffix(r.URL.Path, "/_ping") {
			io.WriteString(w, "OK")
			return
		}
		io.WriteString(w, `{"Version": "20.10.24", "ApiVersion": "1.41"}`)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return stubConn{sock}
}

type stubConn struct{ sock string }

func (s stubConn) DialContext(ctx context.Context, _, _ string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "unix", s.sock)
}

func (stubConn) Run(context.Context, string, io.Reader, io.Writer, io.Writer) error {
	return errors.New("no commands here")
}

type unreachable struct{}

func (unreachable) DialContext(context.Context, string, string) (net.Conn, error) {
	return nil, errors.New("open failed")
}

func (unreachable) Run(context.Context, string, io.Reader, io.Writer, io.Writer) error {
	return errors.New("exit status 127: docker: not found")
}
