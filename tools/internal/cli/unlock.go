package cli

import "github.com/urfave/cli/v2"

// unlockCommand is a placeholder until the command is implemented.
func unlockCommand() *cli.Command {
	return &cli.Command{Name: "unlock", Usage: "(not implemented yet)", Action: func(*cli.Context) error { return errNotImplemented }}
}
