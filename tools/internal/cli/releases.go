package cli

import "github.com/urfave/cli/v2"

// releasesCommand is a placeholder until the command is implemented.
func releasesCommand() *cli.Command {
	return &cli.Command{Name: "releases", Usage: "(not implemented yet)", Action: func(*cli.Context) error { return errNotImplemented }}
}
