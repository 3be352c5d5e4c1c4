package secrets

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSecretScannerFindsEveryEncoding: the scanner itself, without services.
// A scanner that finds nothing proves nothing, so each encoding a leak could
// take is planted and must be found, and clean text must not be.
func TestSecretScannerFindsEveryEncoding(t *testing.T) {
	s := newSecret("registry password", "reg")
	for _, c := range []string{"$", "%", "'", `"`, `\`, " ", "\n"} {
		if !strings.Contains(s.value, c) {
			t.Fatalf("the hostile value lacks %q", c)
		}
	}
	userpass := "someuser:" + s.value
	ns := s.needles(map[string]string{"user:password": userpass})

	js, _ := json.Marshal(map[string]string{"password": s.value})
	// A docker config.json entry, and the same base64 inside a longer blob
	// at each alignment (prefixes of 0, 1 and 2 bytes).
	cfg, _ := json.Marshal(map[string]any{"auths": map[string]any{"reg": map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(userpass))}}})
	planted := map[string]string{
		"raw":              "log line: " + s.value + " end",
		"second line only": "partial: " + strings.Split(s.value, "\n")[1],
		"JSON":             string(js),
		"URL":              "https://x/?p=" + url.QueryEscape(s.value),
		"docker config":    string(cfg),
		"shell-quoted":     `sh -c 'echo '\''` + strings.Split(s.value, "'")[0] + `'\'''`,
	}
	for k := 0; k < 3; k++ {
		blob := base64.URLEncoding.EncodeToString([]byte(strings.Repeat("x", k) + `{"username":"u","password":` + string(js) + `}`))
		planted["X-Registry-Auth, alignment "+string(rune('0'+k))] = "X-Registry-Auth: " + blob
	}
	for name, text := range planted {
		if hs := scanBytes(name, []byte(text), ns); len(hs) == 0 {
			t.Errorf("%s: not found", name)
		}
	}
	other := newSecret("other", "oth")
	if hs := scanBytes("clean", []byte(other.value+" "+base64.StdEncoding.EncodeToString([]byte(other.value))), ns); len(hs) != 0 {
		t.Errorf("another secret's value matched: %v", hs)
	}

	// The tree scan: a planted file is found, the ctime filter and skip work.
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "a", "skipme"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"a/leak.json", "a/skipme/leak"} {
		if err := os.WriteFile(filepath.Join(dir, f), cfg, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "clean"), []byte("nothing"), 0o600); err != nil {
		t.Fatal(err)
	}
	hs, files := scanTree(dir, ns, scanOpts{skip: func(p string) bool { return filepath.Base(p) == "skipme" }})
	if len(files) != 2 || len(hs) == 0 || !strings.HasSuffix(hs[0].where, "a/leak.json") {
		t.Errorf("scanTree: %d files, hits %v; want 2 files and a/leak.json", len(files), hs)
	}
	if _, files := scanTree(dir, ns, scanOpts{changedSince: time.Now().Add(time.Hour)}); len(files) != 0 {
		t.Errorf("changedSince in the future still read %v", files)
	}
	for _, h := range hs {
		if strings.Contains(h.String(), s.marker) {
			t.Errorf("a report shows the secret: %s", h)
		}
	}
	if got := redact("x "+s.value+" y", ns); strings.Contains(got, s.marker) {
		t.Errorf("redact left the secret in %q", got)
	}
}

func TestSecretFitsBcrypt(t *testing.T) {
	if n := len(newSecret("x", "reg").value); n > 72 {
		t.Fatalf("the hostile value is %d bytes; bcrypt (htpasswd) takes at most 72", n)
	}
}
