package deploy

// Unit tests of the rolling strategy's planning: which services change,
// in which order, how (start-first or stop-first, with which warning), and
// the update_config it honours. The server side runs against real Docker
// and Compose in rolling_integration_test.go.

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v4"

	"github.com/slipway-dev/slipway/tools/internal/deploy/remote"
	"github.com/slipway-dev/slipway/tools/internal/exit"
)

const testDir = "/srv/shop"

// cfg is a release as `docker-compose config` (1.29) prints it, with the
// release directory in its paths.
func cfg(t *testing.T, release, yml string, hashes map[string]string, files map[string]string) *remote.ReleaseConfig {
	t.Helper()
	yml = strings.ReplaceAll(yml, "@REL@", testDir+"/releases/"+release)
	var m map[string]any
	if err := yaml.Unmarshal([]byte(yml), &m); err != nil {
		t.Fatal(err)
	}
	if files == nil {
		files = map[string]string{}
	}
	return &remote.ReleaseConfig{Release: release, Model: m, Hashes: hashes, Files: files}
}

const shopV1 = `
services:
  db:
    image: reg/postgres@sha256:d1
    volumes:
    - dbdata:/var/lib/postgresql/data:rw
  web:
    image: reg/web@sha256:w1
    depends_on:
      db:
        condition: service_healthy
    deploy:
      update_config:
        order: start-first
        monitor: 2s
  proxy:
    image: reg/nginx@sha256:n1
    depends_on:
      web:
        condition: service_healthy
    ports:
    - published: 8080
      target: 80
    volumes:
    - @REL@/proxy/nginx.conf:/etc/nginx/nginx.conf:ro
volumes:
  dbdata: {}
`

func ctr(svc, id, release, hash string) remote.RollContainer {
	return remote.RollContainer{Container: remote.Container{ID: id, Name: "shop_" + svc + "_" + id, Service: svc, State: "running", Release: release}, ConfigHash: hash}
}

func names(ss []*svcRoll) string {
	var out []string
	for _, s := range ss {
		out = append(out, s.Name)
	}
	return strings.Join(out, ",")
}

func TestPlanOnlyChangedServicesInDependencyOrder(t *testing.T) {
	conf := map[string]string{"proxy/nginx.conf": "aaa"}
	old := cfg(t, "r1", shopV1, map[string]string{"db": "hdb", "web": "hweb1", "proxy": "hproxy1"}, conf)
	v2 := strings.ReplaceAll(shopV1, "reg/web@sha256:w1", "reg/web@sha256:w2")
	// The proxy's hash differs (its bind mount comes from the new release's
	// directory) but its definition and nginx.conf are the same.
	nw := cfg(t, "r2", v2, map[string]string{"db": "hdb", "web": "hweb2", "proxy": "hproxy2"}, conf)
	cs := []remote.RollContainer{ctr("db", "d", "r1", "hdb"), ctr("web", "w", "r1", "hweb1"), ctr("proxy", "p", "r1", "hproxy1")}
	p, err := planRoll(testDir, "r2", map[string]*remote.ReleaseConfig{"r1": old, "r2": nw}, cs)
	if err != nil {
		t.Fatal(err)
	}
	if got := names(p.Services); got != "web" {
		t.Fatalf("services to roll: %q, want web", got)
	}
	web := p.Services[0]
	if web.Order != "start-first" || web.Reason != "new image" || len(web.Stale) != 1 || web.Replicas != 1 || web.Warning != "" {
		t.Errorf("web plan %+v", web)
	}
	if web.Policy.Monitor != 2*time.Second || !web.Policy.MonitorSet || web.Drain != DefaultDrain || web.Grace != 10*time.Second {
		t.Errorf("web policy %+v drain %s grace %s", web.Policy, web.Drain, web.Grace)
	}
	if len(p.Notes) != 2 || !strings.Contains(p.Notes[0], "proxy: unchanged (same definition and files as in release r1") || p.Notes[1] != "left running, unchanged: db, proxy" {
		t.Errorf("notes %q", p.Notes)
	}

	// nginx.conf changed: the proxy rolls too, stop-first (fixed port), after web.
	nw.Files = map[string]string{"proxy/nginx.conf": "bbb"}
	p, err = planRoll(testDir, "r2", map[string]*remote.ReleaseConfig{"r1": old, "r2": nw}, cs)
	if err != nil {
		t.Fatal(err)
	}
	if got := names(p.Services); got != "web,proxy" {
		t.Fatalf("services to roll: %q, want web,proxy", got)
	}
	proxy := p.Services[1]
	if proxy.Order != "stop-first" || !strings.Contains(proxy.Reason, "file proxy/nginx.conf changed") {
		t.Errorf("proxy plan %+v", proxy)
	}
	if !strings.Contains(proxy.Warning, "fixed host port 8080") || !strings.Contains(proxy.Warning, "proxy service in front") {
		t.Errorf("proxy warning %q", proxy.Warning)
	}
}

