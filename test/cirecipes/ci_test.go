package cirecipes

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v4"
)

// event is what triggered the emulated pipeline.
type event struct {
	branch        string // the pushed branch, or a pull request's source branch
	pr            int    // pull/merge request number; 0 for a push
	defaultBranch string
	sha           string
	build         int // the CI's build/pipeline number
}

// ciRun is one run of one recipe: its workspace (the checkout), the
// variables a user stores in the CI's settings, and everything the CI logs.
type ciRun struct {
	t        *testing.T
	ctx      context.Context
	recipe   string            // the recipe file in docs/ci
	ws       string            // the checkout
	dir      string            // the run's homes, temps and artifacts
	base     []string          // the agent's environment (no secret)
	settings map[string]string // the CI's variables and secrets
	secret   map[string]bool   // which settings are secrets (GitHub: secrets., else vars.)
	files    map[string]bool   // GitLab: variables of type File
	pins     map[string]string // replaces the recipe's pinned values (mirror URL, its sha256)
	ev       event

	mu     sync.Mutex
	out    bytes.Buffer // the CI's log
	jobs   int
	junit  int      // GitLab: files its artifacts:reports:junit glob matched
	jobLog []string // which jobs/steps ran, for the assertions
}

func (r *ciRun) logf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(&r.out, format+"\n", args...)
}

func (r *ciRun) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out.Write(p)
}

// newJob makes a fresh HOME, TMPDIR and DOCKER_CONFIG (a new runner) and,
// after the first job, resets the checkout as a fresh clone of the commit.
func (r *ciRun) newJob(name string) (home, tmp string, env []string) {
	r.jobs++
	j := filepath.Join(r.dir, fmt.Sprintf("job%d-%s", r.jobs, strings.ReplaceAll(name, "/", "_")))
	home, tmp = filepath.Join(j, "home"), filepath.Join(j, "tmp")
	for _, d := range []string{home, tmp, filepath.Join(j, "docker-config")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			r.t.Fatal(err)
		}
	}
	if r.jobs > 1 {
		if out, err := exec.CommandContext(r.ctx, "git", "-C", r.ws, "clean", "-ffdxq").CombinedOutput(); err != nil {
			r.t.Fatalf("git clean (a new job's fresh checkout): %v\n%s", err, out)
		}
	}
	r.jobLog = append(r.jobLog, "job "+name)
	env = append(append([]string{}, r.base...), "HOME="+home, "TMPDIR="+tmp, "DOCKER_CONFIG="+filepath.Join(j, "docker-config"), "CI=true")
	return home, tmp, env
}

// shell runs a script file with the given interpreter; its output is the CI's log.
func (r *ciRun) shell(env []string, argv ...string) error {
	cmd := exec.CommandContext(r.ctx, argv[0], argv[1:]...)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = r.ws, env, r, r
	cmd.WaitDelay = time.Minute
	return cmd.Run()
}

func load(t *testing.T, path string) (map[string]any, []string) {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	// Key order (jobs run in file order).
	var n yaml.Node
	if err := yaml.Unmarshal(data, &n); err != nil {
		t.Fatal(err)
	}
	var keys []string
	if len(n.Content) == 1 && n.Content[0].Kind == yaml.MappingNode {
		for i := 0; i < len(n.Content[0].Content); i += 2 {
			keys = append(keys, n.Content[0].Content[i].Value)
		}
	}
	return doc, keys
}

func orderedKeys(t *testing.T, path string, under string) []string {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var n yaml.Node
	if err := yaml.Unmarshal(data, &n); err != nil {
		t.Fatal(err)
	}
	m := n.Content[0]
	for i := 0; i < len(m.Content); i += 2 {
		if m.Content[i].Value == under {
			var keys []string
			for k := 0; k < len(m.Content[i+1].Content); k += 2 {
				keys = append(keys, m.Content[i+1].Content[k].Value)
			}
			return keys
		}
	}
	return nil
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func asStrings(t *testing.T, where string, v any) []string {
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				t.Fatalf("%s: %T where a command string belongs", where, e)
			}
			out = append(out, s)
		}
		return out
	}
	t.Fatalf("%s: %T where a command list belongs", where, v)
	return nil
}

func str(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		return fmt.Sprint(x)
	default:
		return fmt.Sprint(x)
	}
}

