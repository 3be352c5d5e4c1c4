package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/slipway-dev/slipway/tools/internal/sshx"
)

// Exit statuses of the pull script, so a refused login (nothing changed) is
// told apart from a failed pull.
const (
	exitLogin = 41
	exitPull  = 42
)

// ErrRegistryLogin is a registry login refused on the server (wrong or
// missing credentials): nothing was changed.
var ErrRegistryLogin = errors.New("registry login failed on the server")

// ErrPull is a failed image pull on the server.
var ErrPull = errors.New("pulling images on the server failed")

// Pull makes the release's images present on the server. dockerConfig, when
// not empty, is a config.json with "auths" for the registries; it is sent over
// stdin into a private temporary DOCKER_CONFIG directory that exists only
// for this one session and is removed when it ends (also on failure), so no
// credential stays on the server or shows in any process's argv. Its
// cli-plugins links to the user's, so `docker compose` (a CLI plugin, often
// installed in ~/.docker/cli-plugins) still runs there. registries
// are logged in to first (`docker login` verifies the forwarded credentials).
//
// images are pulled with `docker pull` in parallel, skipping those already
// present (they are pinned by digest, so present means identical); when images
// is empty (an image reference the agent could not read statically),
// `compose pull` of the release does it instead.
func (h *Host) Pull(ctx context.Context, release string, images []string, registries []string, dockerConfig []byte) error {
	if h.eng != nil {
		switch {
		case len(images) == 0:
			return fmt.Errorf("pulling release %s: no image list (the compose library pulls the images of the release as loaded): %w", release, ErrNeedsComposeCLI)
		case h.DryRun:
			h.Planf("engine API through the SSH connection: pull (missing only, in parallel; credentials sent with the requests, nothing written on the server): %s", strings.Join(images, " "))
			return nil
		}
		return h.pullAPI(ctx, images, registries, dockerConfig)
	}
	if h.DryRun {
		if len(dockerConfig) > 0 {
			h.Planf("mktemp -d (private DOCKER_CONFIG), credentials for %s over stdin, docker login (verify) %s", strings.Join(registries, ", "), strings.Join(registries, " "))
		}
		if len(images) > 0 {
			h.Planf("docker pull (missing only, in parallel): %s", strings.Join(images, " "))
		} else {
			h.Planf("%s", sshx.QuoteArgs(h.ComposeArgs(release, "pull")...))
		}
		if len(dockerConfig) > 0 {
			h.Planf("rm -rf the temporary DOCKER_CONFIG")
		}
		return nil
	}
	var b strings.Builder
	b.WriteString("set -u\nexec 3<&0 </dev/null\n")
	// Only missing images are pulled, and only then are credentials needed:
	// an image pinned by digest that is present is the same bytes.
	if len(images) > 0 {
		b.WriteString("missing=\n")
		for _, img := range images {
			fmt.Fprintf(&b, "docker image inspect --format . %s >/dev/null 2>&1 || missing=\"$missing \"%s\n", q(img), q(img))
		}
		b.WriteString("[ -n \"$missing\" ] || exit 0\n")
	}
	if len(dockerConfig) > 0 {
		b.WriteString(`t=$(mktemp -d "${TMPDIR:-/tmp}/slipway-auth.XXXXXXXX") || exit ` + fmt.Sprint(exitLogin) + `
trap 'rm -rf "$t"' EXIT
trap 'rm -rf "$t"; exit 129' HUP INT TERM PIPE
chmod 700 "$t"
(umask 077; cat > "$t/config.json" <&3) || exit ` + fmt.Sprint(exitLogin) + `
p=${DOCKER_CONFIG:-${HOME:-/nonexistent}/.docker}/cli-plugins
[ ! -d "$p" ] || ln -s "$p" "$t/cli-plugins"
DOCKER_CONFIG=$t; export DOCKER_CONFIG
`)
		for _, r := range registries {
			// No -u/-p: docker login verifies the stored credentials, which
			// never appear in a command line.
			fmt.Fprintf(&b, "out=$(docker login %s 2>&1 </dev/null) || { printf '%%s\\n' \"$out\" | grep -v -e '^Authenticating' -e '^ *Info' -e '^$' -e 'non TTY' >&2; echo \"registry login to %s failed on the server: check SLIPWAY_REGISTRY_USER/SLIPWAY_REGISTRY_PASSWORD (or DOCKER_CONFIG)\" >&2; exit %d; }\n", q(r), r, exitLogin)
		}
	}
	if len(images) > 0 {
		b.WriteString("pids=\nfor img in $missing; do docker pull -q \"$img\" >/dev/null & pids=\"$pids $!\"; done\n")
		fmt.Fprintf(&b, "fail=0\nfor p in $pids; do wait $p || fail=1; done\n[ $fail = 0 ] || exit %d\n", exitPull)
	} else {
		fmt.Fprintf(&b, "cd %s && %s || exit %d\n", q(h.Dir+"/releases/"+release), sshx.QuoteArgs(h.ComposeArgs(release, "pull")...), exitPull)
	}
	b.WriteString("exit 0\n")
	w := h.logWriter()
	defer w.Close()
	var stderr bytes.Buffer
	err := h.Conn.Run(ctx, label("pull")+b.String(), bytes.NewReader(dockerConfig), nil, teeWriter{&stderr, w})
	if err == nil {
		return nil
	}
	msg := lastLine(stderr.String())
	switch ExitCode(err) {
	case exitLogin:
		return fmt.Errorf("%w: %s", ErrRegistryLogin, msg)
	case exitPull:
		return fmt.Errorf("%w: %s", ErrPull, msg)
	}
	return fmt.Errorf("%w: %v", ErrPull, concise(err))
}

type teeWriter struct {
	a, b interface{ Write([]byte) (int, error) }
}

func (t teeWriter) Write(p []byte) (int, error) {
	t.a.Write(p)
	return t.b.Write(p)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
