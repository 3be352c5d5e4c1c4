package cli

import "github.com/urfave/cli/v2"

// docsCommand is a placeholder until the command is implemented.
func docsCommand() *cli.Command {
	return &cli.Command{Name: "docs", Usage: "(not implemented yet)", Action: func(*cli.Context) error { return errNotImplemented }}
}