func TestPlanNamedVolumeStopFirstUnlessAsked(t *testing.T) {
	old := cfg(t, "r1", shopV1, map[string]string{"db": "hdb1", "web": "hweb", "proxy": "hp"}, nil)
	v2 := strings.ReplaceAll(shopV1, "reg/postgres@sha256:d1", "reg/postgres@sha256:d2")
	nw := cfg(t, "r2", v2, map[string]string{"db": "hdb2", "web": "hweb", "proxy": "hp"}, nil)
	cs := []remote.RollContainer{ctr("db", "d", "r1", "hdb1"), ctr("web", "w", "r1", "hweb"), ctr("proxy", "p", "r1", "hp")}
	p, err := planRoll(testDir, "r2", map[string]*remote.ReleaseConfig{"r1": old, "r2": nw}, cs)
	if err != nil {
		t.Fatal(err)
	}
	if names(p.Services) != "db" {
		t.Fatalf("services %q", names(p.Services))
	}
	db := p.Services[0]
	if db.Order != "stop-first" || !strings.Contains(db.Warning, "named volume dbdata") || !strings.Contains(db.Warning, "order: start-first") {
		t.Errorf("db %+v", db)
	}

	asked := strings.Replace(v2, "    - dbdata:/var/lib/postgresql/data:rw\n", "    - dbdata:/var/lib/postgresql/data:rw\n    deploy:\n      update_config:\n        order: start-first\n", 1)
	nw = cfg(t, "r2", asked, map[string]string{"db": "hdb2", "web": "hweb", "proxy": "hp"}, nil)
	p, err = planRoll(testDir, "r2", map[string]*remote.ReleaseConfig{"r1": old, "r2": nw}, cs)
	if err != nil {
		t.Fatal(err)
	}
	if db := p.Services[0]; db.Order != "start-first" || db.Warning != "" {
		t.Errorf("explicit start-first on a named volume: %+v", db)
	}
}

