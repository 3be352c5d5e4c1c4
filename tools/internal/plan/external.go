package plan

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/distribution/reference"

	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/manifest"
)

// checkRunnable refuses a project with no active service, or with a service
// that has neither build: nor image: (nothing could run it). compose-go does
// not always catch the latter, and the manifest needs at least one image.
func checkRunnable(project *types.Project) error {
	files := strings.Join(project.ComposeFiles, ", ")
	if len(project.Services) == 0 {
		return exit.Usagef("no active service in %s, so there is nothing to build or deploy%s; add a service with build: or image:",
			files, disabledHint(project))
	}
	for _, n := range sortedNames(project.Services) {
		s := project.Services[n]
		if s.Build == nil && strings.TrimSpace(s.Image) == "" {
			return exit.Usagef("service %q has neither build: nor image:; add one (in %s)", n, files)
		}
	}
	return nil
}

// externalImages returns, by service name, the active services without a
// build: section (postgres, nginx...): the image repository as written
// (Docker Hub names stay short), its tag, and its digest when image: pins
// one; push resolves the others to digests. Buildable services left out by
// --service are not external: push refuses such a partial release.
func externalImages(project *types.Project) (map[string]manifest.Service, error) {
	ext := map[string]manifest.Service{}
	for _, n := range sortedNames(project.Services) {
		s := project.Services[n]
		if s.Build != nil {
			continue
		}
		named, err := reference.ParseNormalizedNamed(s.Image)
		if err != nil {
			return nil, exit.Usagef("service %s: image %q is not a valid image reference: %s; fix image: in %s",
				n, s.Image, refReason(err), strings.Join(project.ComposeFiles, ", "))
		}
		e := manifest.Service{Image: reference.FamiliarName(named)}
		if reference.Domain(named) != "docker.io" {
			e.Image = named.Name()
		}
		if t, ok := named.(reference.Tagged); ok {
			e.Tags = []string{t.Tag()}
		}
		if c, ok := named.(reference.Canonical); ok {
			e.Digest = c.Digest().String()
		}
		ext[n] = e
	}
	if len(ext) == 0 {
		return nil, nil
	}
	return ext, nil
}

// hubWarnings names built services whose image: has no registry host: push
// would send them to Docker Hub's library/ namespace, rarely what is meant.
func hubWarnings(project *types.Project, builds []Build) []string {
	var out []string
	for _, b := range builds {
		img := project.Services[b.Service].Image
		if img == "" {
			continue
		}
		named, err := reference.ParseNormalizedNamed(img)
		if err != nil || reference.Domain(named) != "docker.io" || strings.Contains(reference.FamiliarName(named), "/") {
			continue
		}
		name := reference.FamiliarName(named)
		out = append(out, fmt.Sprintf("service %s: image: %s names no registry, so push would send it to Docker Hub as docker.io/library/%s; "+
			"write image: REGISTRY/%s (or drop image: and pass --registry)", b.Service, img, name, name))
	}
	return out
}

// neitherMsg is compose-go's consistency error for a service without image
// and build; clearerMessage says which keys to add.
var neitherMsg = regexp.MustCompile(`service "([^"]+)" has neither an image nor a build context specified(: invalid compose project)?`)

func clearerMessage(msg string) string {
	return neitherMsg.ReplaceAllString(msg, `service "$1" has neither build: nor image:; add one`)
}

func sortedNames(m types.Services) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
