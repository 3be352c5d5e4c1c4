package cli

import "github.com/urfave/cli/v2"

// planCommand is a placeholder until the command is implemented.
func planCommand() *cli.Command {
	return &cli.Command{Name: "plan", Usage: "(not implemented yet)", Action: func(*cli.Context) error { return errNotImplemented }}
}
