package build

import (
	"sort"
	"strings"

	"github.com/slipway-dev/slipway/tools/internal/manifest"
	"github.com/slipway-dev/slipway/tools/internal/progress"
)

// reportIdentical says which images came out identical (same image ID) to
// those of the manifest a previous build left at path: those services get the
// same digest at push, and deploys leave their containers alone. A missing or
// unreadable previous manifest, or one of another project, says nothing.
func reportIdentical(log *progress.Logger, path string, m *manifest.Manifest) {
	prev, err := manifest.Read(path)
	if err != nil || prev.Project != m.Project || prev.Commit == m.Commit {
		return
	}
	var same, changed []string
	for svc, s := range m.Services {
		p, ok := prev.Services[svc]
		switch {
		case !ok || p.ImageID == "" || s.ImageID == "":
		case p.ImageID == s.ImageID:
			same = append(same, svc)
		default:
			changed = append(changed, svc)
		}
	}
	if len(same)+len(changed) == 0 {
		return
	}
	sort.Strings(same)
	sort.Strings(changed)
	log.Printf("compared with the previous build (commit %s): identical image: %s; new image: %s",
		prev.ShortCommit, orNone(strings.Join(same, ", ")), orNone(strings.Join(changed, ", ")))
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
