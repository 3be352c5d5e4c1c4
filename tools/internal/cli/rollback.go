package cli

import "github.com/urfave/cli/v2"

// rollbackCommand is a placeholder until the command is implemented.
func rollbackCommand() *cli.Command {
	return &cli.Command{Name: "rollback", Usage: "(not implemented yet)", Action: func(*cli.Context) error { return errNotImplemented }}
}
