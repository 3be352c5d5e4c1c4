package cli

import (
	"encoding/json"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/slipway-dev/slipway/tools/internal/plan"
)

func planCommand() *cli.Command {
	flags := append(loadFlags(), taggingFlags()...)
	flags = append(flags, serviceFlag(),
		&cli.BoolFlag{Name: "json", Usage: "print the release manifest build would write, as JSON"})
	return &cli.Command{
		Name:  "plan",
		Usage: "show what build would build and how it would tag it, without building",
		UsageText: "slipway plan [-f FILE]... [-p NAME] [--project-directory DIR] [--env-file FILE]... [--profile P]...\n" +
			"             [--registry PREFIX] [--tag TEMPLATE]... [--allow-dirty] [--service S]... [--json]",
		Description: "plan loads the compose project exactly as `docker compose` does (-f files merged in\n" +
			"order, COMPOSE_FILE, COMPOSE_PROJECT_NAME, .env and --env-file, ${VAR:-default},\n" +
			"profiles, extends, include) and lists every service with a build: section, its image\n" +
			"repository and the tags computed from git: the commit from GIT_COMMIT or HEAD, the\n" +
			"branch from BRANCH_NAME / GIT_BRANCH or HEAD, BUILD_NUMBER from Jenkins. It fails as\n" +
			"build would: on a bad compose file, a missing build context or Dockerfile, or a\n" +
			"working tree with uncommitted changes to tracked files (unless --allow-dirty).\n\n" +
			"The project name (it names the images of services without image: and the project on\n" +
			"the servers) is -p, else COMPOSE_PROJECT_NAME, else name: in the compose files; else,\n" +
			"when the project directory is the git checkout's root, the repository's name from the\n" +
			"origin remote's URL, then from Jenkins' GIT_URL (a CI workspace folder such as shop_PR-1\n" +
			"or shop_main@2 is not the app's name); else the project directory's name. The log line\n" +
			"says which source gave it.\n\n" +
			"Examples:\n" +
			"  slipway plan\n" +
			"  slipway plan -f docker-compose.yml -f docker-compose.prod.yml --registry registry.example.com:5000/shop\n" +
			"  slipway plan --tag '{{.ShortCommit}}' --tag '{{.Branch}}-{{.BuildNumber}}' --service api\n" +
			"  slipway plan --tag '{{.Commit}}' --tag '{{if eq .Branch .DefaultBranch}}stable{{end}}'\n" +
			"  slipway plan --json > planned-release.json\n\n" +
			"Exit codes: 0 done; 2 bad input (compose file, flags, dirty tree, not a git repository).",
		Flags: flags,
		Action: func(c *cli.Context) error {
			opts, err := planOptions(c)
			if err != nil {
				return err
			}
			p, err := plan.Load(c.Context, opts)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				data, err := json.MarshalIndent(p.Manifest, "", "  ")
				if err != nil {
					return fmt.Errorf("encoding the manifest: %w", err)
				}
				_, err = fmt.Fprintf(c.App.Writer, "%s\n", data)
				return err
			}
			logger().Printf("project %s (name from %s), commit %s%s, %d image(s) to build", p.Manifest.Project,
				p.ProjectFrom, p.Manifest.ShortCommit, branchNote(p), len(p.Builds))
			return p.WriteTable(c.App.Writer)
		},
	}
}

func branchNote(p *plan.Plan) string {
	s := ""
	if p.Manifest.Branch != "" {
		s = " on " + p.Manifest.Branch
	}
	if p.Manifest.Dirty {
		s += " (dirty)"
	}
	return s
}
