package cli

import (
	"github.com/urfave/cli/v2"

	"github.com/slipway-dev/slipway/tools/internal/deploy"
)

func releasesCommand() *cli.Command {
	return &cli.Command{
		Name:      "releases",
		Usage:     "list the releases kept on each host, newest first, the current one marked *",
		UsageText: "slipway releases " + targetUsage + " [--json]",
		Description: "releases lists <dir>/releases/ on each host with who deployed each release, when\n" +
			"and from which branch and build; `slipway rollback --to COMMIT` takes any of them.\n\n" +
			"Examples:\n" +
			"  slipway releases --host deploy@app1.example.com --dir /srv/shop\n" +
			"  slipway releases --host app1 --dir /srv/shop --json\n\n" +
			"Exit codes: 0 done; 1 a host could not be read; 2 bad usage.",
		Flags: append(targetFlags(), &cli.BoolFlag{Name: "json", Usage: "print the per-host releases as JSON on stdout"}),
		Action: func(c *cli.Context) error {
			_, err := deploy.Releases(c.Context, deploy.InfoOptions{Target: targetOptions(c), JSON: c.Bool("json"), Stdout: c.App.Writer, Log: logger()})
			return err
		},
	}
}