func TestPlanStates(t *testing.T) {
	nw := cfg(t, "r2", shopV1, map[string]string{"db": "hdb", "web": "hweb", "proxy": "hp"}, nil)
	cfgs := map[string]*remote.ReleaseConfig{"r2": nw}
	exited := ctr("web", "w", "r2", "hweb")
	exited.State, exited.ExitCode, exited.RestartPolicy = "exited", 1, "unless-stopped"
	gone := ctr("db", "d", "r0", "hdb-old") // its release directory was pruned
	cfgs["r0"] = &remote.ReleaseConfig{Release: "r0", Err: releaseGone}
	orphan := ctr("worker", "x", "r1", "hx")
	extra1, extra2 := ctr("proxy", "p1", "r2", "hp"), ctr("proxy", "p2", "r2", "hp")
	p, err := planRoll(testDir, "r2", cfgs, []remote.RollContainer{exited, gone, orphan, extra1, extra2})
	if err != nil {
		t.Fatal(err)
	}
	if names(p.Services) != "db,web,proxy" {
		t.Fatalf("services %q", names(p.Services))
	}
	if s := p.Services[0]; !strings.Contains(s.Reason, "gone") {
		t.Errorf("db: %q", s.Reason)
	}
	if s := p.Services[1]; !strings.Contains(s.Reason, "exited with code 1") || len(s.Stale) != 1 {
		t.Errorf("web: %q", s.Reason)
	}
	if s := p.Services[2]; len(s.Keep) != 1 || len(s.Extra) != 1 || s.Extra[0].ID != "p2" || !strings.Contains(s.Reason, "scaled down to 1") {
		t.Errorf("proxy: %+v", s)
	}
	if len(p.Orphans) != 1 || p.Orphans[0].Service != "worker" {
		t.Errorf("orphans %+v", p.Orphans)
	}

	// A container of another release that was not read (nothing of its
	// service comes from a release directory): its image tells.
	oldImage := ctr("web", "w", "r1", "hweb-r1")
	oldImage.Image = "reg/web@sha256:w0"
	sameImage := ctr("db", "d", "r1", "hdb-r1")
	sameImage.Image = "reg/postgres@sha256:d1"
	p, err = planRoll(testDir, "r2", cfgs, []remote.RollContainer{oldImage, sameImage, ctr("proxy", "p", "r2", "hp")})
	if err != nil || names(p.Services) != "db,web" || p.Services[0].Reason != "definition changed" || p.Services[1].Reason != "new image" {
		t.Errorf("containers of an unread release: %+v %v", p.Services, err)
	}

	// Everything current: nothing to do.
	p, err = planRoll(testDir, "r2", cfgs, []remote.RollContainer{ctr("db", "d", "r2", "hdb"), ctr("web", "w", "r2", "hweb"), ctr("proxy", "p", "r2", "hp")})
	if err != nil || len(p.Services) != 0 || len(p.Orphans) != 0 {
		t.Errorf("all current: %+v %v", p, err)
	}

	// The same release deployed again with a new .env: its hash changed.
	p, err = planRoll(testDir, "r2", cfgs, []remote.RollContainer{ctr("db", "d", "r2", "hdb"), ctr("web", "w", "r2", "hweb-before"), ctr("proxy", "p", "r2", "hp")})
	if err != nil || names(p.Services) != "web" || p.Services[0].Reason != "definition changed" {
		t.Errorf("same release, new hash: %+v %v", p, err)
	}
}

func TestDependencyOrder(t *testing.T) {
	c := cfg(t, "r", `
services:
  a: {depends_on: [b, c]}
  b: {depends_on: {c: {condition: service_started}}}
  c: {}
  d: {depends_on: [missing]}
`, nil, nil)
	got, err := dependencyOrder(c)
	if err != nil || strings.Join(got, ",") != "c,b,a,d" {
		t.Errorf("order %v %v", got, err)
	}
	c = cfg(t, "r", "services:\n  a: {depends_on: [b]}\n  b: {depends_on: [a]}\n", nil, nil)
	if _, err := dependencyOrder(c); exit.Code(err) != exit.Usage || !strings.Contains(err.Error(), "a -> b -> a") {
		t.Errorf("cycle: %v", err)
	}
}

func TestParsePolicy(t *testing.T) {
	p, err := parsePolicy("x", nil)
	if err != nil || p.Parallelism != 1 || p.FailureAction != "rollback" || p.Monitor != DefaultMonitor || p.MonitorSet || p.Order != "" {
		t.Errorf("defaults %+v %v", p, err)
	}
	p, err = parsePolicy("x", map[string]any{"parallelism": 2, "delay": "1m30s", "order": "stop-first", "failure_action": "pause", "monitor": "500ms", "max_failure_ratio": 0.1})
	if err != nil || p.Parallelism != 2 || p.Delay != 90*time.Second || p.Order != "stop-first" || p.FailureAction != "pause" || p.Monitor != 500*time.Millisecond {
		t.Errorf("full %+v %v", p, err)
	}
	for _, bad := range []map[string]any{
		{"order": "whenever"}, {"failure_action": "retry"}, {"delay": "soon"}, {"parallelism": "two"}, {"paralelism": 2},
	} {
		if _, err := parsePolicy("services.web.deploy.update_config", bad); exit.Code(err) != exit.Usage || !strings.Contains(err.Error(), "services.web.deploy.update_config.") {
			t.Errorf("%v: %v", bad, err)
		}
	}
}

