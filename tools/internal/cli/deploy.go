package cli

import "github.com/urfave/cli/v2"

// deployCommand is a placeholder until the command is implemented.
func deployCommand() *cli.Command {
	return &cli.Command{Name: "deploy", Usage: "(not implemented yet)", Action: func(*cli.Context) error { return errNotImplemented }}
}
