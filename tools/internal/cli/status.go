package cli

import (
	"github.com/urfave/cli/v2"

	"github.com/slipway-dev/slipway/tools/internal/deploy"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:      "status",
		Usage:     "show each host's current release and its containers' state and health",
		UsageText: "slipway status " + targetUsage + " [--json]",
		Description: "status reads, per host: the release <dir>/current points to, who deployed it,\n" +
			"when and from which build (its release.json), the deploy lock if held, a deploy that is\n" +
			"converging or was interrupted mid-converge (INTERRUPTED: its process is gone; slipway\n" +
			"rollback --repair or the next deploy or rollback repairs it), each service of the current\n" +
			"release as serving, missing (no container), other-release or not-running, a lock left by\n" +
			"a process that is gone, and the state and health of every container of the compose\n" +
			"project. It changes nothing.\n\n" +
			"Examples:\n" +
			"  slipway status --host deploy@app1.example.com --dir /srv/shop\n" +
			"  slipway status --hosts-file hosts.txt --dir /srv/shop --json | jq '.[].current'\n\n" +
			"Exit codes: 0 done; 1 a host could not be read (SSH, host key); 2 bad usage; 5 a host is\n" +
			"left changed (interrupted, a service missing or on another release, a dead owner's lock):\n" +
			"run slipway rollback --repair.",
		Flags: append(targetFlags(), &cli.BoolFlag{Name: "json", Usage: "print the per-host status as JSON on stdout"}),
		Action: func(c *cli.Context) error {
			_, err := deploy.Status(c.Context, deploy.InfoOptions{Target: targetOptions(c), JSON: c.Bool("json"), Stdout: c.App.Writer, Log: logger()})
			return err
		},
	}
}