// copyPath copies src (file or directory) to dst with cp -a.
func (r *ciRun) copyPath(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	if out, err := exec.CommandContext(r.ctx, "cp", "-a", src, dst).CombinedOutput(); err != nil {
		return fmt.Errorf("cp -a %s %s: %v: %s", src, dst, err, out)
	}
	return nil
}

// ---------- GitHub Actions ----------

func (r *ciRun) github() error {
	t := r.t
	doc, _ := load(t, r.recipe)
	ctx := map[string]string{
		"github.event_name": "push", "github.sha": r.ev.sha, "github.run_number": fmt.Sprint(r.ev.build),
		"github.run_id": fmt.Sprint(9000000 + r.ev.build), "github.server_url": "https://github.com",
		"github.repository": "acme/shop", "github.event.repository.default_branch": r.ev.defaultBranch,
		"github.ref": "refs/heads/" + r.ev.branch, "github.ref_name": r.ev.branch, "github.head_ref": "", "github.base_ref": "",
	}
	if r.ev.pr != 0 {
		ctx["github.event_name"] = "pull_request"
		ctx["github.ref"] = fmt.Sprintf("refs/pull/%d/merge", r.ev.pr)
		ctx["github.ref_name"] = fmt.Sprintf("%d/merge", r.ev.pr)
		ctx["github.head_ref"] = r.ev.branch
		ctx["github.base_ref"] = r.ev.defaultBranch
	}
	for k, v := range r.settings {
		if r.secret[k] {
			ctx["secrets."+k] = v
		} else {
			ctx["vars."+k] = v
		}
	}
	// on: the trigger must start the workflow.
	on := asMap(doc["on"])
	if r.ev.pr != 0 {
		if _, ok := on["pull_request"]; !ok {
			r.logf("(workflow not triggered by pull_request)")
			return nil
		}
	} else {
		push, ok := on["push"]
		if !ok {
			r.logf("(workflow not triggered by push)")
			return nil
		}
		if br := asMap(push)["branches"]; br != nil && !contains(asStrings(t, "on.push.branches", br), r.ev.branch) {
			r.logf("(workflow not triggered by a push to %s)", r.ev.branch)
			return nil
		}
	}
	wfEnv, err := r.ghEnv(asMap(doc["env"]), ctx, true)
	if err != nil {
		return err
	}
	jobs := asMap(doc["jobs"])
	result := map[string]bool{} // job -> succeeded
	var failed []string
	for _, name := range orderedKeys(t, r.recipe, "jobs") {
		job := asMap(jobs[name])
		run := true
		for _, need := range asStrings(t, name+".needs", job["needs"]) {
			if ok, seen := result[need]; !seen || !ok {
				run = false
			}
		}
		if run {
			ok, err := ghIf(str(job["if"]), ctx, false)
			if err != nil {
				return fmt.Errorf("jobs.%s.if: %w", name, err)
			}
			run = ok
		}
		if !run {
			r.logf("job %s: skipped", name)
			continue
		}
		ok, err := r.ghJob(name, job, ctx, wfEnv)
		if err != nil {
			return err
		}
		result[name] = ok
		if !ok {
			failed = append(failed, name)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("jobs failed: %s", strings.Join(failed, ", "))
	}
	return nil
}

// ghEnv evaluates an env: block; pins replace the recipe's pinned values.
func (r *ciRun) ghEnv(m map[string]any, ctx map[string]string, pin bool) ([]string, error) {
	var out []string
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v, err := ghSubst(str(m[k]), ctx)
		if err != nil {
			return nil, fmt.Errorf("env %s: %w", k, err)
		}
		if p, ok := r.pins[k]; ok && pin {
			v = p
		}
		out = append(out, k+"="+v)
	}
	return out, nil
}

