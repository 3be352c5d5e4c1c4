package sshx

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/exit"
)

func routeFor(t *testing.T, config, target string, opts Options) ([]*hop, error) {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	p := filepath.Join(home, "config")
	if err := os.WriteFile(p, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	if opts.ConfigFile == "" {
		opts.ConfigFile = p
	}
	cfg, err := loadSSHConfig(opts.ConfigFile)
	if err != nil {
		return nil, err
	}
	return resolveRoute(cfg, target, opts.Jump, &opts, true, 0)
}

func names(route []*hop) string {
	var s []string
	for _, h := range route {
		s = append(s, h.user+"@"+h.addr())
	}
	return strings.Join(s, " > ")
}

const testConfig = `
Host app
    HostName 10.0.0.5
    User deploy
    Port 2200
    IdentityFile ~/.ssh/app_%r
    ProxyJump edge
    ConnectTimeout 7
    ServerAliveInterval 4
    ServerAliveCountMax 9
    HostKeyAlias app-key

Host edge
    HostName edge.example.com
    User jump
    ProxyJump outer

Host outer
    HostName 192.0.2.1

Host *.corp
    HostName %h.example.net
    StrictHostKeyChecking no
    UserKnownHostsFile ~/corp_known /tmp/more_known

Host loop1
    ProxyJump loop2
Host loop2
    ProxyJump loop1

Host legacy
    ProxyCommand ssh -W %h:%p gateway

Host direct
    ProxyJump none
    User root
`

func TestResolveRoute(t *testing.T) {
	route, err := routeFor(t, testConfig, "app", Options{})
	if err != nil {
		t.Fatal(err)
	}
	// app via edge, and edge via its own ProxyJump outer, as ssh does.
	if got, want := names(route), localUser()+"@192.0.2.1:22 > jump@edge.example.com:22 > deploy@10.0.0.5:2200"; got != want {
		t.Fatalf("route %s, want %s", got, want)
	}
	app := route[2]
	home := os.Getenv("HOME")
	if len(app.keys) != 1 || app.keys[0].path != filepath.Join(home, ".ssh", "app_deploy") || !app.keys[0].explicit {
		t.Errorf("IdentityFile: %+v", app.keys)
	}
	if app.connectTimeout != 7*time.Second || app.keepaliveInterval != 4*time.Second || app.keepaliveCount != 9 {
		t.Errorf("timeouts: %v %v %d", app.connectTimeout, app.keepaliveInterval, app.keepaliveCount)
	}
	if app.checkAddr() != "app-key:22" {
		t.Errorf("HostKeyAlias: checkAddr %q", app.checkAddr())
	}
	if app.knownHosts[0] != filepath.Join(home, ".ssh", "known_hosts") || app.writeKnown != app.knownHosts[0] {
		t.Errorf("default known_hosts: %v", app.knownHosts)
	}
	// Default identities for a host without IdentityFile, not explicit.
	if k := route[1].keys; len(k) != 3 || k[0].explicit || !strings.HasSuffix(k[0].path, "id_ed25519") {
		t.Errorf("default keys: %+v", k)
	}

	// Flags win: user, port, identity, known_hosts, timeouts, jump.
	route, err = routeFor(t, testConfig, "ops@app:2022", Options{Identity: "~/id_flag", KnownHosts: "/tmp/kh", ConnectTimeout: time.Second, Jump: "none"})
	if err != nil {
		t.Fatal(err)
	}
	if len(route) != 1 {
		t.Fatalf("--jump none: route %s", names(route))
	}
	app = route[0]
	if app.user != "ops" || app.port != 2022 || app.connectTimeout != time.Second {
		t.Errorf("flags did not override: %s %v", names(route), app.connectTimeout)
	}
	if app.keys[0].path != filepath.Join(os.Getenv("HOME"), "id_flag") || len(app.keys) != 2 {
		t.Errorf("--identity first, then IdentityFile: %+v", app.keys)
	}
	if len(app.knownHosts) != 1 || app.knownHosts[0] != "/tmp/kh" {
		t.Errorf("--known-hosts: %v", app.knownHosts)
	}

	// An explicit jump chain a,b: b is reached through a.
	route, err = routeFor(t, testConfig, "direct", Options{Jump: "u1@h1:1,u2@h2:2"})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(route); got != "u1@h1:1 > u2@h2:2 > root@direct:22" {
		t.Fatalf("chain: %s", got)
	}

	// Patterns, %h, StrictHostKeyChecking no (= accept-new, never "anything goes"), UserKnownHostsFile list.
	route, err = routeFor(t, testConfig, "db.corp", Options{})
	if err != nil {
		t.Fatal(err)
	}
	db := route[0]
	if db.host != "db.corp.example.net" || !db.acceptNew {
		t.Errorf("pattern: host %q acceptNew %v", db.host, db.acceptNew)
	}
	if len(db.knownHosts) < 2 || db.knownHosts[1] != "/tmp/more_known" || db.writeKnown != filepath.Join(os.Getenv("HOME"), "corp_known") {
		t.Errorf("UserKnownHostsFile: %v (write %s)", db.knownHosts, db.writeKnown)
	}
	if db.pin != "" {
		t.Errorf("pin without --host-key")
	}

	if _, err := routeFor(t, testConfig, "loop1", Options{}); err == nil || exit.Code(err) != exit.Usage || !strings.Contains(err.Error(), "loop") {
		t.Errorf("ProxyJump loop: %v", err)
	}
	if _, err := routeFor(t, testConfig, "legacy", Options{}); err == nil || !strings.Contains(err.Error(), "ProxyCommand") || exit.Code(err) != exit.Usage {
		t.Errorf("ProxyCommand: %v", err)
	}
	if _, err := routeFor(t, testConfig, "app", Options{Jump: "bad host"}); exit.Code(err) != exit.Usage {
		t.Errorf("bad --jump: %v", err)
	}
	if _, err := routeFor(t, testConfig, "app", Options{ConfigFile: "/nonexistent/config"}); exit.Code(err) != exit.Usage || !strings.Contains(err.Error(), "/nonexistent/config") {
		t.Errorf("missing --config file: %v", err)
	}
	// "none" reads no config at all.
	route, err = routeFor(t, testConfig, "app", Options{ConfigFile: "none"})
	if err != nil || len(route) != 1 || route[0].host != "app" || route[0].port != 22 {
		t.Errorf("ConfigFile none: %s %v", names(route), err)
	}
}

func TestNormalizePin(t *testing.T) {
	const fp = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"
	for _, in := range []string{fp, strings.TrimPrefix(fp, "SHA256:"), fp + "=", " " + fp + " "} {
		if got, err := normalizePin(in); err != nil || got != fp {
			t.Errorf("normalizePin(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "SHA256:", "MD5:aa:bb", "SHA256:tooshort", fp + "AA"} {
		if _, err := normalizePin(in); exit.Code(err) != exit.Usage {
			t.Errorf("normalizePin(%q): want usage error, got %v", in, err)
		}
	}
}
