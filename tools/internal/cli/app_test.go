package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/tools/internal/exit"
)

func run(t *testing.T, args ...string) (int, string) {
	t.Helper()
	app := App()
	var out bytes.Buffer
	app.Writer, app.ErrWriter = &out, &out
	err := app.RunContext(context.Background(), append([]string{"slipway"}, args...))
	if err != nil {
		out.WriteString(err.Error())
	}
	return exit.Code(err), out.String()
}

func TestUnknownCommandIsUsageError(t *testing.T) {
	for _, tc := range []struct{ arg, want string }{
		{"deploi", `did you mean deploy?`},
		{"stat", `did you mean status?`},
		{"rolback", `did you mean rollback?`},
		{"frobnicate", `"frobnicate" is not a slipway command (slipway help`},
	} {
		code, out := run(t, tc.arg, "--host", "x")
		if code != exit.Usage || !strings.Contains(out, tc.want) {
			t.Errorf("slipway %s: exit %d, output %q; want exit %d and %q", tc.arg, code, out, exit.Usage, tc.want)
		}
	}
	if code, out := run(t); code != 0 || !strings.Contains(out, "COMMANDS") {
		t.Errorf("slipway without arguments: exit %d, %q; want the help and exit 0", code, out)
	}
}

func TestEveryCommandRefusesStrayArguments(t *testing.T) {
	for _, c := range App().Commands {
		if c.Name == "help" {
			continue
		}
		code, out := run(t, c.Name, "stray")
		if code != exit.Usage || !strings.Contains(out, c.Name+` takes no arguments (got "stray")`) {
			t.Errorf("slipway %s stray: exit %d, %q; want exit 2 naming the argument", c.Name, code, out)
		}
	}
	if _, out := run(t, "status", "app1"); !strings.Contains(out, "--host") {
		t.Errorf("status with a positional host should point at --host: %q", out)
	}
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		d    int
	}{{"deploy", "deploi", 1}, {"", "abc", 3}, {"status", "stat", 2}, {"push", "push", 0}, {"build", "pull", 3}} {
		if got := editDistance(tc.a, tc.b); got != tc.d {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.d)
		}
	}
}
