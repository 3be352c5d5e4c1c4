package remote

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"
)

// File is one file of a release, at a slash-separated path relative to the
// release directory.
type File struct {
	Path   string
	Mode   fs.FileMode // permission bits; 0 means 0644
	Data   []byte
	Secret bool   // never printed (dry run shows only its size)
	Store  string // if set, also placed at <dir>/.slipway/files/<Store> (content-addressed, never rewritten)
}

// completeMarker is the archive's last entry: the remote side renames the
// upload into place only when it arrived, so a cut stream never becomes a release.
const completeMarker = ".slipway-upload-complete"

// Upload writes files into <dir>/releases/<release>/ atomically: a tar stream
// over one session is unpacked into releases/.tmp-<release>-<rand>/ and, once
// complete, renamed into place. A release directory that already exists (the
// same commit deployed again) has its files replaced one rename at a time, so
// running containers' bind mounts keep pointing at a live directory.
func (h *Host) Upload(ctx context.Context, release string, files []File) error {
	if err := validRelease(release); err != nil {
		return err
	}
	sorted := append([]File(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	for _, f := range sorted {
		if err := validRelPath(f.Path); err != nil {
			return fmt.Errorf("release file %q: %w", f.Path, err)
		}
	}
	if h.DryRun {
		var b strings.Builder
		fmt.Fprintf(&b, "upload %s/releases/%s/ (tar into releases/.tmp-%s-*, then rename):", h.Dir, release, release)
		for _, f := range sorted {
			fmt.Fprintf(&b, "\n  %s  %d bytes  mode %04o", f.Path, len(f.Data), perm(f.Mode))
			if f.Store != "" {
				fmt.Fprintf(&b, "  (mounted from %s/.slipway/files/%s)", h.Dir, f.Store)
			}
		}
		h.Planf("%s", b.String())
		return nil
	}
	tmp := ".tmp-" + release + "-" + randHex(6)
	script := h.dirVar() + `set -e
umask 022
r="$d/releases"; f="$r/"` + q(release) + `; t="$r/"` + q(tmp) + `
mkdir -p "$r"
mkdir "$t"
trap 'rm -rf "$t"' EXIT
tar -x -f - -C "$t" --no-same-owner
[ -f "$t/` + completeMarker + `" ] || { echo "upload incomplete" >&2; exit 5; }
rm -f "$t/` + completeMarker + `"
if [ -d "$f" ]; then
  [ -e "$t/.env" ] || rm -f "$f/.env"
  (cd "$t" && find . ! -type d -print) | while IFS= read -r p; do
    mkdir -p "$f/$(dirname "$p")"
    mv -f "$t/$p" "$f/$p"
  done
else
  mv -T "$t" "$f"
fi
` + storeScript(sorted)
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(writeTar(pw, sorted))
	}()
	_, err := h.runQuiet(ctx, "upload", script, pr)
	pr.Close()
	if err != nil {
		return fmt.Errorf("uploading release %s to %s/releases: %w", release, h.Dir, err)
	}
	return nil
}

// storeScript copies files into the content-addressed store: each entry is
// written under a temporary name and renamed into place, and an entry that
// exists is never touched (same name, same content).
func storeScript(files []File) string {
	var b strings.Builder
	for _, f := range files {
		if f.Store == "" {
			continue
		}
		dir, _ := path.Split(f.Store)
		dir = strings.TrimSuffix(dir, "/")
		fmt.Fprintf(&b, "s=\"$d/.slipway/files/\"%s\nif [ ! -e \"$s\" ]; then mkdir -p \"$d/.slipway/files\"; rm -rf \"$s.tmp\"; mkdir -p \"$s.tmp\"; cp -p \"$f/\"%s \"$s.tmp/\"%s; mv -T \"$s.tmp\" \"$s\"; fi\n",
			q(dir), q(f.Path), q(path.Base(f.Store)))
	}
	return b.String()
}

func perm(m fs.FileMode) fs.FileMode {
	if m.Perm() == 0 {
		return 0o644
	}
	return m.Perm()
}

// writeTar streams files (with their parent directories) and the completion marker.
func writeTar(w io.Writer, files []File) error {
	tw := tar.NewWriter(w)
	now := time.Now()
	dirs := map[string]bool{}
	for _, f := range files {
		for d := path.Dir(f.Path); d != "." && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	dirList := make([]string, 0, len(dirs))
	for d := range dirs {
		dirList = append(dirList, d)
	}
	sort.Strings(dirList) // parents sort before children
	for _, d := range dirList {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: now}); err != nil {
			return err
		}
	}
	for _, f := range files {
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: f.Path, Mode: int64(perm(f.Mode)), Size: int64(len(f.Data)), ModTime: now}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(f.Data); err != nil {
			return err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: completeMarker, Mode: 0o600, ModTime: now}); err != nil {
		return err
	}
	return tw.Close()
}

// validRelease accepts release names that are safe as one path element.
func validRelease(r string) error {
	if r == "" || r == "." || r == ".." || strings.HasPrefix(r, ".") || strings.ContainsAny(r, "/\\ \t\n\x00") {
		return fmt.Errorf("invalid release name %q", r)
	}
	return nil
}

// validRelPath accepts clean relative slash paths that stay inside the release.
func validRelPath(p string) error {
	if p == "" || path.IsAbs(p) || path.Clean(p) != p || p == "." || p == ".." || strings.HasPrefix(p, "../") {
		return fmt.Errorf("not a clean relative path inside the release")
	}
	if strings.ContainsAny(p, "\x00\n") {
		return fmt.Errorf("contains NUL or newline")
	}
	if p == completeMarker {
		return fmt.Errorf("reserved name")
	}
	return nil
}
