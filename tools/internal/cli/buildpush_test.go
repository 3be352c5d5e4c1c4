package cli

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/tools/internal/exit"
)

func runApp(args ...string) (string, error) {
	app := App()
	var out bytes.Buffer
	app.Writer = &out
	app.ErrWriter = &out
	err := app.RunContext(context.Background(), append([]string{"slipway"}, args...))
	return out.String(), err
}

func TestBuildPushBadInputExits2(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.json")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"build", "--parallel", "0"}, "--parallel 0"},
		{[]string{"push", "--parallel", "-1"}, "--parallel -1"},
		{[]string{"push", "extra"}, "push takes no arguments"},
		{[]string{"push", "--manifest", missing}, "not found"},
		{[]string{"push", "--no-such-flag"}, "no-such-flag"},
	}
	for _, c := range cases {
		out, err := runApp(c.args...)
		if exit.Code(err) != exit.Usage {
			t.Errorf("%v: exit %d (%v), want 2", c.args, exit.Code(err), err)
			continue
		}
		if !strings.Contains(err.Error()+out, c.want) {
			t.Errorf("%v: error %q lacks %q", c.args, err, c.want)
		}
	}
}

func TestBuildPushHelpHasExamples(t *testing.T) {
	for _, cmd := range []string{"build", "push"} {
		out, err := runApp(cmd, "--help")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "Examples:") || !strings.Contains(out, "slipway "+cmd+" ") || !strings.Contains(out, "Exit codes:") {
			t.Errorf("%s --help lacks examples or exit codes:\n%s", cmd, out)
		}
	}
}
