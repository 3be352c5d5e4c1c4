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

func TestLibraryRunsUpDownRunScaleAndRefusesTheRest(t *testing.T) {
	lib := &recLib{}
	h := &Host{Lib: lib, Dir: "/srv/app"}
	err := h.Compose(t.Context(), "r", "pull")
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
	if err := h.ScaleService(t.Context(), "r", "web", 3, false); err != nil {
		t.Fatal(err)
	}
	if _, err := h.ReleaseConfigs(t.Context(), []string{"r"}, nil); err != nil {
		t.Fatal(err)
	}
	if want := []string{"up r", "down r", "run r web [sh -c true]", "scale r web=3 start=false", "configs [r]"}; !reflect.DeepEqual(lib.calls, want) {
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

func (l *recLib) Scale(ctx context.Context, h *Host, release, service string, n int, start bool) error {
	l.calls = append(l.calls, fmt.Sprintf("scale %s %s=%d start=%v", release, service, n, start))
	return l.err
}

func (l *recLib) Configs(ctx context.Context, h *Host, releases []string) (map[string]*ReleaseConfig, error) {
	l.calls = append(l.calls, fmt.Sprintf("configs %v", releases))
	return nil, l.err
}

func (l *recLib) Name() string { return "rec" }
