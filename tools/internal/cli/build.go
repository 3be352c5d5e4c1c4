package cli

import (
	"github.com/urfave/cli/v2"

	"github.com/slipway-dev/slipway/tools/internal/build"
	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/manifest"
)

func buildCommand() *cli.Command {
	flags := append(loadFlags(), taggingFlags()...)
	flags = append(flags, serviceFlag(),
		&cli.BoolFlag{Name: "pull", Usage: "always pull a newer version of the base images (FROM)"},
		&cli.IntFlag{Name: "parallel", Value: build.DefaultParallel, Usage: "build at most `N` images at a time (dependencies between built images are respected)"},
		&cli.StringFlag{Name: "manifest", Value: manifest.DefaultPath, Usage: "write the release manifest to `OUT`"},
	)
	return &cli.Command{
		Name:  "build",
		Usage: "build every service with a build: section, tagged from git, and write the release manifest",
		UsageText: "slipway build [-f FILE]... [-p NAME] [--project-directory DIR] [--env-file FILE]... [--profile P]...\n" +
			"              [--registry PREFIX] [--tag TEMPLATE]... [--allow-dirty] [--service S]...\n" +
			"              [--pull] [--parallel N] [--manifest OUT]",
		Description: "build plans like `slipway plan`, then builds each image through the Docker Engine API\n" +
			"(the classic builder): build context with .dockerignore, dockerfile (also outside the\n" +
			"context, or dockerfile_inline), args, target, labels, cache_from, extra_hosts, network,\n" +
			"shm_size. Every image gets every computed tag and the OCI labels\n" +
			"org.opencontainers.image.revision/source/created/version. Up to --parallel builds run\n" +
			"at once; an image built FROM another service's image (depends_on or\n" +
			"additional_contexts) waits for it. Output is streamed line by line as [service] ...;\n" +
			"a failed build names the service and shows the failing step's output, and stops the\n" +
			"other builds. Registry credentials for FROM images: SLIPWAY_REGISTRY_USER and\n" +
			"SLIPWAY_REGISTRY_PASSWORD (for the registry the images are pushed to), else the Docker\n" +
			"config.json. stdout: one line per image, \"<service> <image>:<tag> <image ID>\".\n\n" +
			"A project where no service has build: (image-only: postgres, nextcloud...) builds\n" +
			"nothing: the manifest lists its images under external, and push pins them.\n\n" +
			"Examples:\n" +
			"  slipway build --registry registry.example.com:5000/shop\n" +
			"  slipway build -f docker-compose.yml -f docker-compose.ci.yml --pull --parallel 4\n" +
			"  slipway build --service api --manifest out/api-release.json\n" +
			"  slipway build --tag '{{.ShortCommit}}' --tag 'build-{{.BuildNumber}}'\n\n" +
			"Exit codes: 0 done; 1 a build or the engine failed; 2 bad input (compose file, flags,\n" +
			"missing Dockerfile, dirty tree); 130 cancelled.",
		Flags: flags,
		Action: func(c *cli.Context) error {
			opts, err := planOptions(c)
			if err != nil {
				return err
			}
			if c.Int("parallel") < 1 {
				return exit.Usagef("--parallel %d: give 1 or more", c.Int("parallel"))
			}
			_, err = build.Run(c.Context, build.Options{
				Plan:     opts,
				Pull:     c.Bool("pull"),
				Parallel: c.Int("parallel"),
				Manifest: c.String("manifest"),
				Log:      logger(),
				Stdout:   c.App.Writer,
			})
			return err
		},
	}
}
