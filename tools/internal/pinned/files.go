package pinned

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/slipway-dev/slipway/tools/internal/exit"
)

// ReferencedFiles lists the files and directories, relative to projectDir
// (slash-separated, cleaned, sorted, no duplicates), that the model names and
// that must travel with the release: bind-mount sources that exist under the
// project directory, env_file and label_file entries, and configs/secrets
// file: sources. Absolute paths outside the project are server paths (say
// /var/run/docker.sock) and are left out; so are paths holding ${VAR}, which
// the server's .env decides, and bind sources that do not exist (compose
// creates those directories on the server). A relative path that escapes
// the project directory, or a required env_file that is missing, is an error;
// so is a path that leaves the project through a symbolic link (the link
// itself, or one inside a referenced directory), since the upload would
// carry the target's content from outside the project.
func ReferencedFiles(m Model, projectDir string) ([]string, error) {
	abs, err := filepath.Abs(projectDir)
	if err != nil {
		return nil, err
	}
	root, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("resolving the project directory %s: %w", abs, err)
	}
	seen := map[string]bool{}
	var errs []error
	forEachPath(m, func(where string, kind pathKind, get func() string, _ func(string)) {
		p := get()
		if p == "" || strings.Contains(p, "$") || strings.HasPrefix(p, "~") {
			return
		}
		full := p
		if !filepath.IsAbs(full) {
			full = filepath.Join(abs, p)
		}
		rel, err := filepath.Rel(abs, full)
		if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			if filepath.IsAbs(p) {
				return // a path on the server
			}
			errs = append(errs, exit.Usagef("%s: %s lies outside the project directory %s; move it into the project (it must travel with the release) or use an absolute server path", where, p, abs))
			return
		}
		_, statErr := os.Stat(full)
		if errors.Is(statErr, fs.ErrNotExist) {
			if kind == kindBind {
				return
			}
			if kind == kindEnvFile && optionalEnvFile(m, p) {
				return
			}
			errs = append(errs, exit.Usagef("%s: %s does not exist; create it or remove the reference", where, full))
			return
		}
		if statErr != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, statErr))
			return
		}
		if link, target := symlinkEscape(full, root); link != "" {
			errs = append(errs, exit.Usagef("%s: %s is a symbolic link to %s, outside the project directory %s; "+
				"the upload would carry a file from outside the project: copy the file into the project or use an absolute server path",
				where, link, target, abs))
			return
		}
		seen[filepath.ToSlash(rel)] = true
	})
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	sort.Strings(out)
	return out, nil
}

// symlinkEscape returns the first path at or below full (a file, or a
// directory walked without following links) whose resolved target lies
// outside root, with that target; "" when none does. Dangling links carry
// nothing and are left to the upload to report.
func symlinkEscape(full, root string) (link, target string) {
	outside := func(p string) (string, bool) {
		t, err := filepath.EvalSymlinks(p)
		if err != nil {
			return "", false
		}
		rel, err := filepath.Rel(root, t)
		return t, err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator))
	}
	if t, bad := outside(full); bad {
		return full, t
	}
	_ = filepath.WalkDir(full, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		if t, bad := outside(p); bad {
			link, target = p, t
			return fs.SkipAll
		}
		return nil
	})
	return link, target
}

// optionalEnvFile reports whether every env_file entry naming p has
// required: false.
func optionalEnvFile(m Model, p string) bool {
	found := false
	for _, v := range services(m) {
		s, _ := v.(map[string]any)
		list, _ := s["env_file"].([]any)
		for _, e := range list {
			em, ok := e.(map[string]any)
			if !ok {
				if e == p {
					return false
				}
				continue
			}
			if em["path"] == p {
				if req, ok := em["required"].(bool); !ok || req {
					return false
				}
				found = true
			}
		}
	}
	return found
}
