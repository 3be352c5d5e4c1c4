package cli

import "github.com/urfave/cli/v2"

// testCommand is a placeholder until the command is implemented.
func testCommand() *cli.Command {
	return &cli.Command{Name: "test", Usage: "(not implemented yet)", Action: func(*cli.Context) error { return errNotImplemented }}
}
