package cli

import (
	"github.com/urfave/cli/v2"

	"github.com/slipway-dev/slipway/tools/internal/deploy"
	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/sshx"
)

// targetFlags say where deploy, rollback, status, releases and unlock act:
// the hosts, the directory on them and how to reach them over SSH.
func targetFlags() []cli.Flag {
	return []cli.Flag{
		repeatable("host", []string{"H"}, "`[user@]host[:port]` or ~/.ssh/config alias to act on (repeatable)"),
		&cli.StringFlag{Name: "hosts-file", Usage: "`FILE` with one host per line (# comments), added to --host"},
		&cli.StringFlag{Name: "dir", Usage: "deploy `PATH` on the hosts (relative paths are under the SSH user's home), e.g. /srv/shop"},
		&cli.StringFlag{Name: "identity", Aliases: []string{"i"}, Usage: "private key `FILE` (passphrase from " + sshx.PassphraseEnv + "); default: ssh-agent (SSH_AUTH_SOCK), ssh config IdentityFile, ~/.ssh/id_*"},
		&cli.StringFlag{Name: "known-hosts", Usage: "known_hosts `FILE` host keys are checked against (default ~/.ssh/known_hosts)"},
		&cli.StringFlag{Name: "host-key", Usage: "pin the host key: `SHA256:...` fingerprint (as ssh-keygen -lf prints it), instead of known_hosts"},
		&cli.BoolFlag{Name: "accept-new", Usage: "trust a host seen for the first time and add its key to known_hosts (never a changed key)"},
		&cli.StringFlag{Name: "jump", Usage: "reach the hosts through a bastion `[user@]host[:port]` (its host key is checked too)"},
	}
}

// atLeastOne rejects an explicit value below 1 for the named int flags (the
// deploy package reads 0 as "the default").
func atLeastOne(c *cli.Context, names ...string) error {
	for _, n := range names {
		if c.IsSet(n) && c.Int(n) < 1 {
			return exit.Usagef("--%s %d: want 1 or more", n, c.Int(n))
		}
	}
	return nil
}

// targetOptions reads the target flags. Bad values are reported (exit 2)
// when the command validates them.
func targetOptions(c *cli.Context) deploy.Target {
	return deploy.Target{
		Hosts:     listFlag(c, "host"),
		HostsFile: c.String("hosts-file"),
		Dir:       c.String("dir"),
		SSH: sshx.Options{
			Identity:   c.String("identity"),
			KnownHosts: c.String("known-hosts"),
			HostKey:    c.String("host-key"),
			AcceptNew:  c.Bool("accept-new"),
			Jump:       c.String("jump"),
		},
	}
}

// targetUsage is the target part of the commands' usage lines.
const targetUsage = "(--host [user@]host[:port]... | --hosts-file FILE) --dir PATH [--identity FILE] [--known-hosts FILE]\n" +
	"        [--host-key SHA256:...] [--accept-new] [--jump [user@]host[:port]]"

// composeFlag says how deploy and rollback converge a host.
func composeFlag() cli.Flag {
	return &cli.StringFlag{Name: "compose", Value: deploy.ComposeAuto, EnvVars: []string{"SLIPWAY_COMPOSE"},
		Usage: "how a host's release is converged: `auto` (the server's docker compose or docker-compose; where it has neither, Compose's own code built into slipway drives the server's Docker Engine through the SSH connection), library (always the latter, with containers, logs and pulls through the Engine API too: the server needs Docker Engine and sshd, no Compose and no docker CLI; recreate and rolling, not swarm) or cli (always the server's Compose)"}
}