func TestStopFirstReasons(t *testing.T) {
	cases := []struct {
		svc   string
		order string
		warn  string
	}{
		{"{ports: ['8080:80']}", "stop-first", "fixed host port 8080"},
		{"{ports: ['127.0.0.1:8080:80/udp']}", "stop-first", "fixed host port 127.0.0.1:8080"},
		{"{ports: [{target: 80, published: '9000', host_ip: 10.0.0.1}]}", "stop-first", "10.0.0.1:9000"},
		{"{ports: ['80', {target: 81}]}", "start-first", ""},
		{"{container_name: shop-db}", "stop-first", "container_name"},
		{"{networks: {back: {ipv4_address: 172.20.0.5}}}", "stop-first", "fixed address on network back"},
		{"{volumes: ['data:/d', './conf:/c:ro']}", "stop-first", "named volume data"},
		{"{volumes: [{type: volume, source: data, target: /d}]}", "stop-first", "named volume data"},
		{"{volumes: ['/d', './c:/c', '/host:/h']}", "start-first", ""},
		{"{volumes: ['data:/d'], deploy: {update_config: {order: stop-first}}}", "stop-first", ""},
	}
	for _, c := range cases {
		var svc map[string]any
		if err := yaml.Unmarshal([]byte(c.svc), &svc); err != nil {
			t.Fatal(err)
		}
		s := &svcRoll{Name: "x"}
		if err := s.readConfig(svc); err != nil {
			t.Fatal(err)
		}
		s.decideOrder(svc, true)
		if s.Order != c.order || (c.warn == "") != (s.Warning == "") || !strings.Contains(s.Warning, c.warn) {
			t.Errorf("%s: order %s, warning %q; want %s, %q", c.svc, s.Order, s.Warning, c.order, c.warn)
		}
	}
}

func TestServiceConfigValues(t *testing.T) {
	var svc map[string]any
	yaml.Unmarshal([]byte(`{scale: 3, stop_grace_period: 1m, x-slipway-drain: 0s, networks: {front: null, back: {aliases: [api]}}}`), &svc)
	s := &svcRoll{Name: "api"}
	if err := s.readConfig(svc); err != nil {
		t.Fatal(err)
	}
	if s.Replicas != 3 || s.Grace != time.Minute || s.Drain != 0 || len(s.Nets) != 2 || s.Nets[0].Key != "back" || s.Nets[0].Aliases[0] != "api" {
		t.Errorf("%+v", s)
	}
	yaml.Unmarshal([]byte(`{deploy: {replicas: 2}, stop_grace_period: forever}`), &svc)
	if err := (&svcRoll{Name: "api"}).readConfig(svc); exit.Code(err) != exit.Usage || !strings.Contains(err.Error(), "services.api.stop_grace_period") {
		t.Errorf("bad grace period: %v", err)
	}
	for in, want := range map[any]time.Duration{"5s": 5 * time.Second, "1m30s": 90 * time.Second, "10": 10 * time.Second, 3: 3 * time.Second} {
		if got, err := toDuration(in); err != nil || got != want {
			t.Errorf("toDuration(%v) = %s, %v", in, got, err)
		}
	}
}

func TestNetworkNames(t *testing.T) {
	c := cfg(t, "r", `
networks:
  back: {}
  named: {name: shared-net}
  ext: {external: true}
  extold: {external: {name: legacy}}
services: {}
`, nil, nil)
	for key, want := range map[string]string{"default": "shop_default", "back": "shop_back", "named": "shared-net", "ext": "ext", "extold": "legacy"} {
		if got := networkName(c.Model, "shop", key); got != want {
			t.Errorf("network %s: %s, want %s", key, got, want)
		}
	}
	ro := &roller{d: &HostDeploy{Host: &remote.Host{Project: "shop"}}, target: "r", cfgs: map[string]*remote.ReleaseConfig{"r": c}}
	s := &svcRoll{Name: "api", Nets: []svcNet{{Key: "back", Aliases: []string{"v1api"}}, {Key: "default"}}}
	got := ro.attachments(s, "0123456789abcdef", true)
	if len(got) != 2 || got[0].Network != "shop_back" || strings.Join(got[0].Aliases, ",") != "api,v1api,0123456789ab" || got[1].Network != "shop_default" {
		t.Errorf("named attachments %+v", got)
	}
	got = ro.attachments(s, "0123456789abcdef", false)
	if strings.Join(got[0].Aliases, ",") != "0123456789ab" {
		t.Errorf("attachments while gating %+v", got)
	}
}

