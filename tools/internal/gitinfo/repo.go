package gitinfo

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// RepoName is the repository name in a git remote URL: the last path
// element without a trailing ".git" or "/". It understands URLs
// (https://host/org/shop.git, ssh://git@host:22/org/shop.git,
// file:///srv/shop), scp-like addresses (git@host:org/shop.git) and local
// paths. "" when there is none.
func RepoName(raw string) string {
	raw = strings.TrimSpace(raw)
	p := raw
	if strings.Contains(raw, "://") {
		if u, err := url.Parse(raw); err == nil {
			p = u.Path
		} else {
			_, p, _ = strings.Cut(raw, "://")
			if i := strings.Index(p, "/"); i >= 0 {
				p = p[i:]
			} else {
				p = ""
			}
		}
	} else if i := strings.Index(raw, ":"); i > 0 && !strings.Contains(raw[:i], "/") && !isWindowsDrive(raw[:i]) {
		p = raw[i+1:] // scp-like: [user@]host:path
	}
	p = strings.TrimRight(p, "/\\")
	if i := strings.LastIndexAny(p, "/\\"); i >= 0 {
		p = p[i+1:]
	}
	p = strings.TrimSuffix(p, ".git")
	if p == "." || p == ".." {
		return ""
	}
	return p
}

func isWindowsDrive(s string) bool {
	return len(s) == 1 && (s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z')
}

// Identity is where a default project name can come from when nothing names
// the project: the repository, the same for every job, branch, workspace
// and agent, unlike the checkout's folder (shop_main, shop_PR-1, shop_main@2).
type Identity struct {
	Name string // repository name, not yet normalised; "" when none was found
	From string // where it came from, e.g. "the origin remote (git@host:org/shop.git)"
}

// RepoIdentity finds the repository name for dir when dir is the root of a
// git checkout: the origin remote's URL first, then Jenkins' GIT_URL from env.
// Elsewhere (a subdirectory, no git) it returns a zero Identity: the
// subdirectory's own name is then the stable part. URLs are reported
// without credentials.
func RepoIdentity(ctx context.Context, dir string, env map[string]string) Identity {
	// Only a checkout's root holds .git (a directory, or a file in
	// worktrees and submodules); checking it first also spares a git
	// process for every compose project outside a checkout.
	if _, err := os.Lstat(filepath.Join(dir, ".git")); err != nil {
		return Identity{}
	}
	g := runner{dir: dir}
	if u, err := g.run(ctx, "remote", "get-url", "origin"); err == nil {
		if n := RepoName(u); n != "" {
			return Identity{Name: n, From: "the origin remote (" + StripCredentials(u) + ")"}
		}
	}
	if u := strings.TrimSpace(env["GIT_URL"]); u != "" {
		if n := RepoName(u); n != "" {
			return Identity{Name: n, From: "GIT_URL (" + StripCredentials(u) + ")"}
		}
	}
	return Identity{}
}
