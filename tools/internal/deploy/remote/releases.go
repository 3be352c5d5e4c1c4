package remote

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ReleaseJSON is <dir>/releases/<commit>/release.json: who deployed what, when.
type ReleaseJSON struct {
	SchemaVersion int                     `json:"schemaVersion"`
	Project       string                  `json:"project"`
	Commit        string                  `json:"commit"`
	ShortCommit   string                  `json:"shortCommit,omitempty"`
	Branch        string                  `json:"branch,omitempty"`
	Dirty         bool                    `json:"dirty,omitempty"`
	BuildURL      string                  `json:"buildUrl,omitempty"`
	BuildNumber   string                  `json:"buildNumber,omitempty"`
	DeployedBy    string                  `json:"deployedBy"`
	DeployedAt    string                  `json:"deployedAt"` // RFC 3339
	Previous      string                  `json:"previous,omitempty"`
	Strategy      string                  `json:"strategy,omitempty"`
	Compose       string                  `json:"compose,omitempty"` // v1 or v2
	Services      map[string]ReleaseImage `json:"services,omitempty"`
	External      map[string]ReleaseImage `json:"external,omitempty"`
	Images        []string                `json:"images"`               // every image@digest the release runs
	Store         []string                `json:"store,omitempty"`      // entries of <dir>/.slipway/files its compose file mounts
	StorePaths    map[string]string       `json:"storePaths,omitempty"` // Store entry -> the file's path in the release
	Slipway       string                  `json:"slipway,omitempty"`
}

// ReleaseImage is one image of a release.
type ReleaseImage struct {
	Image  string `json:"image"`
	Digest string `json:"digest,omitempty"`
}

// ImageName returns the repository.
func (r ReleaseImage) ImageName() string { return r.Image }

// Release is a release directory on the server.
type Release struct {
	Name    string       // directory name: the commit
	ModTime time.Time    // of the directory (server clock)
	Meta    *ReleaseJSON // nil when release.json is missing or unreadable
	Current bool
}

// Time is when the release was deployed: release.json's time, else the
// directory's modification time.
func (r Release) Time() time.Time {
	if r.Meta != nil {
		if t, err := time.Parse(time.RFC3339, r.Meta.DeployedAt); err == nil {
			return t
		}
	}
	return r.ModTime
}

// Releases lists <dir>/releases/*, newest first, and the current release.
func (h *Host) Releases(ctx context.Context) ([]Release, string, error) {
	script := h.dirVar() + `c=$(readlink "$d/current" 2>/dev/null) && echo "@@current $c"
cd "$d/releases" 2>/dev/null || exit 0
for r in */; do
  r=${r%/}
  [ -d "$r" ] || continue
  echo "@@release $r $(stat -c %Y "$r")"
  cat "$r/release.json" 2>/dev/null
  echo
done
exit 0`
	out, err := h.runQuiet(ctx, "list releases", script, nil)
	if err != nil {
		return nil, "", fmt.Errorf("listing releases in %s/releases: %w", h.Dir, err)
	}
	rels, current := parseReleases(string(out))
	return rels, current, nil
}

func parseReleases(out string) ([]Release, string) {
	var rels []Release
	current := ""
	var body strings.Builder
	flush := func() {
		if len(rels) == 0 {
			return
		}
		if s := strings.TrimSpace(body.String()); s != "" {
			var m ReleaseJSON
			if json.Unmarshal([]byte(s), &m) == nil {
				rels[len(rels)-1].Meta = &m
			}
		}
		body.Reset()
	}
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "@@current "); ok {
			current = releaseName(v)
			continue
		}
		if v, ok := strings.CutPrefix(line, "@@release "); ok {
			flush()
			name, mt, _ := strings.Cut(v, " ")
			n, _ := strconv.ParseInt(strings.TrimSpace(mt), 10, 64)
			rels = append(rels, Release{Name: name, ModTime: time.Unix(n, 0)})
			continue
		}
		body.WriteString(line)
		body.WriteByte('\n')
	}
	flush()
	for i := range rels {
		rels[i].Current = rels[i].Name == current
	}
	sort.SliceStable(rels, func(i, j int) bool {
		ti, tj := rels[i].Time(), rels[j].Time()
		if !ti.Equal(tj) {
			return ti.After(tj)
		}
		return rels[i].Name < rels[j].Name
	})
	return rels, current
}

// RemoveReleases deletes release directories and then the images given (those
// no kept release uses); an image still used by a container stays, silently.
// Leftover upload directories (releases/.tmp-*) older than an hour go too.
func (h *Host) RemoveReleases(ctx context.Context, releases []string, images []string) error {
	if h.DryRun {
		for _, r := range releases {
			h.Planf("rm -rf %s/releases/%s", h.Dir, r)
		}
		if len(images) > 0 {
			h.Planf("docker image rm %s (errors ignored: images in use stay)", strings.Join(images, " "))
		}
		return nil
	}
	var b strings.Builder
	b.WriteString(h.dirVar())
	b.WriteString(`c=$(readlink "$d/current" 2>/dev/null || true); c=${c##*/}` + "\n")
	for _, r := range releases {
		if validRelease(r) != nil {
			continue
		}
		fmt.Fprintf(&b, "[ %s = \"$c\" ] || rm -rf \"$d/releases/\"%s\n", q(r), q(r))
	}
	b.WriteString(`find "$d/releases" -mindepth 1 -maxdepth 1 -name '.tmp-*' -mmin +60 -exec rm -rf {} + 2>/dev/null` + "\n")
	if len(images) > 0 && h.eng == nil {
		b.WriteString("docker image rm")
		for _, img := range images {
			b.WriteString(" " + q(img))
		}
		b.WriteString(" >/dev/null 2>&1\n")
	}
	b.WriteString("exit 0\n")
	if _, err := h.runQuiet(ctx, "prune", b.String(), nil); err != nil {
		return fmt.Errorf("pruning old releases: %w", err)
	}
	if len(images) > 0 && h.eng != nil {
		h.removeImagesAPI(ctx, images)
	}
	return nil
}

// PruneStore removes the entries of <dir>/.slipway/files that keep (entry
// directory names, the first element of ReleaseJSON.Store) does not list.
func (h *Host) PruneStore(ctx context.Context, keep []string) error {
	if h.DryRun {
		h.Planf("remove the entries of %s/.slipway/files no kept release mounts", h.Dir)
		return nil
	}
	script := h.dirVar() + `cd "$d/.slipway/files" 2>/dev/null || exit 0
k="$d/.slipway/.store-keep.` + randHex(4) + `"
cat > "$k"
for e in *; do
  [ -e "$e" ] || continue
  grep -qxF -- "$e" "$k" || rm -rf -- "$e"
done
rm -f "$k"`
	if _, err := h.runQuiet(ctx, "prune store", script, strings.NewReader(strings.Join(keep, "\n")+"\n")); err != nil {
		return fmt.Errorf("pruning %s/.slipway/files: %w", h.Dir, err)
	}
	return nil
}
