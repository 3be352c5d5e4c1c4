package cli

import (
	"github.com/urfave/cli/v2"

	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/manifest"
	"github.com/slipway-dev/slipway/tools/internal/pinned"
	"github.com/slipway-dev/slipway/tools/internal/push"
)

func pushCommand() *cli.Command {
	return &cli.Command{
		Name:      "push",
		Usage:     "push the built images, record their digests and write the digest-pinned compose file",
		UsageText: "slipway push [--manifest PATH] [--parallel N] [--pinned OUT] [--json]",
		Description: "push reads the manifest that build wrote and pushes every tag of every image, up to\n" +
			"--parallel images at a time. A push counts only when the engine's progress stream ends\n" +
			"without an error; the digest it reports is then checked with the registry itself.\n" +
			"Transient registry errors (429, 5xx, connection resets) are retried with backoff; a\n" +
			"refused login fails at once, naming the registry and where the credentials came from.\n" +
			"Credentials: SLIPWAY_REGISTRY_USER and SLIPWAY_REGISTRY_PASSWORD (used only for the\n" +
			"registry the built images go to), else the Docker config.json ($DOCKER_CONFIG or\n" +
			"~/.docker/config.json: auths, credHelpers, credsStore).\n\n" +
			"Then push writes the pinned compose file: the merged compose model with each built\n" +
			"service's build: replaced by image: <repo>@sha256:<digest>, every other image resolved\n" +
			"to its digest through the registry, ${VAR} kept for the server's .env, relative paths\n" +
			"kept. The digests and the file's path go into the manifest. An image-only project\n" +
			"(no service has build:) pushes nothing: push pins its images and writes the file.\n\n" +
			"stdout: one \"<service> <image>@<digest>\" line per built image, or with --json the\n" +
			"updated manifest.\n\n" +
			"Examples:\n" +
			"  SLIPWAY_REGISTRY_USER=ci SLIPWAY_REGISTRY_PASSWORD=... slipway push\n" +
			"  slipway push --manifest out/release.json --pinned out/compose.pinned.yml\n" +
			"  slipway push --parallel 8 --json > pushed.json\n\n" +
			"Exit codes: 0 done; 1 push failed (registry refused, unreachable, engine error);\n" +
			"2 bad input (manifest missing or invalid, bad flags); 130 cancelled.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "manifest", Value: manifest.DefaultPath, Usage: "release manifest `PATH` to read and update"},
			&cli.IntFlag{Name: "parallel", Value: push.DefaultParallel, Usage: "push at most `N` images at a time"},
			&cli.StringFlag{Name: "pinned", Value: pinned.DefaultPath, Usage: "write the digest-pinned compose file to `OUT`"},
			&cli.BoolFlag{Name: "json", Usage: "print the updated manifest as JSON"},
		},
		Action: func(c *cli.Context) error {
			if c.Int("parallel") < 1 {
				return exit.Usagef("--parallel %d: give 1 or more", c.Int("parallel"))
			}
			_, err := push.Run(c.Context, push.Options{
				Manifest: c.String("manifest"),
				Parallel: c.Int("parallel"),
				Pinned:   c.String("pinned"),
				JSON:     c.Bool("json"),
				Log:      logger(),
				Stdout:   c.App.Writer,
			})
			return err
		},
	}
}
