package cli

import (
	"github.com/urfave/cli/v2"

	"github.com/slipway-dev/slipway/tools/internal/deploy"
)

func rollbackCommand() *cli.Command {
	flags := append(targetFlags(),
		&cli.StringFlag{Name: "to", Usage: "release `COMMIT` (or a unique prefix) to go back to; default: the release before current"},
		&cli.IntFlag{Name: "parallel", Value: 1, Usage: "roll back `N` hosts at a time"},
		&cli.DurationFlag{Name: "health-timeout", Value: deploy.DefaultHealthTimeout, Usage: "wait up to `D` for the release's containers to be running and healthy"},
		&cli.StringFlag{Name: "smoke-url", Usage: "after the health gate GET `URL` from the server, expect 2xx"},
		&cli.DurationFlag{Name: "lock-wait", Usage: "wait up to `D` for another deploy's lock"},
		&cli.DurationFlag{Name: "lock-ttl", Value: deploy.DefaultLockTTL, Usage: "a lock not renewed for `D` is stale (its holder died) and taken over with a warning; a running deploy renews its lock every D/4 (1s to 1m); negative: never stale"},
		composeFlag(),
		&cli.BoolFlag{Name: "repair", Usage: "restore a host a deploy or rollback left mid-converge (killed, aborted): converge the release current names again, remove the aborted upload, clear the marker; a dead owner's lock is taken over at once; nothing to do on a whole host"},
		&cli.BoolFlag{Name: "json", Usage: "print the per-host result as JSON on stdout"},
	)
	return &cli.Command{
		Name:      "rollback",
		Usage:     "switch hosts back to an earlier release still kept on them",
		UsageText: "slipway rollback " + targetUsage + "\n        [--to COMMIT | --repair] [--parallel N] [--health-timeout D] [--smoke-url URL] [--lock-wait D] [--json]",
		Description: "rollback takes the deploy lock, converges the chosen release directory again\n" +
			"(`compose -p <project> up -d --remove-orphans` on <dir>/releases/<commit>), waits for the\n" +
			"health gate and switches <dir>/current to it. Its images are still on the host (pruning\n" +
			"keeps those of kept releases); missing ones are pulled with the deploy's credentials. If\n" +
			"the release does not come up healthy, the host goes back to the release it was on.\n" +
			"<project> is the one recorded in the release's release.json when it was first deployed;\n" +
			"rolling back across a rename (deploy --rename-project) takes the current project down\n" +
			"first (volumes kept) and brings the release up under its own project again.\n\n" +
			"--repair is for a host an aborted or killed run left mid-converge (slipway status says\n" +
			"INTERRUPTED or MISSING and exits 5): it converges the release <dir>/current names again\n" +
			"and health-gates it, removes the release the aborted deploy uploaded (it never served),\n" +
			"and clears <dir>/.slipway/deploying. A lock whose owner is provably gone (a process of\n" +
			"this machine that exited) is taken over at once. The Jenkins steps run it after an abort\n" +
			"unless the binary had exited 0, 1 or 2.\n\n" +
			"Examples:\n" +
			"  slipway rollback --host deploy@app1.example.com --dir /srv/shop\n" +
			"  slipway rollback --hosts-file hosts.txt --dir /srv/shop --to 3f2a9c1e\n" +
			"  slipway rollback --host app1 --dir /srv/shop --json\n" +
			"  slipway rollback --host app1 --dir /srv/shop --repair\n\n" +
			"Exit codes: 0 done; 1 failed before changing anything; 2 bad input (no such release);\n" +
			"4 failed and the host is back where it was; 5 failed and left changed; 130 cancelled.",
		Flags: flags,
		Action: func(c *cli.Context) error {
			if err := atLeastOne(c, "parallel"); err != nil {
				return err
			}
			_, err := deploy.Rollback(c.Context, deploy.RollbackOptions{
				Target:        targetOptions(c),
				To:            c.String("to"),
				Parallel:      c.Int("parallel"),
				HealthTimeout: c.Duration("health-timeout"),
				SmokeURL:      c.String("smoke-url"),
				LockWait:      c.Duration("lock-wait"),
				LockTTL:       c.Duration("lock-ttl"),
				Repair:        c.Bool("repair"),
				Compose:       c.String("compose"),
				JSON:          c.Bool("json"),
				Stdout:        c.App.Writer,
				Log:           logger(),
			})
			return err
		},
	}
}
