// Package gitinfo reads the git state a build is tagged with: commit, branch,
// whether tracked files changed, and the Jenkins build it runs in.
//
// Jenkins checks out a detached HEAD and says which commit and branch it built
// in GIT_COMMIT, BRANCH_NAME and GIT_BRANCH; those win over what git reports.
package gitinfo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"sync"

	"github.com/slipway-dev/slipway/tools/internal/exit"
)

// DefaultBranchFallback is the default branch when origin/HEAD is not known.
const DefaultBranchFallback = "main"

// Info is the git state of a working tree.
type Info struct {
	Commit        string   // 40 lowercase hex
	ShortCommit   string   // first 12 hex of Commit
	Branch        string   // "" when HEAD is detached and the CI did not say
	Detached      bool     // HEAD is not on a branch (Branch may still come from the CI)
	DefaultBranch string   // origin/HEAD's branch, else DefaultBranchFallback
	Dirty         bool     // tracked files have uncommitted changes
	DirtyFiles    []string // `git status --porcelain` lines of the changed tracked files
	BuildNumber   string   // BUILD_NUMBER
	BuildURL      string   // BUILD_URL
	Source        string   // origin's URL without credentials; "" without an origin
	TopLevel      string   // the working tree's root directory
}

// IsDefaultBranch reports whether the build is on the default branch.
func (i *Info) IsDefaultBranch() bool {
	return i.Branch != "" && i.Branch == i.DefaultBranch
}

var hex40 = regexp.MustCompile(`^[0-9a-f]{40}$`)

// Read returns the git state of the working tree that contains dir. env is the
// process environment (GIT_COMMIT, BRANCH_NAME, GIT_BRANCH, BUILD_NUMBER,
// BUILD_URL); nil means none. Outside a git repository the error exits 2.
func Read(ctx context.Context, dir string, env map[string]string) (*Info, error) {
	g := runner{dir: dir}
	top, err := g.run(ctx, "rev-parse", "--show-toplevel")
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var ge *gitError
		if errors.As(err, &ge) && strings.Contains(strings.ToLower(ge.stderr), "not a git repository") {
			return nil, exit.Usagef("%s is not inside a git repository: slipway tags images with the commit; "+
				"run it in a git checkout (git init && git commit, or let Jenkins check out the repository)", dir)
		}
		return nil, fmt.Errorf("reading git state in %s: %w", dir, err)
	}
	info := &Info{
		TopLevel:    top,
		BuildNumber: strings.TrimSpace(env["BUILD_NUMBER"]),
		BuildURL:    strings.TrimSpace(env["BUILD_URL"]),
	}

	// The remaining questions are independent: ask them at once (git status
	// takes no lock with GIT_OPTIONAL_LOCKS=0).
	jenkinsCommit := strings.ToLower(strings.TrimSpace(env["GIT_COMMIT"]))
	queries := map[string][]string{
		"branch": {"symbolic-ref", "-q", "--short", "HEAD"},
		"origin": {"symbolic-ref", "-q", "refs/remotes/origin/HEAD"},
		"status": {"status", "--porcelain", "--untracked-files=no"},
		"url":    {"remote", "get-url", "origin"},
	}
	if jenkinsCommit == "" {
		queries["head"] = []string{"rev-parse", "--verify", "-q", "HEAD^{commit}"}
	}
	type answer struct {
		out string
		err error
	}
	answers := make(map[string]answer, len(queries))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, args := range queries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := g.run(ctx, args...)
			mu.Lock()
			answers[name] = answer{out, err}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	if jenkinsCommit != "" {
		if !hex40.MatchString(jenkinsCommit) {
			return nil, exit.Usagef("GIT_COMMIT=%q is not a 40-hex git commit: unset it or set it to the full commit SHA", env["GIT_COMMIT"])
		}
		info.Commit = jenkinsCommit
	} else {
		head := answers["head"]
		if head.err != nil {
			return nil, exit.Usagef("git repository %s has no commit yet: commit your files first (git commit), slipway tags images with the commit", top)
		}
		if !hex40.MatchString(head.out) {
			return nil, fmt.Errorf("git rev-parse HEAD printed %q, not a 40-hex commit (SHA-256 repositories are not supported)", head.out)
		}
		info.Commit = head.out
	}
	info.ShortCommit = info.Commit[:12]

	// The branch: the CI's word first (Jenkins builds a detached HEAD).
	if b := answers["branch"]; b.err == nil && b.out != "" {
		info.Branch = b.out
	} else {
		info.Detached = true
	}
	if b := strings.TrimSpace(env["BRANCH_NAME"]); b != "" {
		info.Branch = b
	} else if b := strings.TrimSpace(env["GIT_BRANCH"]); b != "" {
		info.Branch = trimRemoteBranch(b)
	}

	info.DefaultBranch = DefaultBranchFallback
	if o := answers["origin"]; o.err == nil {
		if b, ok := strings.CutPrefix(o.out, "refs/remotes/origin/"); ok && b != "" {
			info.DefaultBranch = b
		}
	}

	st := answers["status"]
	if st.err != nil {
		return nil, fmt.Errorf("checking for uncommitted changes in %s: %w", top, st.err)
	}
	if st.out != "" {
		info.Dirty = true
		info.DirtyFiles = strings.Split(st.out, "\n")
	}

	if u := answers["url"]; u.err == nil {
		info.Source = StripCredentials(u.out)
	}
	return info, nil
}

// trimRemoteBranch turns Jenkins' GIT_BRANCH ("origin/main",
// "refs/remotes/origin/main", "refs/heads/main") into the branch name.
func trimRemoteBranch(b string) string {
	for _, p := range []string{"refs/remotes/origin/", "refs/heads/", "remotes/origin/", "origin/"} {
		if s, ok := strings.CutPrefix(b, p); ok {
			return s
		}
	}
	return b
}

// StripCredentials removes secrets from a remote URL so it can go into image
// labels and the manifest: the whole user info of http(s) URLs (tokens are
// often the user name), the password of any other URL. scp-like addresses
// (git@host:org/repo.git) carry no secret and stay as they are.
func StripCredentials(raw string) string {
	raw = strings.TrimSpace(raw)
	if !strings.Contains(raw, "://") {
		return raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		// Unparseable but possibly secret-bearing: drop everything up to '@'.
		scheme, rest, _ := strings.Cut(raw, "://")
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			rest = rest[at+1:]
		}
		return scheme + "://" + rest
	}
	if u.User != nil {
		switch strings.ToLower(u.Scheme) {
		case "http", "https", "ftp", "ftps":
			u.User = nil
		default:
			u.User = url.User(u.User.Username())
		}
	}
	return u.String()
}

type runner struct{ dir string }

type gitError struct {
	args   []string
	stderr string
	err    error
}

func (e *gitError) Error() string {
	msg := strings.TrimSpace(e.stderr)
	if msg == "" {
		msg = e.err.Error()
	}
	return fmt.Sprintf("git %s: %s", strings.Join(e.args, " "), msg)
}

func (e *gitError) Unwrap() error { return e.err }

// run executes git in the runner's directory and returns trimmed stdout.
func (r runner) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", r.dir}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// English messages, so "not a git repository" can be recognised.
	cmd.Env = append(cmd.Environ(), "LC_ALL=C", "GIT_TERMINAL_PROMPT=0", "GIT_OPTIONAL_LOCKS=0")
	if err := cmd.Run(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return "", fmt.Errorf("git is not installed or not on PATH: install git: %w", err)
		}
		return "", &gitError{args: args, stderr: stderr.String(), err: err}
	}
	return strings.TrimRight(stdout.String(), "\r\n"), nil
}
