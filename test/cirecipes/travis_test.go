package cirecipes

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ---------- Travis CI ----------

// travis runs the phases as travis-build does: one bash session; a failing
// before_install/install/before_script command errors the build at once;
// every script command runs, and TRAVIS_TEST_RESULT turns 1 once one failed.
func (r *ciRun) travis() error {
	t := r.t
	doc, _ := load(t, r.recipe)
	_, tmp, env := r.newJob("travis")
	env = append(env, "TRAVIS=true", "CONTINUOUS_INTEGRATION=true", "TRAVIS_BUILD_DIR="+r.ws,
		"TRAVIS_COMMIT="+r.ev.sha, "TRAVIS_BUILD_NUMBER="+fmt.Sprint(r.ev.build),
		"TRAVIS_BUILD_WEB_URL="+fmt.Sprintf("https://app.travis-ci.com/acme/shop/builds/%d", 50000+r.ev.build),
		"TRAVIS_BRANCH="+r.ev.branch, "TRAVIS_PULL_REQUEST=false", "TRAVIS_PULL_REQUEST_BRANCH=", "TRAVIS_EVENT_TYPE=push")
	if r.ev.pr != 0 {
		// On a pull request TRAVIS_BRANCH is the target branch.
		env = append(env, "TRAVIS_BRANCH="+r.ev.defaultBranch, fmt.Sprintf("TRAVIS_PULL_REQUEST=%d", r.ev.pr),
			"TRAVIS_PULL_REQUEST_BRANCH="+r.ev.branch, "TRAVIS_EVENT_TYPE=pull_request")
	}
	// Repository settings first; .travis.yml's env.global after them.
	for k, v := range r.settings {
		env = append(env, k+"="+v)
	}
	var b strings.Builder
	b.WriteString("travis_fold() { :; }\n")
	seen := map[string]bool{}
	for _, g := range asStrings(t, "env.global", asMap(doc["env"])["global"]) {
		k, v, ok := strings.Cut(g, "=")
		if !ok {
			t.Fatalf("%s: env.global entry %q is not NAME=value", r.recipe, g)
		}
		if p, pinned := r.pins[k]; pinned {
			v = shQuote(p)
			seen[k] = true
		}
		fmt.Fprintf(&b, "export %s=%s\n", k, v)
	}
	for k := range r.pins {
		if !seen[k] {
			t.Fatalf("%s: env.global has no %s to replace", r.recipe, k)
		}
	}
	n := 0
	cmd := func(c string) string {
		n++
		f := filepath.Join(tmp, fmt.Sprintf("cmd%d.sh", n))
		if err := os.WriteFile(f, []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("printf '%%s\\n' %s\neval \"$(cat %s)\"\n", shQuote("$ "+firstLine(c)), shQuote(f))
	}
	for _, phase := range []string{"before_install", "install", "before_script"} {
		for _, c := range asStrings(t, phase, doc[phase]) {
			b.WriteString(cmd(c))
			fmt.Fprintf(&b, "r=$?; if [ $r -ne 0 ]; then echo \"The command failed and exited with $r during %s. Your build has been stopped.\"; exit 2; fi\n", phase)
		}
	}
	for _, c := range asStrings(t, "script", doc["script"]) {
		b.WriteString(cmd(c))
		b.WriteString("r=$?; export TRAVIS_TEST_RESULT=$(( ${TRAVIS_TEST_RESULT:-0} | (r != 0) ))\n")
	}
	b.WriteString("exit ${TRAVIS_TEST_RESULT:-0}\n")
	if doc["deploy"] != nil {
		t.Fatalf("%s: deploy: providers are not emulated", r.recipe)
	}
	f := filepath.Join(tmp, "build.sh")
	if err := os.WriteFile(f, []byte(b.String()), 0o700); err != nil {
		t.Fatal(err)
	}
	r.jobLog = append(r.jobLog, "travis build")
	return r.shell(env, "bash", f)
}

// ---------- plain shell ----------

func (r *ciRun) plain() error {
	_, _, env := r.newJob("pipeline.sh")
	for k, v := range r.settings {
		env = append(env, k+"="+v)
	}
	for k, v := range r.pins {
		env = append(env, k+"="+v)
	}
	r.jobLog = append(r.jobLog, "pipeline.sh")
	return r.shell(env, "sh", r.recipe)
}
