package remote

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
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

func TestLibraryRunsUpDownRunAndRefusesTheRest(t *testing.T) {
	lib := &recLib{}
	h := &Host{Lib: lib, Dir: "/srv/app"}
	err := h.Compose(t.Context(), "r", "up", "--no-start", "--scale", "web=2", "web")
	if !errors.Is(err, ErrNeedsComposeCLI) {
		t.Fatalf("a command the library path does not run: %v", err)
	}
	if err := h.Up(t.Context(), "r"); err != nil {
		t.Fatal(err)
	}
	if err := h.Down(t.Context(), "r"); err != nil {
		t.Fatal(err)
	}
	if err := h.RunOneOff(t.Context(), "r", "web", []string{"sh", "-c", "true"}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"up r", "down r", "run r web [sh -c true]"}; !reflect.DeepEqual(lib.calls, want) {
		t.Errorf("library calls %q, want %q", lib.calls, want)
	}
	lib.err = errors.New("boom")
	if err := h.Up(t.Context(), "r"); err == nil || !strings.Contains(err.Error(), "compose up -d --remove-orphans (rec): boom") {
		t.Errorf("library error: %v", err)
	}
}

type recLib struct {
	calls []string
	err   error
}

func (l *recLib) Up(ctx context.Context, h *Host, release string) error {
	l.calls = append(l.calls, "up "+release)
	return l.err
}

func (l *recLib) Down(ctx context.Context, h *Host, release string) error {
	l.calls = append(l.calls, "down "+release)
	return l.err
}

func (l *recLib) Run(ctx context.Context, h *Host, release, service string, command []string) error {
	l.calls = append(l.calls, fmt.Sprintf("run %s %s %v", release, service, command))
	return l.err
}

func (l *recLib) Name() string { return "rec" }
