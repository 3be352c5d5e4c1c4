package remote

import (
	"context"
	"reflect"
	"testing"
)

func TestParseFiles(t *testing.T) {
	paths := []string{"/r/compose.yaml", "/r/.env", "/r/empty"}
	out := []byte("12\nservices: {}-\n0\n")
	got, err := parseFiles(out, paths)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{"/r/compose.yaml": []byte("services: {}"), "/r/empty": {}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	for _, bad := range []string{"", "12\nshort", "x\n"} {
		if _, err := parseFiles([]byte(bad), paths[:1]); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestLibComposeRefusesWhatItCannotRun(t *testing.T) {
	h := &Host{Lib: nopLib{}}
	if err := h.libCompose(t.Context(), "r", []string{"up", "--no-start", "--scale", "web=2", "web"}); err == nil {
		t.Fatal("no error for a command the library path does not run")
	}
	for _, args := range [][]string{{"up", "-d", "--remove-orphans"}, {"down", "--remove-orphans"}, {"run", "--rm", "-T", "web", "sh", "-c", "true"}} {
		if err := h.libCompose(t.Context(), "r", args); err != nil {
			t.Errorf("%v: %v", args, err)
		}
	}
}

type nopLib struct{}

func (nopLib) Up(ctx context.Context, h *Host, release string) error   { return nil }
func (nopLib) Down(ctx context.Context, h *Host, release string) error { return nil }
func (nopLib) Run(ctx context.Context, h *Host, release, service string, command []string) error {
	return nil
}
func (nopLib) Name() string { return "nop" }
