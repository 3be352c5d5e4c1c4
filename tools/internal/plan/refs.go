package plan

import (
	"errors"
	"fmt"
	"strings"

	"github.com/distribution/reference"
)

// ImageRepo returns the repository a built service's images go to: the
// service's own image: without its tag or digest (build replaces the tag), else
// <registry>/<project>-<service>, or <project>-<service> without a registry.
func ImageRepo(project, service, image, registry string) (string, error) {
	if image != "" {
		ref, err := reference.Parse(image)
		if err != nil {
			return "", fmt.Errorf("service %q: image %q is not a valid image reference: %s; fix image: in the compose file",
				service, image, refReason(err))
		}
		named, ok := ref.(reference.Named)
		if !ok {
			return "", fmt.Errorf("service %q: image %q has no repository name; fix image: in the compose file", service, image)
		}
		return named.Name(), nil
	}
	registry = strings.TrimRight(strings.TrimSpace(registry), "/")
	repo := project + "-" + strings.ToLower(service)
	if registry != "" {
		repo = registry + "/" + repo
	}
	ref, err := reference.Parse(repo)
	if err != nil {
		if registry != "" {
			if _, rerr := reference.Parse(registry + "/x"); rerr != nil {
				return "", fmt.Errorf("--registry %q is not a valid registry prefix (host[:port][/path], lowercase): %s", registry, refReason(rerr))
			}
		}
		return "", fmt.Errorf("service %q: the default image name %q is not a valid image reference: %s; "+
			"set image: for the service in the compose file", service, repo, refReason(err))
	}
	named, ok := ref.(reference.Named)
	if !ok {
		return "", fmt.Errorf("service %q: %q is not an image repository; set image: for the service", service, repo)
	}
	return named.Name(), nil
}

// ValidRef checks that repo:tag is a valid reference (total length included).
func ValidRef(repo, tag string) error {
	if _, err := reference.Parse(repo + ":" + tag); err != nil {
		return fmt.Errorf("%s:%s is not a valid image reference: %s", repo, tag, refReason(err))
	}
	return nil
}

func refReason(err error) string {
	switch {
	case errors.Is(err, reference.ErrNameContainsUppercase):
		return "repository names must be lowercase"
	case errors.Is(err, reference.ErrNameTooLong):
		return fmt.Sprintf("repository names are at most %d characters", reference.RepositoryNameTotalLengthMax)
	case errors.Is(err, reference.ErrReferenceInvalidFormat):
		return "path components are lowercase letters and digits separated by '.', '_', '__' or '-', " +
			"after an optional registry host[:port]"
	}
	return err.Error()
}
