package deploy

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/deploy/remote"
	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/manifest"
	"github.com/slipway-dev/slipway/tools/internal/progress"
)

// imageOnly turns release v into an image-only release: nothing built,
// every image external (the pinned file already names them by digest).
func imageOnly(t *testing.T, v string, pushed bool) string {
	t.Helper()
	path := release(t, v, nil)
	m, err := manifest.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	web := m.Services["web"]
	m.External["web"] = manifest.Service{Image: web.Image, Digest: web.Digest}
	m.Services = map[string]manifest.Service{}
	if !pushed {
		m.PinnedCompose = ""
		for n, e := range m.External {
			e.Digest = ""
			m.External[n] = e
		}
	}
	if err := manifest.Write(path, m); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestImageOnlyDeployAndRollback(t *testing.T) {
	h := newFakeHost(t, "t1")
	r := deployTo(t, imageOnly(t, "v0", false), []*fakeHost{h}, nil)
	if exit.Code(r.err) != exit.Usage || !strings.Contains(r.err.Error(), "slipway push") {
		t.Fatalf("deploying an image-only release before push: %v, want exit 2 saying to push", r.err)
	}
	for _, v := range []string{"v1", "v2"} {
		wantCode(t, deployTo(t, imageOnly(t, v, true), []*fakeHost{h}, nil), 0)
		if h.current() != commitOf(v) || h.runningRelease() != commitOf(v) {
			t.Fatalf("after deploying %s: current %s, running %s", v, h.current(), h.runningRelease())
		}
		time.Sleep(1100 * time.Millisecond) // releases are ordered by their deploy time (seconds)
	}
	var meta remote.ReleaseJSON
	data, err := os.ReadFile(filepath.Join(h.dir(), "releases", commitOf("v2"), "release.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &meta); err != nil {
		t.Fatal(err)
	}
	if len(meta.Services) != 0 || meta.External["web"].Digest == "" {
		t.Errorf("release.json: services %v, external %v; want web external with its digest", meta.Services, meta.External)
	}
	ro := RollbackOptions{Target: Target{Hosts: []string{"t1"}, Dir: "app", Dial: fakeDial(h)}, Stdout: os.Stderr, Log: progress.Discard(), Getenv: credsEnv}
	if _, err := Rollback(context.Background(), ro); err != nil {
		t.Fatalf("rollback of an image-only release: %v", err)
	}
	if h.current() != commitOf("v1") || h.runningRelease() != commitOf("v1") {
		t.Fatalf("after rollback: current %s, running %s", h.current(), h.runningRelease())
	}
}

func TestImageOnlyRollingAndSwarmDryRun(t *testing.T) {
	for _, strategy := range []string{"rolling", "swarm"} {
		h := newFakeHost(t, "t1")
		r := deployTo(t, imageOnly(t, "v1", true), []*fakeHost{h}, func(o *Options) { o.Strategy = strategy; o.DryRun = true })
		wantCode(t, r, 0)
		// The registry of the external images gets the deploy's credentials.
		if !strings.Contains(r.stdout+r.stderr, "credentials for reg.test:5000") {
			t.Errorf("%s dry run logs in to no registry:\n%s\n%s", strategy, r.stdout, r.stderr)
		}
	}
}

// An image-only release pulls its own registry's images with the
// SLIPWAY_REGISTRY_* credentials (there is no built image to name that
// registry); Docker Hub images never get them.
func TestImageOnlyCredentialHosts(t *testing.T) {
	m := &manifest.Manifest{External: map[string]manifest.Service{
		"web": {Image: "reg.test:5000/team/web"}, "db": {Image: "postgres"}, "hub": {Image: "docker.io/library/nginx"},
	}}
	if got := m.CredentialImages(); len(got) != 1 || got[0] != "reg.test:5000/team/web" {
		t.Errorf("credential images %v, want only reg.test:5000/team/web", got)
	}
	m.Services = map[string]manifest.Service{"api": {Image: "reg.other/api"}}
	if got := m.CredentialImages(); len(got) != 1 || got[0] != "reg.other/api" {
		t.Errorf("with a built image: %v, want only its registry", got)
	}
}
