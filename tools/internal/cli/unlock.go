package cli

import (
	"github.com/urfave/cli/v2"

	"github.com/slipway-dev/slipway/tools/internal/deploy"
)

func unlockCommand() *cli.Command {
	return &cli.Command{
		Name:      "unlock",
		Usage:     "remove the deploy lock a dead deploy left behind",
		UsageText: "slipway unlock " + targetUsage,
		Description: "unlock removes <dir>/.slipway/lock on each host, whoever holds it, and prints\n" +
			"whose it was. Use it only when that deploy is no longer running (a deploy releases its\n" +
			"lock on every exit path; a lock older than --lock-ttl is taken over anyway).\n\n" +
			"Examples:\n" +
			"  slipway unlock --host deploy@app1.example.com --dir /srv/shop\n\n" +
			"Exit codes: 0 done (also when there was no lock); 1 a host could not be reached; 2 bad usage.",
		Flags: targetFlags(),
		Action: func(c *cli.Context) error {
			return deploy.Unlock(c.Context, deploy.InfoOptions{Target: targetOptions(c), Stdout: c.App.Writer, Log: logger()})
		},
	}
}
