package remote

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/slipway-dev/slipway/tools/internal/sshx"
)

// Library runs the compose commands a deploy needs through Compose's own
// code over the engine API (see deploy's library adapter), so a server
// without Compose can be converged. It is given the host each time: a
// redial replaces the host's connection. Its output goes to the host's log.
type Library interface {
	Up(ctx context.Context, h *Host, release string) error
	Down(ctx context.Context, h *Host, release string) error
	Run(ctx context.Context, h *Host, release, service string, command []string) error
	Scale(ctx context.Context, h *Host, release, service string, n int, start bool) error
	// Configs is ReleaseConfigs through Compose's loader: hashes of every
	// release, the files' digests, no Compose run on the server.
	Configs(ctx context.Context, h *Host, releases []string) (map[string]*ReleaseConfig, error)
	// Name says what converges, for the log ("library 5.0.0").
	Name() string
}

// ErrNeedsComposeCLI is a compose command the library path does not run.
var ErrNeedsComposeCLI = fmt.Errorf("%w (the compose library runs up, down, run and scale only)", ErrNoCompose)

// Up converges release: `compose up -d --remove-orphans`, through the
// library when the host has one. A change: a dry run prints it.
func (h *Host) Up(ctx context.Context, release string) error {
	return h.converge(ctx, release, []string{"up", "-d", "--remove-orphans"}, func() error { return h.Lib.Up(ctx, h, release) })
}

// Down stops release's project, volumes kept: `compose down --remove-orphans`.
func (h *Host) Down(ctx context.Context, release string) error {
	return h.converge(ctx, release, []string{"down", "--remove-orphans"}, func() error { return h.Lib.Down(ctx, h, release) })
}

// RunOneOff is `compose run --rm -T service command...` on release.
func (h *Host) RunOneOff(ctx context.Context, release, service string, command []string) error {
	args := append([]string{"run", "--rm", "-T", service}, command...)
	return h.converge(ctx, release, args, func() error { return h.Lib.Run(ctx, h, release, service, command) })
}

// ScaleService is `compose up --no-deps --no-recreate --scale service=n
// service`, with -d when start, else --no-start.
func (h *Host) ScaleService(ctx context.Context, release, service string, n int, start bool) error {
	args := []string{"up", "--no-start", "--no-deps", "--no-recreate", "--scale", fmt.Sprintf("%s=%d", service, n), service}
	if start {
		args[1] = "-d"
	}
	return h.converge(ctx, release, args, func() error { return h.Lib.Scale(ctx, h, release, service, n, start) })
}

// converge runs args on release with the server's Compose, or lib with the
// library.
func (h *Host) converge(ctx context.Context, release string, args []string, lib func() error) error {
	if h.Lib == nil {
		return h.Compose(ctx, release, args...)
	}
	if h.DryRun {
		h.Planf("%s: %s of %s/releases/%s", h.Lib.Name(), sshx.QuoteArgs(args...), h.Dir, release)
		return nil
	}
	if err := lib(); err != nil {
		return fmt.Errorf("compose %s (%s): %w", strings.Join(args, " "), h.Lib.Name(), err)
	}
	return nil
}

// ReadFiles returns the contents of regular files on the server by absolute
// path, in one session; a path that is not a readable regular file is
// missing from the map.
func (h *Host) ReadFiles(ctx context.Context, paths []string) (map[string][]byte, error) {
	var b strings.Builder
	writeCatFiles(&b, paths)
	out, err := h.runQuiet(ctx, "read files", b.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("reading %s on the server: %w", strings.Join(paths, ", "), err)
	}
	return parseFiles(out, paths)
}

// writeCatFiles writes the script that prints each file as a size line,
// then exactly that many bytes; "-" for no file. parseFilesFrom reads it.
func writeCatFiles(b *strings.Builder, paths []string) {
	for _, p := range paths {
		fmt.Fprintf(b, "f=%s\nif [ -f \"$f\" ] && [ -r \"$f\" ]; then n=$(wc -c <\"$f\") && echo $n && cat \"$f\" || exit 1; else echo -; fi\n", q(p))
	}
}

func parseFiles(out []byte, paths []string) (map[string][]byte, error) {
	return parseFilesFrom(bufio.NewReader(bytes.NewReader(out)), paths)
}

func parseFilesFrom(r *bufio.Reader, paths []string) (map[string][]byte, error) {
	files := map[string][]byte{}
	for _, p := range paths {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, fmt.Errorf("reading %s on the server: output ends early", p)
		}
		line = strings.TrimSpace(line)
		if line == "-" {
			continue
		}
		n, err := strconv.Atoi(line)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("reading %s on the server: unexpected size line %q", p, line)
		}
		data := make([]byte, n)
		if _, err := io.ReadFull(r, data); err != nil {
			return nil, fmt.Errorf("reading %s on the server: file changed while read", p)
		}
		files[p] = data
	}
	return files, nil
}

// LogWriter is the host's log as a writer, a line each; Close flushes it.
func (h *Host) LogWriter() io.WriteCloser { return h.logWriter() }
