package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/tools/internal/exit"
)

func TestTestCommandHelpHasExamples(t *testing.T) {
	out, err := runApp("test", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Examples:", "slipway test -f docker-compose.test.yml --service tests",
		"--results-path", "summary.json", "x-slipway", "--timeout"} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q:\n%s", want, out)
		}
	}
}

func TestTestCommandBadInputExits2(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.WriteFile(filepath.Join(dir, "a,b.test.yml"), []byte("services:\n  tests: {image: x}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"test", "extra"}, "test takes no arguments"},
		{[]string{"test", "--timeout", "soon"}, "timeout"},
		{[]string{"test", "--no-such-flag"}, "no-such-flag"},
		{[]string{"test", "--manifest", ""}, "no test compose file: looked for docker-compose.test.yml"},
		{[]string{"test", "--timeout", "-1s", "--manifest", ""}, "--timeout -1s"},
		// A comma is part of the file name, not a list separator; the
		// manifest is read (and found missing) after the file is found.
		{[]string{"test", "-f", "a,b.test.yml"}, "slipway-release.json not found"},
		{[]string{"test", "-f", "a,b.test.yml", "--manifest", "", "--results-path", "tests:rel"}, `--results-path "tests:rel"`},
	}
	for _, c := range cases {
		out, err := runApp(c.args...)
		if exit.Code(err) != exit.Usage {
			t.Errorf("%v: exit %d (%v), want 2", c.args, exit.Code(err), err)
			continue
		}
		if !strings.Contains(err.Error()+out, c.want) {
			t.Errorf("%v: %v / %s, want %q", c.args, err, out, c.want)
		}
	}
}