func TestReleasePaths(t *testing.T) {
	v := map[string]any{"service": map[string]any{
		"volumes": []any{"<release>/conf/nginx.conf:/etc/nginx/nginx.conf:ro", "/abs:/abs", map[string]any{"source": "<release>/static", "target": "/s"}},
		"command": "serve --config <release>/app.toml",
	}}
	got := strings.Join(releasePaths(v), ",")
	if got != "app.toml,conf/nginx.conf,static" {
		t.Errorf("paths %q", got)
	}
	a := map[string]string{"static/a.css": "1", "static/b.css": "2", "staticky": "3"}
	b := map[string]string{"static/a.css": "1", "static/b.css": "2", "staticky": "4"}
	if !sameFiles(a, b, "static") || sameFiles(a, b, "staticky") {
		t.Error("sameFiles compares the wrong files")
	}
	// A mount of the project directory (.) mounts the release's copy of the
	// checkout: any tracked file changing changes the service.
	v = map[string]any{"service": map[string]any{"volumes": []any{"<release>/.slipway-checkout:/code"}}}
	if got := strings.Join(releasePaths(v), ","); got != ".slipway-checkout" {
		t.Errorf("checkout mount paths %q", got)
	}
	a = map[string]string{".slipway-checkout/app.py": "1", ".slipway-checkout/pkg/m.py": "2", "release.json": "r1"}
	b = map[string]string{".slipway-checkout/app.py": "1", ".slipway-checkout/pkg/m.py": "3", "release.json": "r2"}
	if sameFiles(a, b, ".slipway-checkout") {
		t.Error("a changed file in the checkout copy went unnoticed")
	}
	// The release directory itself, mounted whole: everything but the files
	// slipway writes per release counts.
	v = map[string]any{"service": map[string]any{"volumes": []any{"<release>:/code"}}}
	if got := strings.Join(releasePaths(v), ","); got != "." {
		t.Errorf("whole-release mount paths %q", got)
	}
	if sameFiles(a, b, ".") {
		t.Error("a changed file under the mounted release directory went unnoticed")
	}
	b[".slipway-checkout/pkg/m.py"] = "2"
	if !sameFiles(a, b, ".") {
		t.Error("release.json differs in every release and must not count")
	}
}

func TestRollingAndSwarmDryRun(t *testing.T) {
	for _, strategy := range []string{"rolling", "swarm"} {
		h := newFakeHost(t, "t1")
		r := deployTo(t, release(t, "v1", nil), []*fakeHost{h}, func(o *Options) { o.Strategy = strategy; o.DryRun = true })
		wantCode(t, r, 0)
		want := map[string]string{"rolling": "rolling update to release", "swarm": "docker stack deploy --with-registry-auth --prune -c stack.yaml shop"}[strategy]
		if !strings.Contains(r.stdout, want) {
			t.Errorf("%s dry run does not show %q:\n%s", strategy, want, r.stdout)
		}
		if h.current() != "" || len(h.releases()) != 0 {
			t.Errorf("%s dry run changed the host: current %q, releases %v", strategy, h.current(), h.releases())
		}
	}
}

func TestRollBatches(t *testing.T) {
	cases := []struct {
		newN, old, par int
		want           string
	}{
		{1, 1, 1, "[[1 1]]"},
		{3, 3, 1, "[[1 1] [1 1] [1 1]]"},
		{3, 3, 2, "[[2 2] [1 1]]"},
		{3, 3, 0, "[[3 3]]"},
		{2, 1, 1, "[[1 1] [1 0]]"},
		{0, 2, 1, "[[0 1] [0 1]]"},
		{1, 0, 1, "[[1 0]]"},
		{0, 0, 1, "[]"},
	}
	for _, c := range cases {
		if got := fmt.Sprint(rollBatches(c.newN, c.old, c.par)); got != c.want {
			t.Errorf("rollBatches(%d, %d, %d) = %s, want %s", c.newN, c.old, c.par, got, c.want)
		}
	}
}
