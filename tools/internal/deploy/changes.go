package deploy

// The change plan: what a deploy or rollback does to each service of a
// host, decided before anything changes, from the two releases' compose
// files as Compose reads them on the server (.env applied) and the digests
// of the files they carry.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/composelib"
	"github.com/slipway-dev/slipway/tools/internal/deploy/remote"
	"github.com/slipway-dev/slipway/tools/internal/progress"
)

// Kinds of change of a service.
const (
	ChangeNew       = "new service"
	ChangeRemoved   = "removed"
	ChangeChanged   = "changed"
	ChangeUnchanged = "unchanged"
)

// ServiceChange is one service's entry in a host's change plan.
type ServiceChange struct {
	Service  string   `json:"service"`
	Change   string   `json:"change"` // ChangeNew, ChangeRemoved, ChangeChanged or ChangeUnchanged
	NewImage bool     `json:"newImage,omitempty"`
	Keys     []string `json:"keys,omitempty"`  // definition keys that differ, the image aside
	Files    []string `json:"files,omitempty"` // files of the release it uses that differ ("." the whole directory)
}

// String is the change for the log: "new image; definition changed (environment)".
func (c ServiceChange) String() string {
	if c.Change != ChangeChanged {
		return c.Change
	}
	var why []string
	if c.NewImage {
		why = append(why, "new image")
	}
	if len(c.Keys) > 0 {
		why = append(why, "definition changed ("+strings.Join(c.Keys, ", ")+")")
	}
	if len(c.Files) > 0 {
		why = append(why, "files changed ("+strings.Join(c.Files, ", ")+")")
	}
	return strings.Join(why, "; ")
}

// diffReleases compares each service of release to with release from
// (nil: nothing ran before). dir is the deploy directory.
func diffReleases(dir string, from, to *remote.ReleaseConfig) []ServiceChange {
	var out []ServiceChange
	for _, name := range to.Services() {
		c := ServiceChange{Service: name, Change: ChangeUnchanged}
		if from == nil || from.Service(name) == nil {
			c.Change = ChangeNew
			out = append(out, c)
			continue
		}
		sa := comparable(from, name, dir+"/releases/"+from.Release)
		sb := comparable(to, name, dir+"/releases/"+to.Release)
		c.NewImage = img(sa) != img(sb)
		c.Keys = differingKeys(sa, sb)
		for _, p := range releasePaths(sb) {
			if !sameFiles(from.Files, to.Files, p) {
				c.Files = append(c.Files, p)
			}
		}
		if c.NewImage || len(c.Keys) > 0 || len(c.Files) > 0 {
			c.Change = ChangeChanged
		}
		out = append(out, c)
	}
	if from != nil {
		for _, name := range from.Services() {
			if to.Service(name) == nil {
				out = append(out, ServiceChange{Service: name, Change: ChangeRemoved})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Service < out[j].Service })
	return out
}

// differingKeys names what differs between two comparable definitions: the
// service's keys (the image aside), then the top-level definitions it uses.
func differingKeys(a, b map[string]any) []string {
	var keys []string
	sa, _ := a["service"].(map[string]any)
	sb, _ := b["service"].(map[string]any)
	for _, k := range unionKeys(sa, sb) {
		if k != "image" && !reflect.DeepEqual(sa[k], sb[k]) {
			keys = append(keys, k)
		}
	}
	for _, k := range unionKeys(a, b) {
		if k != "service" && !reflect.DeepEqual(a[k], b[k]) {
			keys = append(keys, "top-level "+k)
		}
	}
	return keys
}

func unionKeys(a, b map[string]any) []string {
	seen := map[string]bool{}
	var keys []string
	for _, m := range []map[string]any{a, b} {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	sort.Strings(keys)
	return keys
}

// loadRelease reads a release's compose model as Compose does on the server.
// Mounts of the file store (see store.go) are turned back into the paths of
// the files in the release (storePaths: entry -> path), so that a changed
// file is told as such, not as a changed mount.
func loadRelease(ctx context.Context, h *remote.Host, release string, src *remote.ReleaseSource, storePaths map[string]string, read composelib.ReadFiles) (*remote.ReleaseConfig, error) {
	p, err := composelib.Load(ctx, composelib.Release{Project: h.Project, Dir: src.Dir, Compose: src.Compose, DotEnv: src.DotEnv}, read)
	if err != nil {
		return nil, err
	}
	data, err := p.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src.Dir, err)
	}
	var model map[string]any
	if err := json.Unmarshal(data, &model); err != nil {
		return nil, fmt.Errorf("%s: %w", src.Dir, err)
	}
	if len(storePaths) > 0 {
		store := h.Dir + "/" + storeDir + "/"
		mapStrings(model, func(s string) string {
			if rest, ok := strings.CutPrefix(s, store); ok {
				entry, mode, _ := strings.Cut(rest, ":")
				if p, ok := storePaths[entry]; ok {
					return strings.TrimSuffix(src.Dir+"/"+p+":"+mode, ":")
				}
			}
			return s
		})
	}
	hashes, err := composelib.Hashes(p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src.Dir, err)
	}
	return &remote.ReleaseConfig{Release: release, Model: model, Hashes: hashes, Files: src.Digests}, nil
}

