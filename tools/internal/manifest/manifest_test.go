package manifest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/tools/internal/exit"
)

func valid() *Manifest {
	return &Manifest{
		Project: "shop", ComposeFiles: []string{"compose.yaml"},
		Commit:      strings.Repeat("a", 40),
		ShortCommit: strings.Repeat("a", 12),
		Services:    map[string]Service{"api": {Image: "reg:5000/shop-api", Tags: []string{strings.Repeat("a", 40)}}},
	}
}

func TestRoundTrip(t *testing.T) {
	p := filepath.Join(t.TempDir(), DefaultPath)
	m := valid()
	if err := Write(p, m); err != nil {
		t.Fatal(err)
	}
	got, err := Read(p)
	if err != nil {
		t.Fatal(err)
	}
	if got.Services["api"].Ref() != "reg:5000/shop-api:"+strings.Repeat("a", 40) {
		t.Fatalf("ref = %s", got.Services["api"].Ref())
	}
	if got.Pushed() {
		t.Fatal("no digest yet, Pushed must be false")
	}
}

func TestReadErrors(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]struct {
		content string
		want    string
	}{
		"missing":  {"", "not found: run 'slipway build' first"},
		"notjson":  {"{", "not valid JSON"},
		"schema":   {`{"schemaVersion": 9}`, "schemaVersion is 9"},
		"commit":   {`{"schemaVersion":1,"project":"p","commit":"abc","services":{"a":{"image":"x"}}}`, "commit \"abc\" is not a 40-hex"},
		"services": {`{"schemaVersion":1,"project":"p","commit":"` + strings.Repeat("b", 40) + `"}`, "services is empty"},
		"digest":   {`{"schemaVersion":1,"project":"p","commit":"` + strings.Repeat("b", 40) + `","services":{"a":{"image":"x","digest":"md5:1"}}}`, "services.a.digest"},
	}
	for name, c := range cases {
		p := filepath.Join(dir, name+".json")
		if c.content != "" {
			if err := os.WriteFile(p, []byte(c.content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		_, err := Read(p)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to contain %q", name, err, c.want)
		}
		if exit.Code(err) != exit.Usage {
			t.Errorf("%s: exit code %d, want %d", name, exit.Code(err), exit.Usage)
		}
		if !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error does not name the file: %v", name, err)
		}
	}
}
