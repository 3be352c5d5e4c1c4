package cirecipes

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/test/internal/svcstate"
)

// fakeSlipway logs each call (arguments, BRANCH_NAME, BUILD_NUMBER, whether
// the registry password is in its environment) to $FAKE_SLIPWAY_LOG and acts
// out the files each command writes; test fails when SAMPLEAPP_FAIL_TEST=1.
const fakeSlipway = `#!/bin/sh
printf '%s|branch=%s|build=%s|regpw=%s\n' "$*" "${BRANCH_NAME:-}" "${BUILD_NUMBER:-}" "${SLIPWAY_REGISTRY_PASSWORD:+set}" >>"$FAKE_SLIPWAY_LOG"
case "$1" in
build) printf '{"branch":"%s"}\n' "${BRANCH_NAME:-}" >slipway-release.json ;;
test) mkdir -p test-results/tests && echo '<testsuite/>' >test-results/tests/junit.xml
      [ "${SAMPLEAPP_FAIL_TEST:-0}" = 1 ] && exit 3 ;;
push) echo pinned >slipway-compose.pinned.yml ;;
deploy) for a in "$@"; do case "$a" in --identity) next=key ;; *) if [ "${next:-}" = key ]; then [ -s "$a" ] || exit 9; next=; fi ;; esac; done ;;
esac
exit 0
`

// TestRecipesFlow runs every recipe through its CI's emulation with a fake
// slipway (no services needed): which commands run in which scenario, with
// which branch and build number, and that a tampered download never runs.
func TestRecipesFlow(t *testing.T) {
	root := svcstate.RepoRoot(t)
	p := readPin(t, root)
	base := t.TempDir()
	good := tarGz(t, []byte(fakeSlipway))
	sum := sha256.Sum256(good)
	marker := filepath.Join(base, "tampered-ran")
	bad := tarGz(t, []byte("#!/bin/sh\ntouch '"+marker+"'\n"))
	mux := http.NewServeMux()
	mux.HandleFunc("/good/v"+p.Version+"/"+p.Archive, func(rw http.ResponseWriter, _ *http.Request) { rw.Write(good) })
	mux.HandleFunc("/bad/v"+p.Version+"/"+p.Archive, func(rw http.ResponseWriter, _ *http.Request) { rw.Write(bad) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	for _, rc := range recipes {
		for _, sc := range []struct {
			name, branch string
			pr           bool
			url, env     string
		}{
			{"tampered", "main", false, "/bad", ""},
			{"failingtest", "main", false, "/good", "SAMPLEAPP_FAIL_TEST=1"},
			{"pr", "feature/x", true, "/good", ""},
			{"branch", "feature/x", false, "/good", ""},
			{"main", "main", false, "/good", ""},
		} {
			t.Run(rc.name+"/"+sc.name, func(t *testing.T) {
				dir := t.TempDir()
				ws := filepath.Join(dir, "ws")
				git := func(args ...string) string {
					out, err := exec.CommandContext(ctx, "git", append([]string{"-C", ws, "-c", "user.name=t", "-c", "user.email=t@t.invalid", "-c", "commit.gpgsign=false"}, args...)...).Output()
					if err != nil {
						t.Fatalf("git %v: %v", args, err)
					}
					return strings.TrimSpace(string(out))
				}
				if err := os.MkdirAll(ws, 0o700); err != nil {
					t.Fatal(err)
				}
				git("init", "-q", "-b", sc.branch)
				git("commit", "-q", "--allow-empty", "-m", "x")
				log := filepath.Join(dir, "calls.log")
				settings := map[string]string{"SLIPWAY_REGISTRY": "r.invalid/x", "SLIPWAY_REGISTRY_USER": "u", "SLIPWAY_REGISTRY_PASSWORD": "sekrit-pw",
					"SLIPWAY_DEPLOY_HOST": "d@h.invalid", "SLIPWAY_DEPLOY_DIR": "/srv/x", "SLIPWAY_SSH_KEY": "sekrit-key\n", "SLIPWAY_SSH_KEY_B64": "c2Vrcml0LWtleQo=",
					"SLIPWAY_KNOWN_HOSTS": "h.invalid ssh-ed25519 AAAA", "SLIPWAY_HOST_KEY": "SHA256:x"}
				r := &ciRun{t: t, ctx: ctx, recipe: filepath.Join(root, "docs/ci", rc.file), ws: ws, dir: dir, settings: settings,
					secret: map[string]bool{"SLIPWAY_REGISTRY_PASSWORD": true, "SLIPWAY_SSH_KEY": true, "SLIPWAY_KNOWN_HOSTS": true},
					files:  map[string]bool{"SLIPWAY_SSH_KEY": true, "SLIPWAY_KNOWN_HOSTS": true},
					pins:   map[string]string{"SLIPWAY_DOWNLOAD_URL": srv.URL + sc.url + "/v{version}/{archive}", "SLIPWAY_SHA256": hex.EncodeToString(sum[:])},
					ev:     event{branch: sc.branch, defaultBranch: "main", sha: git("rev-parse", "HEAD"), build: 17},
					base:   []string{"PATH=" + os.Getenv("PATH"), "FAKE_SLIPWAY_LOG=" + log, sc.env}}
				if sc.pr {
					r.ev.pr = 3
				}
				err := rc.run(r)
				data, _ := os.ReadFile(log)
				calls := string(data)
				t.Logf("%v; calls:\n%s", errOr(err), calls)
				has := func(cmd string) bool { return strings.Contains("\n"+calls, "\n"+cmd) }
				bad := func(msg string) { t.Errorf("%s\nCI log:\n%s", msg, tail(r.out.String())) }
				switch sc.name {
				case "tampered":
					if err == nil || calls != "" {
						bad("a tampered download was not refused")
					}
					if _, serr := os.Stat(marker); serr == nil {
						bad("the tampered binary ran")
					}
				case "failingtest":
					if err == nil || !has("build --pull") || !has("test") || has("push") || has("deploy") {
						bad("a failing test must fail the pipeline after build and test, before push and deploy")
					}
				case "branch":
					if rc.short == "gh" { // on.push.branches: [main]: not triggered
						if err != nil || calls != "" {
							bad("a push to another branch must not trigger the workflow")
						}
						break
					}
					fallthrough
				case "pr":
					if err != nil || !has("build --pull") || !has("test") || has("push") || has("deploy") {
						bad("a pull request or branch must build and test, and neither push nor deploy")
					}
					if !strings.Contains(calls, "build --pull --registry r.invalid/x|branch=feature/x|") {
						bad("build did not get BRANCH_NAME=feature/x")
					}
				case "main":
					if err != nil || !has("build --pull") || !has("test") || !has("push|") || !has("deploy ") {
						bad("the default branch must build, test, push and deploy")
					}
					if rc.short != "sh" && !strings.Contains(calls, "|build=17|") {
						bad("build did not get the CI's build number")
					}
					if !strings.Contains(calls, "push|branch=main|build=") || !strings.Contains(calls, "regpw=set") {
						bad("push did not get the registry password in its environment")
					}
					if strings.Contains(calls, "sekrit") || strings.Contains(calls, "c2Vrcml0") {
						bad("a secret is on slipway's command line")
					}
				}
			})
		}
	}
}
