package regauth

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func envFunc(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func writeConfig(t *testing.T, v any) string {
	t.Helper()
	dir := t.TempDir()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestHostOf(t *testing.T) {
	for ref, want := range map[string]string{
		"postgres:15":                  "docker.io",
		"library/nginx":                "docker.io",
		"docker.io/library/nginx:1":    "docker.io",
		"index.docker.io/foo/bar":      "docker.io",
		"10.213.0.1:5443/shop/api:abc": "10.213.0.1:5443",
		"Registry.Example.com/a/b@sha256:" + strings.Repeat("a", 64): "registry.example.com",
		"localhost:5000/x": "localhost:5000",
	} {
		got, err := HostOf(ref)
		if err != nil {
			t.Errorf("HostOf(%q): %v", ref, err)
			continue
		}
		if got != want {
			t.Errorf("HostOf(%q) = %q, want %q", ref, got, want)
		}
	}
	if _, err := HostOf("has space/x"); err == nil {
		t.Error("HostOf accepted an invalid reference")
	}
}

func TestEnvOnlyForItsHosts(t *testing.T) {
	dir := writeConfig(t, map[string]any{"auths": map[string]any{
		"https://index.docker.io/v1/": map[string]string{"auth": b64("hubuser:hubpass")},
	}})
	s := New(Options{
		Getenv:   envFunc(map[string]string{EnvUser: "ci", EnvPassword: "s3cret", "DOCKER_CONFIG": dir}),
		EnvHosts: []string{"reg.example:5000"},
	})
	a, err := s.For("reg.example:5000")
	if err != nil {
		t.Fatal(err)
	}
	if a.Username != "ci" || a.Password != "s3cret" || !strings.HasPrefix(a.Source, "env ") {
		t.Fatalf("env credentials not used: %+v", a)
	}
	// Docker Hub is not a slipway push target: its credentials come from config.json.
	hub, err := s.ForRef("postgres:15")
	if err != nil {
		t.Fatal(err)
	}
	if hub.Username != "hubuser" || hub.ServerAddress != IndexServer {
		t.Fatalf("hub credentials wrong: %+v", hub)
	}
	if !strings.Contains(hub.Source, filepath.Join(dir, "config.json")) {
		t.Fatalf("source %q does not name the config file", hub.Source)
	}
	if strings.Contains(a.String(), "s3cret") || strings.Contains(hub.String(), "hubpass") {
		t.Fatal("String() shows a secret")
	}
}

func TestOnlyOneEnvVarIsAnError(t *testing.T) {
	s := New(Options{Getenv: envFunc(map[string]string{EnvUser: "ci", "HOME": t.TempDir()}), EnvHosts: []string{"r:1"}})
	_, err := s.For("r:1")
	if err == nil || !strings.Contains(err.Error(), EnvPassword) {
		t.Fatalf("want an error naming %s, got %v", EnvPassword, err)
	}
}

func TestConfigKeyMatching(t *testing.T) {
	dir := writeConfig(t, map[string]any{"auths": map[string]any{
		"https://reg.example:5000/v2/": map[string]string{"auth": b64("u1:p:with:colons")},
		"other.example":                map[string]string{"username": "u2", "password": "p2"},
		"docker.io":                    map[string]string{"identitytoken": "tok"},
	}})
	s := New(Options{Getenv: envFunc(map[string]string{"DOCKER_CONFIG": dir})})
	cases := []struct{ host, user, pass, tok string }{
		{"reg.example:5000", "u1", "p:with:colons", ""},
		{"other.example", "u2", "p2", ""},
		{"index.docker.io", "", "", "tok"},
		{"unknown.example", "", "", ""},
	}
	for _, c := range cases {
		a, err := s.For(c.host)
		if err != nil {
			t.Fatal(err)
		}
		if a.Username != c.user || a.Password != c.pass || a.IdentityToken != c.tok {
			t.Errorf("%s: got %+v", c.host, a)
		}
	}
	a, _ := s.For("unknown.example")
	if !a.Anonymous() || a.Encoded() != "" {
		t.Errorf("unknown host should be anonymous: %+v", a)
	}
}

func TestBadConfigNamesFile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "config.json"), []byte("{nope"), 0o600)
	s := New(Options{Getenv: envFunc(map[string]string{"DOCKER_CONFIG": dir})})
	_, err := s.For("r.example")
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "config.json")) {
		t.Fatalf("want error naming the config file, got %v", err)
	}
	dir2 := writeConfig(t, map[string]any{"auths": map[string]any{"r.example": map[string]string{"auth": "!!"}}})
	s = New(Options{Getenv: envFunc(map[string]string{"DOCKER_CONFIG": dir2})})
	if _, err := s.For("r.example"); err == nil || !strings.Contains(err.Error(), "base64") {
		t.Fatalf("want base64 error, got %v", err)
	}
}

// installHelper puts a real docker-credential-<name> program on PATH that
// speaks the helper protocol: "get" reads the server URL on stdin.
func installHelper(t *testing.T, name, script string) {
	t.Helper()
	bin := t.TempDir()
	p := filepath.Join(bin, "docker-credential-"+name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
}

func TestCredentialHelpers(t *testing.T) {
	installHelper(t, "slwtest", `
[ "$1" = get ] || exit 1
read url
case "$url" in
  reg.example:5000) echo '{"ServerURL":"reg.example:5000","Username":"helperuser","Secret":"helperpass"}';;
  https://index.docker.io/v1/) echo '{"ServerURL":"x","Username":"<token>","Secret":"idtok"}';;
  *) echo "credentials not found in native keychain"; exit 1;;
esac
`)
	dir := writeConfig(t, map[string]any{
		"credHelpers": map[string]string{"reg.example:5000": "slwtest"},
		"credsStore":  "slwtest",
		"auths":       map[string]any{"fallback.example": map[string]string{"auth": b64("fu:fp")}},
	})
	s := New(Options{Getenv: envFunc(map[string]string{"DOCKER_CONFIG": dir})})

	a, err := s.For("reg.example:5000")
	if err != nil {
		t.Fatal(err)
	}
	if a.Username != "helperuser" || a.Password != "helperpass" || a.Source != "credential helper docker-credential-slwtest" {
		t.Fatalf("credHelpers: %+v", a)
	}
	hub, err := s.For("docker.io")
	if err != nil {
		t.Fatal(err)
	}
	if hub.IdentityToken != "idtok" || hub.Username != "" {
		t.Fatalf("credsStore token: %+v", hub)
	}
	// Not in the store: docker falls back to the file's auths.
	fb, err := s.For("fallback.example")
	if err != nil {
		t.Fatal(err)
	}
	if fb.Username != "fu" || !strings.HasPrefix(fb.Source, "config.json") {
		t.Fatalf("fallback: %+v", fb)
	}
}

func TestMissingHelperNamesIt(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	dir := writeConfig(t, map[string]any{"credsStore": "nosuchhelper"})
	s := New(Options{Getenv: envFunc(map[string]string{"DOCKER_CONFIG": dir})})
	_, err := s.For("r.example")
	if err == nil || !strings.Contains(err.Error(), "docker-credential-nosuchhelper") {
		t.Fatalf("want error naming the helper, got %v", err)
	}
}

func TestEncoded(t *testing.T) {
	a := Auth{Host: "r:1", ServerAddress: "r:1", Username: "u", Password: "p"}
	raw, err := base64.URLEncoding.DecodeString(a.Encoded())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if m["username"] != "u" || m["password"] != "p" || m["serveraddress"] != "r:1" {
		t.Fatalf("encoded: %v", m)
	}
}
