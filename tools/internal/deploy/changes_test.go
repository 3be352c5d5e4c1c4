package deploy

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/tools/internal/deploy/remote"
)

// changeRelease is a release as releaseFiles makes it: nginx.conf mounted
// from the file store, app.env an env_file of web, a runtime .env.
func changeRelease(webImage, conf, appEnv, dotEnv string, extra string) []remote.File {
	entry := storeEntry("proxy/nginx.conf", []byte(conf))
	compose := fmt.Sprintf(`name: shop
services:
  web:
    image: %s
    env_file: [app.env]
    environment:
      GREETING: ${GREETING}
  db:
    image: pg@sha256:1111111111111111111111111111111111111111111111111111111111111111
    volumes: [dbdata:/var/lib/postgresql/data]
  proxy:
    image: nginx@sha256:2222222222222222222222222222222222222222222222222222222222222222
    volumes:
      - /srv/app/.slipway/files/%s:/etc/nginx/nginx.conf:ro
%svolumes:
  dbdata: {}
`, webImage, entry, extra)
	return []remote.File{
		{Path: "compose.yaml", Data: []byte(compose)},
		{Path: "proxy/nginx.conf", Data: []byte(conf), Store: entry},
		{Path: "app.env", Data: []byte(appEnv)},
		{Path: ".env", Data: []byte(dotEnv)},
	}
}

func TestChangePlan(t *testing.T) {
	h := &remote.Host{Dir: "/srv/app", Project: "shop"}
	const img1 = "reg/web@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	const img2 = "reg/web@sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	ctx := context.Background()
	load := func(release string, files []remote.File) *remote.ReleaseConfig {
		t.Helper()
		c, err := uploadRelease(ctx, h, release, files)
		if err != nil {
			t.Fatalf("%s: %v", release, err)
		}
		return c
	}
	base := load("c1", changeRelease(img1, "worker_processes 1;", "A=1\n", "GREETING=hi\n", ""))
	plan := func(files []remote.File) map[string]ServiceChange {
		t.Helper()
		out := map[string]ServiceChange{}
		for _, c := range diffReleases(h.Dir, base, load("c2", files)) {
			out[c.Service] = c
		}
		return out
	}
	cases := []struct {
		name  string
		files []remote.File
		want  map[string]ServiceChange
	}{
		{"nothing changed", changeRelease(img1, "worker_processes 1;", "A=1\n", "GREETING=hi\n", ""), map[string]ServiceChange{}},
		{"new image", changeRelease(img2, "worker_processes 1;", "A=1\n", "GREETING=hi\n", ""),
			map[string]ServiceChange{"web": {Change: ChangeChanged, NewImage: true}}},
		{"a mounted file", changeRelease(img1, "worker_processes 2;", "A=1\n", "GREETING=hi\n", ""),
			map[string]ServiceChange{"proxy": {Change: ChangeChanged, Files: []string{"proxy/nginx.conf"}}}},
		{"an env_file", changeRelease(img1, "worker_processes 1;", "A=2\n", "GREETING=hi\n", ""),
			map[string]ServiceChange{"web": {Change: ChangeChanged, Keys: []string{"environment"}}}},
		{"the server's .env", changeRelease(img1, "worker_processes 1;", "A=1\n", "GREETING=hello\n", ""),
			map[string]ServiceChange{"web": {Change: ChangeChanged, Keys: []string{"environment"}}}},
		{"a service added", changeRelease(img1, "worker_processes 1;", "A=1\n", "GREETING=hi\n", "  init:\n    image: "+img1+"\n    command: [seed]\n"),
			map[string]ServiceChange{"init": {Change: ChangeNew}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := plan(tc.files)
			for _, svc := range []string{"web", "db", "proxy", "init"} {
				g, ok := got[svc]
				if !ok {
					continue
				}
				w, ok := tc.want[svc]
				if !ok {
					w = ServiceChange{Change: ChangeUnchanged}
				}
				w.Service = svc
				if !reflect.DeepEqual(g, w) {
					t.Errorf("%s: got %+v, want %+v", svc, g, w)
				}
			}
		})
	}

	t.Run("a service removed", func(t *testing.T) {
		with := load("c0", changeRelease(img1, "worker_processes 1;", "A=1\n", "GREETING=hi\n", "  init:\n    image: "+img1+"\n"))
		got := diffReleases(h.Dir, with, base)
		if len(got) != 4 || got[1].Service != "init" || got[1].Change != ChangeRemoved {
			t.Errorf("got %+v", got)
		}
	})
	t.Run("first deploy", func(t *testing.T) {
		for _, c := range diffReleases(h.Dir, nil, base) {
			if c.Change != ChangeNew {
				t.Errorf("%+v", c)
			}
		}
	})
	t.Run("log line", func(t *testing.T) {
		c := ServiceChange{Service: "web", Change: ChangeChanged, NewImage: true, Keys: []string{"environment", "ports"}, Files: []string{"a.conf"}}
		if got, want := c.String(), "new image; definition changed (environment, ports); files changed (a.conf)"; got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	})
	t.Run("an env_file missing from the release", func(t *testing.T) {
		files := changeRelease(img1, "x", "A=1\n", "", "")
		files = files[:2] // no app.env
		_, err := uploadRelease(ctx, h, "c3", files)
		if err == nil || !strings.Contains(err.Error(), "app.env") {
			t.Errorf("error %v, want one naming app.env", err)
		}
	})
}
