package cli

import (
	"github.com/urfave/cli/v2"

	"github.com/slipway-dev/slipway/tools/internal/manifest"
	"github.com/slipway-dev/slipway/tools/internal/testrun"
)

func testCommand() *cli.Command {
	return &cli.Command{
		Name:      "test",
		Usage:     "run the compose test stack against the built images, collect JUnit results, always tear down",
		UsageText: "slipway test [-f FILE]... [--service NAME]... [--results DIR] [--results-path [SERVICE:]PATH]... [--timeout D] [--manifest PATH]",
		Description: `Runs the test stack (default docker-compose.test.yml) under a compose project name
unique to the run (<project>-test-<BUILD_TAG>-<random>), so parallel runs on one agent
never collide. Services the release manifest built (same name, or an image: naming the
manifest's repository) run exactly the image build made, by ID (their build: section
is ignored); other services with a build: section are test-only and built here. A test
file can also name a built image as ${SLIPWAY_IMAGE_<SERVICE>}.

Dependencies start first; depends_on conditions (service_started, service_healthy,
service_completed_successfully) are waited for through the Engine API, within
--timeout (counted from creating the stack; building test-only images is not). Then the test services run to completion, their output shown live.
A dependency that dies during the run fails the run and is named.

Test services: --service, else those marked "x-slipway: {test: true}", else those with
"x-slipway: {results: [...]}", else the services no other service depends on.

Results: each --results-path (default: the service's x-slipway.results) is copied
out of its container into DIR/<service>/ even when tests fail or time out; a missing
path is a warning. Every service's log goes to DIR/logs/<service>.log, and
DIR/summary.json records each service's role, outcome, exit code, state, duration
and copied files. The tail of each failing service's log is printed.

Teardown always happens (success, failure, timeout, SIGINT/SIGTERM): containers,
networks and volumes of the run are removed, swept by the compose project label.
To keep runs apart, container_name is dropped and published ports get a free host
port instead of their fixed one.

Exit codes: 0 tests passed; 2 bad input (no test file or service, manifest lacking
an image the stack needs); 3 a test failed, a dependency failed, or the timeout
expired; 130 cancelled; 1 anything else (engine, compose).

Examples:
  slipway test
  slipway test -f docker-compose.test.yml --service tests --results test-results
  slipway test --results-path tests:/app/reports --results-path e2e:/out/junit.xml
  slipway test -f compose.yaml -f compose.test.yaml --timeout 10m
  slipway test --manifest ''      # no manifest: every service builds as compose would`,
		Flags: []cli.Flag{
			repeatable("file", []string{"f"}, "test compose `FILE` (repeatable, merged in order); default: the first of "+joinDefaults()),
			repeatable("service", nil, "test service `NAME` to run to completion (repeatable)"),
			&cli.StringFlag{Name: "results", Value: testrun.DefaultResultsDir, Usage: "`DIR` for results, logs and summary.json"},
			repeatable("results-path", nil, "`[SERVICE:]PATH` in a container to copy into DIR/<service>/ (repeatable); without SERVICE: every test service"),
			&cli.DurationFlag{Name: "timeout", Value: testrun.DefaultTimeout, Usage: "limit from creating the stack to the tests' end, `D` like 30m (0: none)"},
			&cli.StringFlag{Name: "manifest", Value: manifest.DefaultPath, Usage: "release manifest `PATH` written by build ('' for none)"},
		},
		Action: func(c *cli.Context) error {
			opts := testrun.Options{
				Files:        listFlag(c, "file"),
				Services:     listFlag(c, "service"),
				ResultsDir:   c.String("results"),
				ResultsPaths: listFlag(c, "results-path"),
				Timeout:      c.Duration("timeout"),
				Manifest:     c.String("manifest"),
				Log:          logger(),
			}
			_, err := testrun.Run(c.Context, opts)
			return err
		},
	}
}

func joinDefaults() string {
	s := ""
	for i, f := range testrun.DefaultFiles {
		if i > 0 {
			s += ", "
		}
		s += f
	}
	return s
}
