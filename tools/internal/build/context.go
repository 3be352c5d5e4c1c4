package build

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	archive "github.com/moby/go-archive"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"

	"github.com/slipway-dev/slipway/tools/internal/exit"
)

// prepared is what the engine needs to build one service: a context tar (or
// a remote URL the engine fetches itself) and the Dockerfile's path in it.
type prepared struct {
	Tar        io.ReadCloser
	Remote     string
	Dockerfile string
	Content    []byte // the Dockerfile's text, when local (to find FROM registries)
	// LabelsBaked: the labels are one LABEL instruction in the Dockerfile sent,
	// so the engine must not get them as build options too.
	LabelsBaked bool
}

// prepareContext mirrors what the docker CLI does for the classic builder:
// read .dockerignore, check every file it will send is readable, tar the
// directory, keep the Dockerfile and .dockerignore even when ignored (the
// engine needs the first and removes both itself), and add a Dockerfile from
// outside the context, or an inline one, under a random name.
//
// contextDir is absolute (compose-go resolved it); dockerfile is as written
// in the compose file, relative to the context; inline is dockerfile_inline.
//
// labels, when given, are written into the Dockerfile sent as one LABEL line
// at the end of the target stage: the classic builder turns each build-option
// label into a step of its own (a container created and committed per label,
// never cached because of the created time), which costs more than the build
// of a small image.
func prepareContext(service, contextDir, dockerfile, inline, target string, labels map[string]string) (*prepared, error) {
	if contextDir == "" {
		contextDir = "."
	}
	if isRemoteContext(contextDir) {
		if inline != "" {
			return nil, exit.Usagef("service %s: build.dockerfile_inline cannot be combined with the remote build context %s", service, contextDir)
		}
		return &prepared{Remote: contextDir, Dockerfile: dockerfile}, nil
	}
	st, err := os.Stat(contextDir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, exit.Usagef("service %s: build context %s does not exist; fix build.context in the compose file", service, contextDir)
		}
		return nil, fmt.Errorf("service %s: build context %s: %w", service, contextDir, err)
	}
	if !st.IsDir() {
		return nil, exit.Usagef("service %s: build context %s is not a directory", service, contextDir)
	}

	var (
		dfContent []byte // set when the Dockerfile must be added to the tar
		dfRel     string // path of the Dockerfile inside the context
		dfAbs     string
	)
	if inline != "" {
		dfContent = []byte(inline)
	} else {
		dfAbs, err = findDockerfile(service, contextDir, dockerfile)
		if err != nil {
			return nil, err
		}
		rel, err := filepath.Rel(contextDir, dfAbs)
		if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			// Outside the context: docker sends it inside the tar under a random name.
			if dfContent, err = os.ReadFile(dfAbs); err != nil {
				return nil, fmt.Errorf("service %s: reading Dockerfile %s: %w", service, dfAbs, err)
			}
		} else {
			dfRel = filepath.ToSlash(rel)
		}
	}
	content := dfContent
	if content == nil {
		content, _ = os.ReadFile(dfAbs) // best effort: only used to find registries
	}
	baked := false
	if len(labels) > 0 && content != nil {
		if withLabels, ok := bakeLabels(content, target, labels); ok {
			dfContent, dfRel, baked = withLabels, "", true
		}
	}

	excludes, err := readIgnore(contextDir, dfAbs)
	if err != nil {
		return nil, fmt.Errorf("service %s: %w", service, err)
	}
	if err := validateContext(contextDir, excludes); err != nil {
		return nil, fmt.Errorf("service %s: build context %s: %w", service, contextDir, err)
	}
	if keep, _ := patternmatcher.MatchesOrParentMatches(".dockerignore", excludes); keep {
		excludes = append(excludes, "!.dockerignore")
	}
	if dfRel != "" {
		if keep, _ := patternmatcher.MatchesOrParentMatches(dfRel, excludes); keep {
			excludes = append(excludes, "!"+dfRel)
		}
	}

	rc, err := archive.TarWithOptions(contextDir, &archive.TarOptions{
		ExcludePatterns: excludes,
		ChownOpts:       &archive.ChownOpts{UID: 0, GID: 0},
	})
	if err != nil {
		return nil, fmt.Errorf("service %s: packing build context %s: %w", service, contextDir, err)
	}
	if dfContent != nil {
		rc, dfRel = addDockerfile(rc, dfContent)
	}
	return &prepared{Tar: drainOnClose{rc}, Dockerfile: dfRel, Content: content, LabelsBaked: baked}, nil
}

// findDockerfile resolves the Dockerfile as docker does: relative to the
// context, "Dockerfile" by default with "dockerfile" as a fallback.
func findDockerfile(service, contextDir, dockerfile string) (string, error) {
	name := dockerfile
	if name == "" {
		name = "Dockerfile"
	}
	p := name
	if !filepath.IsAbs(p) {
		p = filepath.Join(contextDir, p)
	}
	st, err := os.Stat(p)
	if err != nil && dockerfile == "" {
		alt := filepath.Join(contextDir, "dockerfile")
		if st2, err2 := os.Stat(alt); err2 == nil {
			p, st, err = alt, st2, nil
		}
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", exit.Usagef("service %s: Dockerfile %s not found (build.dockerfile is relative to the build context %s)", service, p, contextDir)
		}
		return "", fmt.Errorf("service %s: Dockerfile %s: %w", service, p, err)
	}
	if st.IsDir() {
		return "", exit.Usagef("service %s: Dockerfile %s is a directory", service, p)
	}
	return p, nil
}

