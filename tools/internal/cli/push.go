package cli

import "github.com/urfave/cli/v2"

// pushCommand is a placeholder until the command is implemented.
func pushCommand() *cli.Command {
	return &cli.Command{Name: "push", Usage: "(not implemented yet)", Action: func(*cli.Context) error { return errNotImplemented }}
}
