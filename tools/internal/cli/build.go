package cli

import "github.com/urfave/cli/v2"

// buildCommand is a placeholder until the command is implemented.
func buildCommand() *cli.Command {
	return &cli.Command{Name: "build", Usage: "(not implemented yet)", Action: func(*cli.Context) error { return errNotImplemented }}
}
