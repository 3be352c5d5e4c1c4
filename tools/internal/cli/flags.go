package cli

import (
	"encoding/json"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/plan"
)

// stringList is a repeatable string flag that, unlike cli.StringSliceFlag,
// never splits on commas: a file name or a --tag template may contain one.
type stringList struct{ values []string }

// serialPrefix marks Serialize's output: urfave copies a flag's value to its
// aliases (-f to --file) through Serialize and Set, which must then replace,
// not append.
const serialPrefix = "\x00stringList:"

func (s *stringList) Set(v string) error {
	if rest, ok := strings.CutPrefix(v, serialPrefix); ok {
		return json.Unmarshal([]byte(rest), &s.values)
	}
	s.values = append(s.values, v)
	return nil
}

func (s *stringList) String() string { return strings.Join(s.values, " ") }
func (s *stringList) Get() any       { return s.values }

func (s *stringList) Serialize() string {
	data, _ := json.Marshal(s.values)
	return serialPrefix + string(data)
}

// repeatable makes a fresh repeatable flag (each App() gets its own values).
func repeatable(name string, aliases []string, usage string) cli.Flag {
	return &cli.GenericFlag{Name: name, Aliases: aliases, Usage: usage, Value: &stringList{}}
}

// listFlag returns the values of a repeatable flag, or nil if the command has none.
func listFlag(c *cli.Context, name string) []string {
	if l, ok := c.Generic(name).(*stringList); ok && l != nil {
		return append([]string(nil), l.values...)
	}
	return nil
}

// loadFlags are docker compose's project flags, shared by plan and build.
func loadFlags() []cli.Flag {
	return []cli.Flag{
		repeatable("file", []string{"f"}, "compose `FILE` (repeatable, merged in order); default: COMPOSE_FILE, "+
			"else compose.yaml / docker-compose.yml (+ override) found in the current or a parent directory"),
		&cli.StringFlag{Name: "project-name", Aliases: []string{"p"}, Usage: "compose project `NAME`; default: COMPOSE_PROJECT_NAME, the files' name:, else the project directory's name"},
		&cli.StringFlag{Name: "project-directory", Usage: "project `DIR` relative paths are resolved from; default: the first compose file's directory"},
		repeatable("env-file", nil, "`FILE` of variables for interpolation (repeatable); default: .env in the project directory"),
		repeatable("profile", nil, "activate compose `PROFILE` (repeatable); default: COMPOSE_PROFILES"),
	}
}

// taggingFlags decide the image names and tags, shared by plan and build.
func taggingFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "registry", Usage: "`PREFIX` (host[:port][/path]) for images of services without image:, named <PREFIX>/<project>-<service>"},
		repeatable("tag", nil, "tag `TEMPLATE` (repeatable), a Go template over .Commit .ShortCommit .Branch .BuildNumber .DefaultBranch; "+
			"a template that renders empty is skipped; default: {{.Commit}}, plus latest on the default branch (origin/HEAD's, else main)"),
		&cli.BoolFlag{Name: "allow-dirty", Usage: "build although tracked files have uncommitted changes; every tag gets a -dirty suffix"},
	}
}

// serviceFlag limits plan and build to some services.
func serviceFlag() cli.Flag {
	return repeatable("service", nil, "only this `SERVICE` (repeatable); default: every service with a build: section")
}

// planOptions reads the load, tagging and --service flags into plan.Options.
// WorkDir and Environ stay empty: the current directory and the process
// environment, as docker compose uses them.
func planOptions(c *cli.Context) (plan.Options, error) {
	if r := c.String("registry"); strings.Contains(r, "://") {
		return plan.Options{}, exit.Usagef("--registry %q: give the registry as host[:port][/path], without a scheme", r)
	}
	return plan.Options{
		Files:       listFlag(c, "file"),
		ProjectName: c.String("project-name"),
		ProjectDir:  c.String("project-directory"),
		EnvFiles:    listFlag(c, "env-file"),
		Profiles:    listFlag(c, "profile"),
		Registry:    c.String("registry"),
		Tags:        listFlag(c, "tag"),
		AllowDirty:  c.Bool("allow-dirty"),
		Services:    listFlag(c, "service"),
	}, nil
}
