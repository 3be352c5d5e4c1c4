package build

import (
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/slipway-dev/slipway/tools/internal/manifest"
)

// LabelSource is the OCI label slipway sets on every image (when the
// repository has a remote). Per-commit labels (revision, created, version)
// are not set: they would give every commit a new image ID even when nothing
// the image is built from changed.
const LabelSource = "org.opencontainers.image.source"

// LabelRevision is the per-commit label --label-revision stamps. Off by
// default: it makes every image new per commit, so unchanged services get new
// digests and deploys restart them.
const LabelRevision = "org.opencontainers.image.revision"

// labels are the compose labels plus the stable OCI source label (a compose
// label may set it too), and the commit when revision is asked for.
func labels(m *manifest.Manifest, own types.Labels, revision bool) map[string]string {
	l := map[string]string{}
	if m.Source != "" {
		l[LabelSource] = m.Source
	}
	if revision && m.Commit != "" {
		l[LabelRevision] = m.Commit
	}
	for k, v := range own {
		l[k] = v
	}
	return l
}
