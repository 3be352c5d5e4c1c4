package remote

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strings"
)

// ReleaseSource is what a release directory holds, as Compose reads it:
// its compose file and .env, and a digest of every file in it.
type ReleaseSource struct {
	Dir     string            // the release directory on the server
	Compose []byte            // compose.yaml
	DotEnv  []byte            // .env, nil when there is none
	Digests map[string]string // path relative to Dir -> sha256 (.env excluded: it is part of the definition)
}

// ReadRelease reads a release directory in one session; nil (and no error)
// when the directory is not on the server.
func (h *Host) ReadRelease(ctx context.Context, release string) (*ReleaseSource, error) {
	if err := validRelease(release); err != nil {
		return nil, err
	}
	dir := h.Dir + "/releases/" + release
	paths := []string{dir + "/compose.yaml", dir + "/.env"}
	var b strings.Builder
	fmt.Fprintf(&b, "[ -d %s ] || { echo gone; exit 0; }\necho ok\n", q(dir))
	writeCatFiles(&b, paths)
	fmt.Fprintf(&b, "cd %s && find . -type f ! -name .env -exec sha256sum {} +\n", q(dir))
	out, err := h.runQuiet(ctx, "read release", b.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("reading release %s on the server: %w", release, err)
	}
	first, rest, _ := bytes.Cut(out, []byte("\n"))
	if string(first) == "gone" {
		return nil, nil
	}
	// The two files, then the digests.
	r := bufio.NewReader(bytes.NewReader(rest))
	files, err := parseFilesFrom(r, paths)
	if err != nil {
		return nil, err
	}
	src := &ReleaseSource{Dir: dir, Compose: files[paths[0]], DotEnv: files[paths[1]], Digests: map[string]string{}}
	if src.Compose == nil {
		return nil, fmt.Errorf("%s is missing on the server", paths[0])
	}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		sum, p, ok := strings.Cut(sc.Text(), "  ")
		if ok {
			src.Digests[strings.TrimPrefix(p, "./")] = sum
		}
	}
	return src, nil
}
