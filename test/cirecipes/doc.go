// Package cirecipes runs the CI recipes in docs/ci (GitHub Actions, GitLab
// CI, Travis CI, the plain pipeline.sh) the way each CI would: their script
// lines in order, in a shell, with the CI's documented variables for branch,
// commit and build number, against the test services (registry, SSH target)
// and the sample app. The package has no code besides its tests.
package cirecipes
