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
		&cli.StringFlag{Name: "builder", Value: "buildkit", EnvVars: []string{"SLIPWAY_BUILDER"},
			Usage: "build with `B`: buildkit (the engine's BuildKit), classic (the engine's classic builder), or a standalone buildkitd at tcp://HOST:PORT or unix:///PATH"},
		&cli.BoolFlag{Name: "label-revision",
			Usage: "stamp the commit into every image as org.opencontainers.image.revision; this makes every image new per commit (unchanged services get new digests, and deploys restart them)"},
	)
	return &cli.Command{
		Name:  "build",
		Usage: "build every service with a build: section, tagged from git, and write the release manifest",
		UsageText: "slipway build [-f FILE]... [-p NAME] [--project-directory DIR] [--env-file FILE]... [--profile P]...\n" +
			"              [--registry PREFIX] [--tag TEMPLATE]... [--allow-dirty] [--service S]...\n" +
			"              [--pull] [--parallel N] [--manifest OUT] [--builder B] [--label-revision]",
		Description: "build plans like `slipway plan`, then builds each image with BuildKit: by default the\n" +
			"engine's embedded BuildKit through the Engine API (no buildx needed), or a standalone\n" +
			"buildkitd (--builder tcp://HOST:PORT or unix:///PATH; the image is then loaded into the\n" +
			"engine), or the engine's classic builder (--builder classic; also used, with a warning,\n" +
			"when the engine has no BuildKit). The Dockerfile frontend is built into slipway, so\n" +
			"heredocs, COPY --link, RUN --mount and named contexts work on any engine with BuildKit\n" +
			"and a \"# syntax=\" line needs no registry. Every compose build key is honoured: context\n" +
			"with .dockerignore, dockerfile (also outside the context, or dockerfile_inline), args,\n" +
			"target, labels, secrets (from a file or an environment variable, served through the\n" +
			"build session only), ssh, additional_contexts (service:NAME too), cache_from/cache_to,\n" +
			"one platform (build.platforms, the service's platform:, or DOCKER_DEFAULT_PLATFORM),\n" +
			"network (default, host, none), extra_hosts, shm_size, ulimits; a key that cannot be\n" +
			"honoured is an error naming the service. Images carry no per-commit labels (only\n" +
			"org.opencontainers.image.source), so identical inputs give the same image ID; the log\n" +
			"says which images came out identical to the previous build's manifest (those keep their\n" +
			"digest, and deploys leave their containers alone). --label-revision adds the commit as\n" +
			"org.opencontainers.image.revision, at the price of new images every commit. --pull\n" +
			"has the engine pull the FROM images first. Up to --parallel builds run at once; an\n" +
			"image built FROM another service's image (depends_on or additional_contexts) waits for\n" +
			"it. Output is plain BuildKit progress, line by line as [service] ...; a failed build\n" +
			"names the service and shows its last output lines, and stops the other builds.\n" +
			"Registry credentials for FROM images: SLIPWAY_REGISTRY_USER and\n" +
			"SLIPWAY_REGISTRY_PASSWORD (for the registry the images are pushed to), else the Docker\n" +
			"config.json. stdout: one line per image, \"<service> <image>:<tag> <image ID>\".\n\n" +
			"A project where no service has build: (image-only: postgres, nextcloud...) builds\n" +
			"nothing: the manifest lists its images under external, and push pins them.\n\n" +
			"Examples:\n" +
			"  slipway build --registry registry.example.com:5000/shop\n" +
			"  slipway build -f docker-compose.yml -f docker-compose.ci.yml --pull --parallel 4\n" +
			"  slipway build --service api --manifest out/api-release.json\n" +
			"  slipway build --builder tcp://buildkitd.internal:1234\n" +
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
				Plan:          opts,
				Pull:          c.Bool("pull"),
				Parallel:      c.Int("parallel"),
				Manifest:      c.String("manifest"),
				Builder:       c.String("builder"),
				LabelRevision: c.Bool("label-revision"),
				Log:           logger(),
				Stdout:        c.App.Writer,
			})
			return err
		},
	}
}
