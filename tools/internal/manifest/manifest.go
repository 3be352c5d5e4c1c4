// Package manifest reads and writes slipway-release.json, the one artifact every
// step after build reads, so no step re-guesses what an earlier one did.
package manifest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/distribution/reference"

	"github.com/slipway-dev/slipway/tools/internal/exit"
)

// DefaultPath is where build writes the manifest and later commands read it.
const DefaultPath = "slipway-release.json"

// SchemaVersion is the version this binary writes and accepts.
const SchemaVersion = 1

// MaxSize bounds what Read accepts; a real manifest is a few KiB.
const MaxSize = 16 << 20

// Manifest describes one release: what was built from which commit, and after
// push, the digest of every image.
type Manifest struct {
	SchemaVersion int      `json:"schemaVersion"`
	Project       string   `json:"project"`
	ComposeFiles  []string `json:"composeFiles"`
	// ProjectDir is the compose project directory, relative to the manifest's
	// directory when it lies below it.
	ProjectDir string   `json:"projectDirectory,omitempty"`
	EnvFiles   []string `json:"envFiles,omitempty"`
	Profiles   []string `json:"profiles,omitempty"`

	Commit      string `json:"commit"`
	ShortCommit string `json:"shortCommit"`
	Branch      string `json:"branch"`
	Dirty       bool   `json:"dirty"`
	BuildURL    string `json:"buildUrl"`
	BuildNumber string `json:"buildNumber,omitempty"`
	Created     string `json:"created,omitempty"`
	Source      string `json:"source,omitempty"`

	// PinnedCompose is the deployable compose file that push wrote.
	PinnedCompose string `json:"pinnedCompose,omitempty"`

	// Services are the services slipway builds, by compose service name;
	// empty for an image-only project (no service has build:).
	Services map[string]Service `json:"services"`
	// External are images slipway did not build (postgres, nginx...), by
	// service name; build lists them, push resolves them to digests so a
	// deploy or rollback runs the same bytes. Services and External are
	// never both empty.
	External map[string]Service `json:"external,omitempty"`
}

// Service is one image of the release.
type Service struct {
	Image   string   `json:"image"`             // repository, without tag
	Tags    []string `json:"tags,omitempty"`    // tags applied (build) and pushed (push)
	ImageID string   `json:"imageId,omitempty"` // sha256:... of the local image
	Digest  string   `json:"digest,omitempty"`  // sha256:... of the pushed manifest
}

// Ref returns image:tag for the first tag, or the bare image.
func (s Service) Ref() string {
	if len(s.Tags) == 0 {
		return s.Image
	}
	return s.Image + ":" + s.Tags[0]
}

// Pinned returns image@digest, or "" before push.
func (s Service) Pinned() string {
	if s.Digest == "" {
		return ""
	}
	return s.Image + "@" + s.Digest
}

// Names returns the built service names, sorted.
func (m *Manifest) Names() []string {
	names := make([]string, 0, len(m.Services))
	for n := range m.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ExternalNames returns the external images' service names, sorted.
func (m *Manifest) ExternalNames() []string {
	names := make([]string, 0, len(m.External))
	for n := range m.External {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// CredentialImages are the images whose registries the SLIPWAY_REGISTRY_*
// credentials are meant for: the built images (the registry they are pushed
// to); for an image-only release, its external images outside Docker Hub
// (the project's own registry). Docker Hub never gets them by default.
func (m *Manifest) CredentialImages() []string {
	return CredentialImages(m.Services, m.External)
}

// CredentialImages is Manifest.CredentialImages over plain image lists (a
// release.json records the same two maps).
func CredentialImages[S ~map[string]T, T interface{ ImageName() string }](built, external S) []string {
	var out []string
	for _, s := range built {
		out = append(out, s.ImageName())
	}
	if len(built) > 0 {
		return out
	}
	for _, s := range external {
		named, err := reference.ParseNormalizedNamed(s.ImageName())
		if err == nil && reference.Domain(named) != "docker.io" {
			out = append(out, s.ImageName())
		}
	}
	return out
}

// ImageName returns the repository.
func (s Service) ImageName() string { return s.Image }

// Pushed reports whether push ran: every built service has a digest, and
// an image-only release has its pinned compose file (push pins the external
// images while writing it).
func (m *Manifest) Pushed() bool {
	for _, s := range m.Services {
		if s.Digest == "" {
			return false
		}
	}
	if len(m.Services) == 0 {
		return len(m.External) > 0 && m.PinnedCompose != ""
	}
	return true
}

// ImageOnly reports a release that builds nothing: every image is external.
func (m *Manifest) ImageOnly() bool { return len(m.Services) == 0 }

var (
	hex40  = regexp.MustCompile(`^[0-9a-f]{40}$`)
	digest = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
)

// Validate checks what every reader relies on; path names the file in errors.
func (m *Manifest) Validate(path string) error {
	bad := func(field, why string) error {
		return exit.Usagef("manifest %s: %s %s; run 'slipway build' to write a fresh one", path, field, why)
	}
	if m.SchemaVersion != SchemaVersion {
		return bad("schemaVersion", fmt.Sprintf("is %d, this slipway reads %d", m.SchemaVersion, SchemaVersion))
	}
	if m.Project == "" {
		return bad("project", "is empty")
	}
	if !hex40.MatchString(m.Commit) {
		return bad("commit", fmt.Sprintf("%q is not a 40-hex git commit", m.Commit))
	}
	if len(m.Services) == 0 && len(m.External) == 0 {
		return bad("services", "is empty and so is external (no service has build: or image:)")
	}
	for _, list := range []struct {
		field string
		svcs  map[string]Service
	}{{"services", m.Services}, {"external", m.External}} {
		for name, s := range list.svcs {
			if s.Image == "" || strings.ContainsAny(s.Image, " \t\n@") {
				return bad(list.field+"."+name+".image", fmt.Sprintf("%q is not an image repository", s.Image))
			}
			if s.Digest != "" && !digest.MatchString(s.Digest) {
				return bad(list.field+"."+name+".digest", fmt.Sprintf("%q is not a sha256 digest", s.Digest))
			}
		}
	}
	return nil
}

// Read loads and validates the manifest at path. A missing file is bad input
// (exit 2) with a hint about which command writes it.
func Read(path string) (*Manifest, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, exit.Usagef("manifest %s not found: run 'slipway build' first, or pass --manifest PATH", path)
	}
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading manifest %s: %w", path, err)
	}
	if st.Size() > MaxSize {
		return nil, exit.Usagef("manifest %s is %d bytes, over the %d limit: not a slipway manifest", path, st.Size(), MaxSize)
	}
	var m Manifest
	dec := json.NewDecoder(f)
	if err := dec.Decode(&m); err != nil {
		return nil, exit.Usagef("manifest %s is not valid JSON: %v", path, err)
	}
	if err := m.Validate(path); err != nil {
		return nil, err
	}
	return &m, nil
}

// Write stores m at path atomically (temp file + rename), so a reader never
// sees half a manifest.
func Write(path string, m *Manifest) error {
	m.SchemaVersion = SchemaVersion
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding manifest: %w", err)
	}
	return WriteFileAtomic(path, append(data, '\n'), 0o644)
}

// WriteFileAtomic writes data to a temp file beside path and renames it over path.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