// readIgnore reads <Dockerfile>.dockerignore when it exists (BuildKit's
// per-Dockerfile ignore file, which `docker compose build` honours), else the
// context's .dockerignore.
func readIgnore(contextDir, dockerfile string) ([]string, error) {
	candidates := []string{filepath.Join(contextDir, ".dockerignore")}
	if dockerfile != "" {
		candidates = append([]string{dockerfile + ".dockerignore"}, candidates...)
	}
	for _, p := range candidates {
		f, err := os.Open(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", p, err)
		}
		defer f.Close()
		excl, err := ignorefile.ReadAll(f)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", p, err)
		}
		return excl, nil
	}
	return nil, nil
}

// validateContext fails early, naming the file, when something the tar would
// include cannot be read (the archive code would silently skip it).
func validateContext(dir string, excludes []string) error {
	pm, err := patternmatcher.New(excludes)
	if err != nil {
		return fmt.Errorf(".dockerignore: %w", err)
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		rel, rerr := filepath.Rel(dir, p)
		if rerr != nil {
			return rerr
		}
		if rel == "." {
			return err
		}
		skip, merr := pm.MatchesOrParentMatches(filepath.ToSlash(rel))
		if merr != nil {
			return merr
		}
		if skip {
			if d != nil && d.IsDir() && !pm.Exclusions() {
				return filepath.SkipDir
			}
			return nil
		}
		if err != nil {
			if errors.Is(err, fs.ErrPermission) {
				return fmt.Errorf("cannot read %s: %w (make it readable or add it to .dockerignore)", rel, err)
			}
			return err
		}
		if d.Type().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return fmt.Errorf("cannot read %s: %w (make it readable or add it to .dockerignore)", rel, err)
			}
			f.Close()
		}
		return nil
	})
}

// addDockerfile puts content into the context tar under a random name and
// lists that name in .dockerignore, so COPY . does not pick it up.
func addDockerfile(rc io.ReadCloser, content []byte) (io.ReadCloser, string) {
	var rnd [10]byte
	_, _ = rand.Read(rnd[:])
	name := ".dockerfile." + hex.EncodeToString(rnd[:])
	now := time.Now()
	hdr := func(n string) *tar.Header {
		return &tar.Header{Name: n, Mode: 0o600, ModTime: now, Typeflag: tar.TypeReg}
	}
	return archive.ReplaceFileTarWrapper(rc, map[string]archive.TarModifierFunc{
		name: func(string, *tar.Header, io.Reader) (*tar.Header, []byte, error) {
			return hdr(name), content, nil
		},
		".dockerignore": func(_ string, h *tar.Header, r io.Reader) (*tar.Header, []byte, error) {
			var b bytes.Buffer
			if h == nil {
				h = hdr(".dockerignore")
				b.WriteString(".dockerignore")
			} else if _, err := b.ReadFrom(r); err != nil {
				return nil, nil, err
			}
			b.WriteString("\n" + name + "\n")
			return h, b.Bytes(), nil
		},
	}), name
}

// isRemoteContext reports a context the engine fetches itself (git or http),
// as docker's urlutil does.
func isRemoteContext(s string) bool {
	for _, p := range []string{"http://", "https://", "git://", "git@", "github.com/", "ssh://"} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// drainOnClose lets the archive goroutine finish when a build stops reading
// early (failure, cancellation): closing the pipe under it makes the archive
// package log errors on stderr that would bury the real one.
type drainOnClose struct{ io.ReadCloser }

func (d drainOnClose) Close() error {
	go func() {
		_, _ = io.Copy(io.Discard, d.ReadCloser)
		d.ReadCloser.Close()
	}()
	return nil
}

// bakeLabels inserts `LABEL "k"="v" ...` as the last instruction of the
// target stage (the last stage without a target). It gives up (false) on a
// Dockerfile it cannot read with certainty: no FROM, or an unknown target.
func bakeLabels(df []byte, target string, labels map[string]string) ([]byte, bool) {
	lines := strings.SplitAfter(string(df), "\n")
	escape := `\`
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if !strings.HasPrefix(t, "#") {
			break // parser directives come first
		}
		if d := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(t, "#"), " ", "")); strings.HasPrefix(d, "escape=") {
			escape = strings.TrimPrefix(d, "escape=")
		}
	}
	// Stage starts: physical line numbers of logical lines beginning with FROM.
	type stage struct {
		line int
		name string
	}
	var stages []stage
	cont := false // inside an instruction continued with the escape character
	for i, l := range lines {
		t := strings.TrimSpace(l)
		skip := t == "" || strings.HasPrefix(t, "#")
		if cont {
			if !skip {
				cont = strings.HasSuffix(t, escape)
			}
			continue
		}
		if skip {
			continue
		}
		cont = strings.HasSuffix(t, escape)
		f := strings.Fields(t)
		if !strings.EqualFold(f[0], "FROM") {
			continue
		}
		st := stage{line: i}
		if n := len(f); n >= 4 && strings.EqualFold(f[n-2], "AS") {
			st.name = strings.ToLower(f[n-1])
		}
		stages = append(stages, st)
	}
	if len(stages) == 0 {
		return nil, false
	}
	at := len(stages) - 1
	if target != "" {
		at = -1
		for i, st := range stages {
			if st.name == strings.ToLower(target) {
				at = i
			}
		}
		if at < 0 {
			return nil, false
		}
	}
	insert := len(lines)
	if at+1 < len(stages) {
		insert = stages[at+1].line
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("LABEL")
	q := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`, "\n", " ")
	for _, k := range keys {
		fmt.Fprintf(&b, ` "%s"="%s"`, q.Replace(k), q.Replace(labels[k]))
	}
	b.WriteString("\n")
	head := strings.Join(lines[:insert], "")
	if head != "" && !strings.HasSuffix(head, "\n") {
		head += "\n"
	}
	return []byte(head + b.String() + strings.Join(lines[insert:], "")), true
}
