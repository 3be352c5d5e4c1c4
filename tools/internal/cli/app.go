// Package cli is slipway's command tree: each command parses its flags into an
// options struct and calls one function of an internal package.
package cli

import (
	"os"

	"github.com/urfave/cli/v2"

	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/progress"
	"github.com/slipway-dev/slipway/tools/internal/version"
)

// App returns the slipway command tree.
func App() *cli.App {
	app := &cli.App{
		Name:  "slipway",
		Usage: "build, test, push and deploy docker-compose apps (the helper behind the Jenkins steps)",
		Description: "slipway builds a compose project's images tagged with the git commit, runs its\n" +
			"compose test stack, pushes the images and deploys the digest-pinned compose file\n" +
			"to servers over SSH. Every command after build reads the release manifest\n" +
			"(slipway-release.json) that build wrote.\n\n" +
			"Exit codes: 0 done; 1 failed before changing anything; 2 bad usage or input;\n" +
			"3 tests failed; 4 deploy failed and hosts rolled back; 5 deploy failed and hosts\n" +
			"left changed; 130 cancelled.\n\n" +
			"Cancelling (SIGINT, SIGTERM: a Jenkins abort): SIGPIPE is ignored; a deploy or rollback\n" +
			"rolls back and releases its lock within SLIPWAY_CANCEL_GRACE of the signal (default 20s),\n" +
			"then exits 130, or 5 when the grace ran out (then: slipway rollback --repair).\n" +
			"SLIPWAY_LOG_FILE: also write the log to this file; SLIPWAY_EXIT_FILE: write the exit\n" +
			"code to this file at exit.",
		Version:              version.String(),
		HideVersion:          true,
		EnableBashCompletion: false,
		Commands: []*cli.Command{
			versionCommand(),
			planCommand(),
			buildCommand(),
			pushCommand(),
			testCommand(),
			deployCommand(),
			rollbackCommand(),
			statusCommand(),
			releasesCommand(),
			unlockCommand(),
			docsCommand(),
		},
		// Flag errors are bad usage: exit 2, as the contract says.
		OnUsageError: func(c *cli.Context, err error, _ bool) error {
			return exit.With(exit.Usage, err)
		},
		CommandNotFound: func(c *cli.Context, name string) {
			// urfave prints help; the error below sets the exit code.
		},
		ExitErrHandler: func(*cli.Context, error) {}, // main decides the exit code
	}
	// A subcommand's flag errors are bad usage too (urfave only applies the
	// app's OnUsageError to the app's own flags).
	for _, c := range app.Commands {
		if c.OnUsageError == nil {
			c.OnUsageError = app.OnUsageError
		}
	}
	return app
}

// usageErrors makes every subcommand's flag-parse error exit 2.
func init() {
	cli.OsExiter = func(int) {} // never exit from inside the library
}

// logger is where commands write progress: stderr, one line per event.
func logger() *progress.Logger { return progress.New(os.Stderr) }

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print slipway's version, commit and platform",
		Action: func(c *cli.Context) error {
			_, err := c.App.Writer.Write([]byte(version.String() + "\n"))
			return err
		},
	}
}
