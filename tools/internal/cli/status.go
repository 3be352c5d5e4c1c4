package cli

import "github.com/urfave/cli/v2"

// statusCommand is a placeholder until the command is implemented.
func statusCommand() *cli.Command {
	return &cli.Command{Name: "status", Usage: "(not implemented yet)", Action: func(*cli.Context) error { return errNotImplemented }}
}
