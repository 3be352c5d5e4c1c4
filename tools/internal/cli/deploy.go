package cli

import (
	"github.com/urfave/cli/v2"

	"github.com/slipway-dev/slipway/tools/internal/deploy"
	"github.com/slipway-dev/slipway/tools/internal/manifest"
)

func deployCommand() *cli.Command {
	flags := append(targetFlags(),
		&cli.StringFlag{Name: "strategy", Value: "recreate", Usage: "how services are replaced: `recreate` (compose up -d: short downtime for changed services), rolling (zero downtime: per changed service the new container starts beside the old, honouring deploy.update_config) or swarm (docker stack deploy on a swarm manager, watched until it converges)"},
		&cli.StringFlag{Name: "manifest", Value: manifest.DefaultPath, Usage: "release manifest `PATH` written by build and push"},
		&cli.StringFlag{Name: "env-file", Usage: "`FILE` uploaded as the release's .env (mode 0600): the runtime variables, e.g. a Jenkins file credential"},
		&cli.IntFlag{Name: "parallel", Value: 1, Usage: "deploy `N` hosts at a time"},
		&cli.BoolFlag{Name: "canary", Usage: "deploy the first host alone first; the rest only if it succeeds"},
		&cli.StringFlag{Name: "on-failure", Value: "rollback", Usage: "when a batch fails: `rollback` the hosts already deployed, or stop (leave them)"},
		&cli.DurationFlag{Name: "health-timeout", Value: deploy.DefaultHealthTimeout, Usage: "wait up to `D` for every container to run (and be healthy where it has a healthcheck)"},
		&cli.StringFlag{Name: "smoke-url", Usage: "after the health gate GET `URL` from the server (through the SSH connection), expect 2xx, e.g. http://localhost:8080/health"},
		&cli.IntFlag{Name: "keep", Value: deploy.DefaultKeep, Usage: "keep `N` releases per host (the current one included); older ones and their images are removed"},
		&cli.DurationFlag{Name: "lock-wait", Usage: "wait up to `D` for another deploy's lock (default: fail at once)"},
		&cli.DurationFlag{Name: "lock-ttl", Value: deploy.DefaultLockTTL, Usage: "a lock not renewed for `D` is stale (its holder died) and taken over with a warning; a running deploy renews its lock every D/4 (1s to 1m); negative: never stale"},
		&cli.StringFlag{Name: "pre-deploy", Usage: "`\"SERVICE: COMMAND\"` run with compose run --rm on the new release before switching (migrations); failure aborts"},
		composeFlag(),
		&cli.BoolFlag{Name: "rename-project", Usage: "deploy even though the host's current release runs under another compose project name: that project is taken down first (compose down without -v, swarm: stack rm; its named volumes are kept and listed), then this one is deployed"},
		&cli.BoolFlag{Name: "dry-run", Usage: "print every remote action (commands, uploads) on stdout and change nothing"},
		&cli.BoolFlag{Name: "json", Usage: "print the per-host result as JSON on stdout"},
	)
	return &cli.Command{
		Name:  "deploy",
		Usage: "deploy the pushed release to servers over SSH, with health gate and automatic rollback",
		UsageText: "slipway deploy " + targetUsage + "\n" +
			"        [--strategy recreate|rolling|swarm] [--manifest PATH] [--env-file FILE] [--parallel N] [--canary]\n" +
			"        [--on-failure rollback|stop] [--health-timeout D] [--smoke-url URL] [--keep N] [--lock-wait D]\n" +
			"        [--pre-deploy \"SERVICE: COMMAND\"] [--rename-project] [--dry-run] [--json]",
		Description: "deploy reads the manifest and the pinned compose file push wrote (every image by\n" +
			"digest) and, on each host over one SSH connection: checks Docker and Compose, takes the\n" +
			"lock <dir>/.slipway/lock, uploads <dir>/releases/<commit>/ atomically (compose.yaml\n" +
			"rendered for the server's Compose, the files it references, .env from --env-file,\n" +
			"release.json), pulls the images with registry credentials that exist on the server only\n" +
			"for the pull (from SLIPWAY_REGISTRY_USER/SLIPWAY_REGISTRY_PASSWORD or DOCKER_CONFIG),\n" +
			"runs the --pre-deploy hook, converges with `compose -p <project> up -d --remove-orphans`,\n" +
			"waits for the health gate (and --smoke-url), then switches <dir>/current and prunes\n" +
			"releases beyond --keep. A failure after the host changed re-deploys the previous release\n" +
			"and prints the failing containers' last log lines. While it converges, <dir>/.slipway/deploying\n" +
			"names the deploy; if it dies there (connection cut, agent killed), the next deploy or\n" +
			"rollback warns about it and converges the host again, and slipway status shows it.\n\n" +
			"--strategy rolling replaces only the services whose image or definition changed, in\n" +
			"dependency order, honouring each one's deploy.update_config (parallelism, delay, order,\n" +
			"failure_action, monitor): the new container starts beside the old one outside the\n" +
			"service's DNS name, joins it once healthy (or running for monitor, default 5s, without a\n" +
			"healthcheck), and the old one is stopped after a drain of 2s (x-slipway-drain on the\n" +
			"service to change it) with its stop_grace_period. A service publishing a fixed host port\n" +
			"or using a named volume is replaced stop-first, with a warning. Any failure rolls the\n" +
			"whole release back the same way. --strategy swarm renders the release for docker stack\n" +
			"deploy and watches every service's update and tasks until they converge or\n" +
			"--health-timeout passes; a failed update is rolled back.\n\n" +
			"The project name (the manifest's, from plan: -p, COMPOSE_PROJECT_NAME, name:, else the\n" +
			"repository's name) is the app's identity on a host: its containers and named volumes carry\n" +
			"it. A release of another project than the one the host's current release runs under is\n" +
			"refused before the lock is taken (exit 2, nothing changed); --rename-project renames\n" +
			"deliberately: the old project goes down (volumes kept and listed), then the new one is\n" +
			"deployed; a failure brings the old one back. Rollbacks run each release under the project\n" +
			"recorded in its release.json. A failed first deploy removes what it created (containers,\n" +
			"networks, and the volumes it created).\n\n" +
			"Hosts resolve through ~/.ssh/config. SSH keys come from ssh-agent or --identity\n" +
			"(passphrase in SLIPWAY_SSH_PASSPHRASE); host keys are checked against known_hosts.\n\n" +
			"Examples:\n" +
			"  slipway deploy --host deploy@app1.example.com --dir /srv/shop --env-file prod.env\n" +
			"  slipway deploy --hosts-file hosts.txt --dir /srv/shop --parallel 2 --canary --smoke-url http://localhost/health\n" +
			"  slipway deploy --host production --dir shop --pre-deploy 'web: python manage.py migrate' --lock-wait 5m\n" +
			"  slipway deploy --host app1 --host app2 --dir /srv/shop --strategy rolling --canary\n" +
			"  slipway deploy --host swarm-manager1 --dir /srv/shop --strategy swarm --health-timeout 5m\n" +
			"  slipway deploy --host app1 --dir /srv/shop --dry-run\n" +
			"  slipway deploy --host app1 --host app2 --dir /srv/shop --json > deploy-result.json\n\n" +
			"Exit codes: 0 deployed; 1 failed before changing anything (SSH, host key, lock, Docker/Compose\n" +
			"missing, registry login); 2 bad input (flags, manifest not pushed, another project runs there);\n" +
			"4 failed and every changed host is back on its previous release; 5 failed and hosts are left\n" +
			"changed; 130 cancelled.",
		Flags: flags,
		Action: func(c *cli.Context) error {
			if err := atLeastOne(c, "parallel", "keep"); err != nil {
				return err
			}
			_, err := deploy.Deploy(c.Context, deploy.Options{
				Target:        targetOptions(c),
				Manifest:      c.String("manifest"),
				Strategy:      c.String("strategy"),
				EnvFile:       c.String("env-file"),
				Parallel:      c.Int("parallel"),
				Canary:        c.Bool("canary"),
				OnFailure:     c.String("on-failure"),
				HealthTimeout: c.Duration("health-timeout"),
				SmokeURL:      c.String("smoke-url"),
				Keep:          c.Int("keep"),
				LockWait:      c.Duration("lock-wait"),
				LockTTL:       c.Duration("lock-ttl"),
				PreDeploy:     c.String("pre-deploy"),
				RenameProject: c.Bool("rename-project"),
				Compose:       c.String("compose"),
				DryRun:        c.Bool("dry-run"),
				JSON:          c.Bool("json"),
				Stdout:        c.App.Writer,
				Log:           logger(),
			})
			return err
		},
	}
}
