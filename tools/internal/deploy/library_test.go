package deploy

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/tools/internal/deploy/remote"
)

func TestChooseConverger(t *testing.T) {
	noCompose := fmt.Errorf("%w: install it", remote.ErrNoCompose)
	noEngine := fmt.Errorf("%w: start it", remote.ErrNoEngine)
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
		{"auto", "rolling", "", noCompose, false, "--strategy recreate converges"},
		{"library", "recreate", remote.ComposeV1, nil, true, ""},
		{"library", "recreate", "", noCompose, true, ""},
		{"library", "swarm", remote.ComposeV2, nil, false, "roll it back with --compose auto"},
		{"cli", "recreate", "", noCompose, false, "compose not found"},
		{"cli", "recreate", remote.ComposeV1, nil, false, ""},
		{"library", "recreate", "", noEngine, false, "engine not reachable"},
		{"auto", "recreate", "", noEngine, false, "engine not reachable"},
	} {
		h := &remote.Host{Kind: tc.kind}
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
	if err := validComposeMode("libary"); err == nil || !strings.Contains(err.Error(), "--compose") {
		t.Errorf("validComposeMode: %v", err)
	}
}