func (r *ciRun) ghJob(name string, job map[string]any, ctx map[string]string, wfEnv []string) (bool, error) {
	t := r.t
	_, tmp, env := r.newJob(name)
	ghPath := filepath.Join(tmp, "github_path")
	ghEnvFile := filepath.Join(tmp, "github_env")
	for _, f := range []string{ghPath, ghEnvFile} {
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	jctx := map[string]string{"runner.temp": tmp}
	for k, v := range ctx {
		jctx[k] = v
	}
	jobEnv, err := r.ghEnv(asMap(job["env"]), jctx, false)
	if err != nil {
		return false, fmt.Errorf("jobs.%s: %w", name, err)
	}
	env = append(env, "GITHUB_ACTIONS=true", "GITHUB_WORKSPACE="+r.ws, "RUNNER_TEMP="+tmp,
		"GITHUB_PATH="+ghPath, "GITHUB_ENV="+ghEnvFile, "GITHUB_SHA="+ctx["github.sha"], "GITHUB_REF="+ctx["github.ref"],
		"GITHUB_REF_NAME="+ctx["github.ref_name"], "GITHUB_HEAD_REF="+ctx["github.head_ref"], "GITHUB_BASE_REF="+ctx["github.base_ref"],
		"GITHUB_EVENT_NAME="+ctx["github.event_name"], "GITHUB_RUN_NUMBER="+ctx["github.run_number"], "GITHUB_RUN_ID="+ctx["github.run_id"])
	env = append(append(env, wfEnv...), jobEnv...)
	steps, _ := job["steps"].([]any)
	failed := false
	var extraEnv []string
	for i, s := range steps {
		step := asMap(s)
		label := fmt.Sprintf("%s step %d %s", name, i+1, str(step["name"]))
		ok, err := ghIf(str(step["if"]), jctx, failed)
		if err != nil {
			return false, fmt.Errorf("%s if: %w", label, err)
		}
		if !ok {
			r.logf("%s: skipped", label)
			continue
		}
		r.jobLog = append(r.jobLog, label)
		with := asMap(step["with"])
		if uses := str(step["uses"]); uses != "" {
			action, _, _ := strings.Cut(uses, "@")
			r.logf("%s: uses %s", label, uses)
			switch action {
			case "actions/checkout":
				// The workspace is the checkout (reset for each new job).
			case "actions/upload-artifact":
				for _, p := range strings.Split(strings.TrimSpace(str(with["path"])), "\n") {
					p = strings.TrimSuffix(strings.TrimSpace(p), "/")
					if _, err := os.Stat(filepath.Join(r.ws, p)); err != nil {
						r.logf("warning: no files at %s (artifact %s)", p, str(with["name"]))
						continue
					}
					if err := r.copyPath(filepath.Join(r.ws, p), filepath.Join(r.dir, "artifacts", str(with["name"]), p)); err != nil {
						return false, err
					}
				}
			case "actions/download-artifact":
				src := filepath.Join(r.dir, "artifacts", str(with["name"]))
				ents, err := os.ReadDir(src)
				if err != nil {
					r.logf("error: artifact %s not found", str(with["name"]))
					failed = true
					continue
				}
				for _, e := range ents {
					if err := r.copyPath(filepath.Join(src, e.Name()), filepath.Join(r.ws, e.Name())); err != nil {
						return false, err
					}
				}
			default:
				return false, fmt.Errorf("%s: action %s is not emulated", label, uses)
			}
			continue
		}
		script, err := ghSubst(str(step["run"]), jctx)
		if err != nil {
			return false, fmt.Errorf("%s run: %w", label, err)
		}
		stepEnv, err := r.ghEnv(asMap(step["env"]), jctx, false)
		if err != nil {
			return false, fmt.Errorf("%s: %w", label, err)
		}
		f := filepath.Join(tmp, fmt.Sprintf("step%d.sh", i+1))
		if err := os.WriteFile(f, []byte(script), 0o700); err != nil {
			t.Fatal(err)
		}
		e := append(append(append([]string{}, env...), extraEnv...), stepEnv...)
		e = append(e, "PATH="+ghPATH(t, ghPath, r.base))
		r.logf("%s: run", label)
		if err := r.shell(e, "bash", "-e", f); err != nil {
			r.logf("%s: %v", label, err)
			failed = true
		}
		// GITHUB_ENV: NAME=value lines set for the following steps.
		if data, err := os.ReadFile(ghEnvFile); err == nil {
			extraEnv = nil
			for _, l := range strings.Split(string(data), "\n") {
				if strings.Contains(l, "=") {
					extraEnv = append(extraEnv, l)
				}
			}
		}
	}
	return !failed, nil
}

// ghPATH is PATH with GITHUB_PATH's entries first (the last added first).
func ghPATH(t *testing.T, file string, base []string) string {
	path := ""
	for _, e := range base {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			path = v
		}
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			path = l + ":" + path
		}
	}
	return path
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