// serverRelease reads a release from the server; nil when its directory is
// gone. meta is its release.json, nil if unread.
func serverRelease(ctx context.Context, h *remote.Host, release string, meta *remote.ReleaseJSON) (*remote.ReleaseConfig, error) {
	src, err := h.ReadRelease(ctx, release)
	if err != nil || src == nil {
		return nil, err
	}
	var storePaths map[string]string
	if meta != nil {
		storePaths = meta.StorePaths
	}
	cfg, err := loadRelease(ctx, h, release, src, storePaths, h.ReadFiles)
	if err != nil {
		return nil, fmt.Errorf("release %s on the server: %w", short(release), err)
	}
	return cfg, nil
}

// uploadRelease is release as it will be on the server once files are
// uploaded: read from files, and from the server for any path outside the
// release directory.
func uploadRelease(ctx context.Context, h *remote.Host, release string, files []remote.File) (*remote.ReleaseConfig, error) {
	dir := h.Dir + "/releases/" + release
	src := &remote.ReleaseSource{Dir: dir, Digests: map[string]string{}}
	byPath := map[string][]byte{}
	storePaths := map[string]string{}
	for _, f := range files {
		byPath[dir+"/"+f.Path] = f.Data
		if f.Store != "" {
			storePaths[f.Store] = f.Path
		}
		switch f.Path {
		case "compose.yaml":
			src.Compose = f.Data
		case ".env":
			src.DotEnv = f.Data
			continue
		}
		sum := sha256.Sum256(f.Data)
		src.Digests[f.Path] = hex.EncodeToString(sum[:])
	}
	read := func(ctx context.Context, paths []string) (map[string][]byte, error) {
		out := map[string][]byte{}
		var rest []string
		for _, p := range paths {
			if data, ok := byPath[p]; ok {
				out[p] = data
			} else if !strings.HasPrefix(p, dir+"/") {
				rest = append(rest, p)
			}
		}
		if len(rest) > 0 {
			got, err := h.ReadFiles(ctx, rest)
			if err != nil {
				return nil, err
			}
			for p, data := range got {
				out[p] = data
			}
		}
		return out, nil
	}
	return loadRelease(ctx, h, release, src, storePaths, read)
}

// planChanges computes, prints and records what converging the host from
// release from to release to changes, before anything changes. to is read
// with read (the upload to come, or the server); from from the server.
func planChanges(ctx context.Context, d *HostDeploy, r *hostRun, rels []remote.Release, to *remote.ReleaseConfig) error {
	start := time.Now()
	var from *remote.ReleaseConfig
	if d.Previous != "" {
		var err error
		if from, err = serverRelease(ctx, d.Host, d.Previous, metaOf(rels, d.Previous)); err != nil {
			return err
		}
		if from == nil {
			d.Log.Printf("release %s's directory is gone: every service counts as new", short(d.Previous))
		}
	}
	r.res.Changes = diffReleases(d.Host.Dir, from, to)
	d.Done("change plan", start)
	logChanges(d.Log, r.res.Changes)
	return nil
}

// imagesOf lists the images a loaded release runs, its .env applied: what
// to pull when the agent could not read them statically.
func imagesOf(cfg *remote.ReleaseConfig) []string {
	var out []string
	for _, name := range cfg.Services() {
		if img, _ := cfg.Service(name)["image"].(string); img != "" && !slices.Contains(out, img) {
			out = append(out, img)
		}
	}
	sort.Strings(out)
	return out
}

func metaOf(rels []remote.Release, name string) *remote.ReleaseJSON {
	for _, rel := range rels {
		if rel.Name == name {
			return rel.Meta
		}
	}
	return nil
}

// logChanges prints a change plan on one line, the changed services first.
func logChanges(log *progress.Logger, changes []ServiceChange) {
	var changed, same []string
	for _, c := range changes {
		if c.Change == ChangeUnchanged {
			same = append(same, c.Service)
		} else {
			changed = append(changed, c.Service+" ("+c.String()+")")
		}
	}
	line := "changes: " + strings.Join(changed, ", ")
	switch {
	case len(changed) == 0:
		line = "changes: none"
	case len(same) == 0:
		log.Printf("%s", line)
		return
	}
	log.Printf("%s; unchanged: %s", line, strings.Join(same, ", "))
}
