package deploy

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"

	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/progress"
)

// checkoutDir is where a release holds the checkout's tracked files when the
// compose file bind-mounts the project directory itself (`.:/code`, as in
// development setups). Not the release directory itself: that holds slipway's
// compose.yaml, .env and release.json, which would shadow the project's own
// files and put the runtime .env inside the container.
const checkoutDir = ".slipway-checkout"

// addCheckout adds every file git tracks under the project directory at
// checkoutDir/<path>. Untracked files (build output, local .env, the manifest)
// stay behind, as they would in a fresh clone.
func (b *bundle) addCheckout(log *progress.Logger) error {
	cmd := exec.CommandContext(context.Background(), "git", "-C", b.projectDir, "ls-files", "-z", "--cached")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return exit.Usagef("the compose file bind-mounts the project directory (.); slipway ships the checkout's tracked files for it, "+
			"but 'git ls-files' in %s failed: %v: %s; deploy from a git checkout, or mount subdirectories instead of .",
			b.projectDir, err, strings.TrimSpace(stderr.String()))
	}
	n := 0
	for _, rel := range strings.Split(string(out), "\x00") {
		if rel == "" {
			continue
		}
		abs := filepath.Join(b.projectDir, filepath.FromSlash(rel))
		st, err := os.Lstat(abs)
		if err != nil {
			log.Warnf("%s is tracked by git but missing from the checkout: not uploaded", rel)
			continue
		}
		if !st.Mode().IsRegular() {
			if st.Mode()&os.ModeSymlink != 0 {
				log.Warnf("%s is a symbolic link: not uploaded with the checkout", rel)
			}
			continue // submodules (directories) and other non-files
		}
		if err := b.addFile(path.Join(checkoutDir, rel), abs, st); err != nil {
			return err
		}
		n++
	}
	b.checkout = true
	log.Printf("the compose file bind-mounts the project directory (.): %d tracked file(s) travel with the release in %s/", n, checkoutDir)
	return nil
}

// checkoutMounts makes a mount of the project directory (.) mount the
// release's copy of the checkout instead.
func (b *bundle) checkoutMounts(mounts map[string]string) map[string]string {
	if !b.checkout {
		return mounts
	}
	if mounts == nil {
		mounts = map[string]string{}
	}
	mounts["."] = "./" + checkoutDir
	return mounts
}
