package cirecipes

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// ---------- GitLab CI ----------

var gitlabReserved = map[string]bool{"stages": true, "default": true, "variables": true, "workflow": true, "include": true,
	"image": true, "services": true, "before_script": true, "after_script": true, "cache": true}

func (r *ciRun) gitlab() error {
	t := r.t
	doc, keys := load(t, r.recipe)
	stages := asStrings(t, "stages", doc["stages"])
	if len(stages) == 0 {
		stages = []string{"build", "test", "deploy"}
	}
	vars := map[string]string{
		"CI": "true", "GITLAB_CI": "true", "CI_PROJECT_DIR": r.ws, "CI_COMMIT_SHA": r.ev.sha,
		"CI_COMMIT_SHORT_SHA": r.ev.sha[:8], "CI_COMMIT_REF_NAME": r.ev.branch, "CI_DEFAULT_BRANCH": r.ev.defaultBranch,
		"CI_PIPELINE_IID": fmt.Sprint(r.ev.build), "CI_PIPELINE_ID": fmt.Sprint(700000 + r.ev.build),
		"CI_PIPELINE_URL":    fmt.Sprintf("https://gitlab.example.com/acme/shop/-/pipelines/%d", 700000+r.ev.build),
		"CI_PIPELINE_SOURCE": "push", "CI_COMMIT_BRANCH": r.ev.branch,
	}
	if r.ev.pr != 0 {
		// A merge request pipeline: no CI_COMMIT_BRANCH.
		delete(vars, "CI_COMMIT_BRANCH")
		vars["CI_PIPELINE_SOURCE"] = "merge_request_event"
		vars["CI_MERGE_REQUEST_IID"] = fmt.Sprint(r.ev.pr)
		vars["CI_MERGE_REQUEST_SOURCE_BRANCH_NAME"] = r.ev.branch
		vars["CI_MERGE_REQUEST_TARGET_BRANCH_NAME"] = r.ev.defaultBranch
	}
	for k, v := range asMap(doc["variables"]) {
		vars[k] = str(v)
	}
	// Project variables take precedence over the file's: the settings, and
	// the pins (a mirror and its archive's sha256).
	for k, v := range r.pins {
		if _, ok := vars[k]; !ok {
			t.Fatalf("%s: variables: has no %s to replace", r.recipe, k)
		}
		vars[k] = v
	}
	def := asMap(doc["default"])
	type jobRef struct {
		name  string
		stage int
		order int
	}
	var jobs []jobRef
	for i, k := range keys {
		if gitlabReserved[k] || strings.HasPrefix(k, ".") {
			continue
		}
		st := str(asMap(doc[k])["stage"])
		if st == "" {
			st = "test"
		}
		idx := -1
		for j, s := range stages {
			if s == st {
				idx = j
			}
		}
		if idx < 0 {
			t.Fatalf("%s: job %s: stage %q is not in stages", r.recipe, k, st)
		}
		jobs = append(jobs, jobRef{k, idx, i})
	}
	sort.SliceStable(jobs, func(a, b int) bool { return jobs[a].stage < jobs[b].stage })
	var failed []string
	done := map[string]bool{}
	for _, j := range jobs {
		job := asMap(doc[j.name])
		jv := map[string]string{}
		for k, v := range vars {
			jv[k] = v
		}
		for k, v := range asMap(job["variables"]) {
			if _, pinned := r.pins[k]; !pinned {
				jv[k] = str(v)
			}
		}
		if rules, ok := job["rules"].([]any); ok {
			run := false
			for _, rl := range rules {
				rule := asMap(rl)
				match := true
				if c := str(rule["if"]); c != "" {
					m, err := glIf(c, jv)
					if err != nil {
						return fmt.Errorf("%s.rules: %w", j.name, err)
					}
					match = m
				}
				if match {
					run = str(rule["when"]) != "never"
					break
				}
			}
			if !run {
				r.logf("job %s: not in this pipeline (rules)", j.name)
				continue
			}
		}
		if len(failed) > 0 {
			r.logf("job %s: skipped (an earlier job failed)", j.name)
			continue
		}
		_, tmp, env := r.newJob(j.name)
		// A fresh checkout gets the artifacts of the jobs it needs (default: all earlier ones).
		needs := asStrings(t, j.name+".needs", job["needs"])
		if job["needs"] == nil {
			for n := range done {
				needs = append(needs, n)
			}
		}
		for _, n := range needs {
			src := filepath.Join(r.dir, "artifacts", n)
			ents, _ := os.ReadDir(src)
			for _, e := range ents {
				if err := r.copyPath(filepath.Join(src, e.Name()), filepath.Join(r.ws, e.Name())); err != nil {
					return err
				}
			}
		}
		// Settings: File variables become files the runner removes after the job.
		fileDir := filepath.Join(tmp, "file-vars")
		if err := os.MkdirAll(fileDir, 0o700); err != nil {
			t.Fatal(err)
		}
		for k, v := range r.settings {
			if r.files[k] {
				p := filepath.Join(fileDir, k)
				if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
					t.Fatal(err)
				}
				v = p
			}
			env = append(env, k+"="+v)
		}
		for k, v := range jv {
			if _, set := r.settings[k]; !set {
				env = append(env, k+"="+v)
			}
		}
		env = append(env, "CI_JOB_NAME="+j.name)
		before := job["before_script"]
		if before == nil {
			before = def["before_script"]
		}
		lines := append(asStrings(t, j.name+".before_script", before), asStrings(t, j.name+".script", job["script"])...)
		var b strings.Builder
		for i, l := range lines {
			// The runner echoes each command ("$ ..."); the shell stops at the first failure.
			fmt.Fprintf(&b, "printf '%%s\\n' %s\n%s\n", shQuote("$ "+firstLine(l)), l)
			_ = i
		}
		f := filepath.Join(tmp, "script.sh")
		if err := os.WriteFile(f, []byte(b.String()), 0o700); err != nil {
			t.Fatal(err)
		}
		r.jobLog = append(r.jobLog, "gitlab "+j.name)
		err := r.shell(env, "sh", "-e", f)
		if err != nil {
			r.logf("job %s failed: %v", j.name, err)
			failed = append(failed, j.name)
		}
		// Artifacts (when: always, on_success by default).
		arts := asMap(job["artifacts"])
		if err == nil || str(arts["when"]) == "always" {
			for _, p := range asStrings(t, j.name+".artifacts.paths", arts["paths"]) {
				p = strings.TrimSuffix(p, "/")
				if _, serr := os.Stat(filepath.Join(r.ws, p)); serr != nil {
					r.logf("warning: %s: no matching files", p)
					continue
				}
				if cerr := r.copyPath(filepath.Join(r.ws, p), filepath.Join(r.dir, "artifacts", j.name, p)); cerr != nil {
					return cerr
				}
			}
			if g := str(asMap(arts["reports"])["junit"]); g != "" {
				r.junit += globCount(r.ws, g)
			}
		}
		if rerr := os.RemoveAll(fileDir); rerr != nil {
			t.Fatal(rerr)
		}
		done[j.name] = err == nil
	}
	if len(failed) > 0 {
		return fmt.Errorf("jobs failed: %s", strings.Join(failed, ", "))
	}
	return nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// globCount counts files under root matching a `dir/**/*.ext` style glob.
func globCount(root, glob string) int {
	prefix, rest, ok := strings.Cut(glob, "**/")
	if !ok {
		m, _ := filepath.Glob(filepath.Join(root, glob))
		return len(m)
	}
	n := 0
	filepath.WalkDir(filepath.Join(root, prefix), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if ok, _ := filepath.Match(rest, d.Name()); ok {
				n++
			}
		}
		return nil
	})
	return n
}
