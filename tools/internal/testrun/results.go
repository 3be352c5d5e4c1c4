package testrun

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// maxResultBytes bounds what one results path may unpack to: JUnit files are
// small, and a runaway path (a whole /) must not fill the agent's disk.
const maxResultBytes = 2 << 30

// untar unpacks a `docker cp` style archive into dest and returns the files it
// wrote, relative to dest. Entries that would land outside dest, device files
// and links pointing out of dest are skipped.
func untar(r io.Reader, dest string) ([]string, error) {
	tr := tar.NewReader(r)
	var files []string
	var total int64
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, nil
		}
		if err != nil {
			return files, fmt.Errorf("reading archive: %w", err)
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "/"))
		if name == "." || name == ".." || strings.HasPrefix(name, "../") {
			continue
		}
		target := filepath.Join(dest, filepath.FromSlash(name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return files, err
			}
		case tar.TypeReg:
			total += h.Size
			if total > maxResultBytes {
				return files, fmt.Errorf("results larger than %d bytes: stopped at %s", int64(maxResultBytes), name)
			}
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return files, err
			}
			f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode)&0o755|0o644)
			if err != nil {
				return files, err
			}
			if _, err := io.Copy(f, io.LimitReader(tr, h.Size)); err != nil {
				f.Close()
				return files, fmt.Errorf("writing %s: %w", target, err)
			}
			if err := f.Close(); err != nil {
				return files, err
			}
			files = append(files, filepath.ToSlash(name))
		case tar.TypeSymlink:
			// Keep links that stay inside what was copied (reports often link
			// "latest" to a run directory); drop the rest.
			link := h.Linkname
			if path.IsAbs(link) || strings.HasPrefix(path.Clean(path.Join(path.Dir(name), link)), "../") {
				continue
			}
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return files, err
			}
			_ = os.Remove(target)
			if err := os.Symlink(link, target); err != nil {
				return files, err
			}
		default:
			// Hard links, devices, FIFOs: not results.
		}
	}
}

// tailFile returns the last n lines of a file.
func tailFile(file string, n int) []string {
	f, err := os.Open(file)
	if err != nil {
		return nil
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > 2*n {
			lines = append(lines[:0], lines[len(lines)-n:]...)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}
