// Package cli is slipway's command tree: each command parses its flags into an
// options struct and calls one function of an internal package.
package cli

import (
	"fmt"
	"os"
	"strings"

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
		// A first argument that is no command reaches the app's Action (urfave
		// would show help and exit 0, so `slipway deploi` looked like success).
		Action: func(c *cli.Context) error {
			if !c.Args().Present() {
				return cli.ShowAppHelp(c)
			}
			return unknownCommand(c.App.Commands, c.Args().First())
		},
		CommandNotFound: func(c *cli.Context, name string) {
			// `slipway help deploi`: help exits 0 either way; say what is wrong.
			fmt.Fprintf(c.App.ErrWriter, "slipway: %v\n", unknownCommand(c.App.Commands, name))
		},
		ExitErrHandler: func(*cli.Context, error) {}, // main decides the exit code
	}
	// A subcommand's flag errors are bad usage too (urfave only applies the
	// app's OnUsageError to the app's own flags).
	for _, c := range app.Commands {
		if c.OnUsageError == nil {
			c.OnUsageError = app.OnUsageError
		}
		// No command takes positional arguments; a stray one is most often a
		// flag with its dashes lost, so refuse it rather than ignore it.
		if c.Before == nil {
			c.Before = noArguments
		}
	}
	return app
}

// unknownCommand is the exit-2 error for a name that is no command, with the
// nearest command names when one is close.
func unknownCommand(cmds []*cli.Command, name string) error {
	var near []string
	for _, c := range cmds {
		for _, n := range c.Names() {
			if d := editDistance(n, name); d <= 2 || (len(name) >= 3 && strings.HasPrefix(n, name)) {
				near = append(near, n)
			}
		}
	}
	if len(near) > 0 {
		return exit.Usagef("%q is not a slipway command; did you mean %s? (slipway help lists the commands)", name, strings.Join(near, " or "))
	}
	return exit.Usagef("%q is not a slipway command (slipway help lists the commands)", name)
}

// noArguments refuses positional arguments; a command that takes none and
// has its own, more specific message sets Before itself or checks in Action.
func noArguments(c *cli.Context) error {
	if !c.Args().Present() {
		return nil
	}
	hint := "flags start with --"
	switch {
	case c.Command.Name == "test":
		hint = "name test services with --service NAME"
	case hasFlag(c.Command, "host"):
		hint = "give hosts with --host [user@]host[:port] or --hosts-file FILE"
	}
	return exit.Usagef("%s takes no arguments (got %q): %s (slipway %s --help lists the flags)", c.Command.Name, c.Args().First(), hint, c.Command.Name)
}

func hasFlag(c *cli.Command, name string) bool {
	for _, f := range c.Flags {
		for _, n := range f.Names() {
			if n == name {
				return true
			}
		}
	}
	return false
}

// editDistance is the Levenshtein distance of two short command names.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
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
