package deploy

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/manifest"
	"github.com/slipway-dev/slipway/tools/internal/progress"
)

// releaseAs is release() under another project name.
func releaseAs(t *testing.T, v, project string) string {
	t.Helper()
	path := release(t, v, nil)
	m, err := manifest.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	m.Project = project
	if err := manifest.Write(path, m); err != nil {
		t.Fatal(err)
	}
	pinned := filepath.Join(filepath.Dir(path), m.PinnedCompose)
	data, err := os.ReadFile(pinned)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pinned, bytes.Replace(data, []byte("name: shop\n"), []byte("name: "+project+"\n"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// projects is the set of compose projects of the fake engine's containers.
func (h *fakeHost) projects() map[string]int {
	got := map[string]int{}
	for _, c := range h.engine().Containers {
		got[c.Project]++
	}
	return got
}

func TestProjectMismatchRefusedRenameAndRollback(t *testing.T) {
	h := newFakeHost(t, "t1")
	wantCode(t, deployTo(t, release(t, "v1", nil), []*fakeHost{h}, nil), 0)
	time.Sleep(1100 * time.Millisecond) // release times have one-second resolution
	before := snapshot(t, h.home)
	engineBefore, _ := os.ReadFile(filepath.Join(h.state, "state.json"))
	nCmds := len(h.commands())

	r := deployTo(t, releaseAs(t, "v2", "shop-other"), []*fakeHost{h}, nil)
	wantCode(t, r, exit.Usage)
	for _, want := range []string{`"shop"`, `"shop-other"`, "--rename-project", "renameProject: true", "nothing was changed"} {
		if !strings.Contains(r.err.Error(), want) {
			t.Errorf("refusal does not say %q: %v", want, r.err)
		}
	}
	if after := snapshot(t, h.home); after != before {
		t.Errorf("refused deploy changed files:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if after, _ := os.ReadFile(filepath.Join(h.state, "state.json")); !bytes.Equal(after, engineBefore) {
		t.Error("refused deploy changed the engine")
	}
	for _, c := range h.commands()[nCmds:] {
		if strings.Contains(c, "lock") {
			t.Errorf("refused deploy touched the lock: %s", c)
		}
	}

	r = deployTo(t, releaseAs(t, "v2", "shop-other"), []*fakeHost{h}, func(o *Options) { o.RenameProject = true })
	wantCode(t, r, 0)
	if got := h.projects(); got["shop"] != 0 || got["shop-other"] != 2 {
		t.Errorf("after the rename the engine runs %v, want only shop-other's 2 containers", got)
	}
	if hr := r.res.Hosts[0]; hr.RenamedFrom != "shop" {
		t.Errorf("result renamedFrom %q, want shop", hr.RenamedFrom)
	}
	if !strings.Contains(r.stderr, "taking project shop (release "+short(commitOf("v1"))+") down; its volumes are kept") {
		t.Errorf("log does not say the old project goes down:\n%s", r.stderr)
	}

	// Rolling back to v1 runs it under its recorded project, shop.
	ro := RollbackOptions{Target: Target{Hosts: []string{"t1"}, Dir: "app", Dial: fakeDial(h)}, Stdout: io.Discard, Log: progress.Discard(), Getenv: credsEnv}
	res, err := Rollback(context.Background(), ro)
	if err != nil {
		t.Fatal(err)
	}
	if h.current() != commitOf("v1") || h.runningRelease() != commitOf("v1") {
		t.Fatalf("after rollback: current %s running %s", h.current(), h.runningRelease())
	}
	if got := h.projects(); got["shop-other"] != 0 || got["shop"] != 2 {
		t.Errorf("after the rollback the engine runs %v, want only shop's 2 containers", got)
	}
	if res.Project != "shop" || res.Hosts[0].RenamedFrom != "shop-other" {
		t.Errorf("rollback result project %q renamedFrom %q", res.Project, res.Hosts[0].RenamedFrom)
	}

	// v2 is on the host as shop-other: its release.json is not rewritten by
	// shop, even with --rename-project.
	meta := filepath.Join(h.dir(), "releases", commitOf("v2"), "release.json")
	metaBefore, _ := os.ReadFile(meta)
	r = deployTo(t, release(t, "v2", nil), []*fakeHost{h}, func(o *Options) { o.RenameProject = true })
	wantCode(t, r, exit.Usage)
	if !strings.Contains(r.err.Error(), `already there as project "shop-other"`) {
		t.Errorf("refusal: %v", r.err)
	}
	if after, _ := os.ReadFile(meta); !bytes.Equal(after, metaBefore) {
		t.Errorf("release.json of v2 rewritten:\n%s\n->\n%s", metaBefore, after)
	}
	if h.runningRelease() != commitOf("v1") {
		t.Errorf("running %s after the refusal, want v1", h.runningRelease())
	}
}
