package cli

import (
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/tools/internal/exit"
)

// Bad flags of the deploy commands exit 2 before any host is contacted
// (the hosts here do not exist: a connection attempt would exit 1).
func TestDeployCommandsBadInputExits2(t *testing.T) {
	t.Chdir(t.TempDir())
	target := []string{"--host", "deploy@192.0.2.1", "--dir", "/srv/app"}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"deploy", "--parallel", "x"}, "parallel"},
		{append([]string{"deploy", "--parallel", "0"}, target...), "--parallel 0"},
		{append([]string{"deploy", "--on-failure", "pray"}, target...), "--on-failure"},
		{append([]string{"deploy", "--strategy", "bluegreen"}, target...), "--strategy"},
		{append([]string{"deploy", "--pre-deploy", "migrate"}, target...), "SERVICE: COMMAND"},
		{append([]string{"deploy", "--smoke-url", "localhost:8080"}, target...), "--smoke-url"},
		{append([]string{"deploy", "--keep", "0"}, target...), "--keep"},
		{append([]string{"deploy", "--health-timeout", "soon"}, target...), "health-timeout"},
		{[]string{"deploy", "--dir", "/srv/app"}, "no hosts"},
		{[]string{"deploy", "--host", "app1"}, "--dir is required"},
		{append([]string{"deploy", "--host", "bad host"}, "--dir", "/srv"), "invalid host"},
		{append([]string{"deploy"}, target...), "slipway-release.json not found"},
		{append([]string{"deploy", "app1"}, target...), "takes no arguments"},
		{append([]string{"rollback", "--to", "HEAD"}, target...), "--to"},
		{[]string{"status", "--hosts-file", "/nonexistent/hosts", "--dir", "/srv"}, "--hosts-file"},
		{[]string{"releases", "--dir", "/srv"}, "no hosts"},
		{[]string{"unlock", "--host", "app1"}, "--dir is required"},
	}
	for _, c := range cases {
		out, err := runApp(c.args...)
		if exit.Code(err) != exit.Usage {
			t.Errorf("%v: exit %d (%v), want 2", c.args, exit.Code(err), err)
			continue
		}
		if !strings.Contains(err.Error()+out, c.want) {
			t.Errorf("%v: error %q does not mention %q", c.args, err, c.want)
		}
	}
}

func TestDeployHelpHasExamples(t *testing.T) {
	for _, cmd := range []string{"deploy", "rollback", "status", "releases", "unlock"} {
		out, err := runApp(cmd, "--help")
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"Examples:", "slipway " + cmd + " --host", "--known-hosts", "Exit codes:"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s --help lacks %q", cmd, want)
			}
		}
	}
}
