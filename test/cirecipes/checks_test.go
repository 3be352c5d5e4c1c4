package cirecipes

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type manifest struct {
	Branch, Commit, BuildNumber string
	Services                    map[string]struct {
		Image, Digest string
		Tags          []string
	}
}

func readManifest(path string) (*manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &m, nil
}

// tags lists a repository's tags in the registry (404: no such repository).
func (w *world) tags(t *testing.T, image string) (int, []string) {
	repo, ok := strings.CutPrefix(image, w.svc.Registry+"/")
	if !ok {
		t.Fatalf("image %s is not in the test registry %s", image, w.svc.Registry)
	}
	c, err := w.svc.RegistryClient()
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(w.ctx, http.MethodGet, "https://"+w.svc.Registry+"/v2/"+repo+"/tags/list", nil)
	req.SetBasicAuth(w.regUser, w.regPW)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("registry tags of %s: %v", repo, err)
	}
	defer resp.Body.Close()
	var body struct{ Tags []string }
	json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body.Tags
}

func (w *world) assertNotPushed(t *testing.T, fail func(string, ...any), m *manifest) {
	if m == nil {
		return
	}
	for name, s := range m.Services {
		if code, tags := w.tags(t, s.Image); code != http.StatusNotFound || len(tags) != 0 {
			fail("service %s: %s is in the registry (%d, tags %v): pushed although it must not be", name, s.Image, code, tags)
		}
	}
}

func (w *world) assertNotDeployed(fail func(string, ...any), deployDir string) {
	if _, err := os.Stat(deployDir); err == nil {
		fail("%s exists on the target: deployed although it must not be", deployDir)
	}
}

func (w *world) assertJUnit(r *ciRun, fail func(string, ...any)) {
	if strings.HasSuffix(r.recipe, ".gitlab-ci.yml") { // what its junit report glob matched
		if r.junit == 0 {
			fail("artifacts:reports:junit matched no file")
		}
		return
	}
	if globCount(r.ws, "test-results/**/*.xml") == 0 {
		fail("no JUnit XML under test-results/")
	}
}

func (w *world) assertPushed(t *testing.T, fail func(string, ...any), m *manifest, sha string) {
	if len(m.Services) == 0 {
		fail("the manifest lists no built service")
	}
	for name, s := range m.Services {
		if s.Digest == "" {
			fail("service %s: no digest in the manifest: not pushed", name)
		}
		if code, tags := w.tags(t, s.Image); code != http.StatusOK || !contains(tags, sha) {
			fail("service %s: the registry has %s tags %v (%d), want the commit %s", name, s.Image, tags, code, sha)
		}
	}
}

// assertServes: current points at the commit's release, whose .env holds the
// app secret (it was delivered), and the app answers on the target.
func (w *world) assertServes(t *testing.T, fail func(string, ...any), deployDir, sha string, port int) {
	cur, err := os.Readlink(filepath.Join(deployDir, "current"))
	if err != nil || filepath.Base(cur) != sha {
		fail("%s/current -> %q (%v), want releases/%s", deployDir, cur, err, sha)
		return
	}
	env, err := os.ReadFile(filepath.Join(deployDir, "current", ".env"))
	if err != nil || !bytes.Contains(env, []byte(w.appSecret)) {
		fail("the release's .env does not hold the app secret from the CI's settings (%v)", err)
	}
	url := fmt.Sprintf("http://%s:%d/healthz", w.tg.Host, port)
	var last string
	for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		ctx, cancel := context.WithTimeout(w.ctx, 30*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			cancel()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = resp.Status
			continue
		}
		cancel()
		last = err.Error()
	}
	fail("the app does not serve %s after the deploy: %s", url, last)
}

// cleanup removes what the runs made: the target's containers, volumes and
// network of the project, images with the run's prefix and the test stacks'
// images on both engines, the deploy directory and the pushed manifests.
func (w *world) cleanup(t *testing.T, project, prefix, deployDir string, manifests []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	docker := func(host string, args ...string) string {
		if host != "" {
			args = append([]string{"-H", host}, args...)
		}
		out, _ := exec.CommandContext(ctx, "docker", args...).Output()
		return strings.TrimSpace(string(out))
	}
	if ids := docker(w.tg.DockerHost, "ps", "-aq", "--filter", "label=com.docker.compose.project="+project); ids != "" {
		docker(w.tg.DockerHost, append([]string{"rm", "-f"}, strings.Fields(ids)...)...)
	}
	docker(w.tg.DockerHost, "volume", "rm", "-f", project+"_dbdata")
	docker(w.tg.DockerHost, "network", "rm", project+"_default")
	for _, host := range []string{w.tg.DockerHost, ""} {
		var refs []string
		for _, ref := range strings.Fields(docker(host, "images", "--format", "{{.Repository}}:{{.Tag}}")) {
			if strings.HasPrefix(ref, prefix+"-") || strings.HasPrefix(ref, project+"-test-") {
				refs = append(refs, ref)
			}
		}
		if len(refs) > 0 {
			docker(host, append([]string{"rmi", "-f"}, refs...)...)
		}
	}
	if err := os.RemoveAll(deployDir); err != nil {
		t.Logf("removing %s: %v", deployDir, err)
	}
	c, err := w.svc.RegistryClient()
	if err != nil {
		return
	}
	for _, p := range manifests {
		m, err := readManifest(p)
		if err != nil {
			continue
		}
		for _, s := range m.Services {
			repo, ok := strings.CutPrefix(s.Image, w.svc.Registry+"/")
			if !ok || s.Digest == "" {
				continue
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodDelete, "https://"+w.svc.Registry+"/v2/"+repo+"/manifests/"+s.Digest, nil)
			req.SetBasicAuth(w.svc.RegistryUser, w.svc.RegistryPassword)
			if resp, err := c.Do(req); err == nil {
				resp.Body.Close()
			}
		}
	}
}

// tarGz is a release archive holding one file, slipway.
func tarGz(t *testing.T, content []byte) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	if err := tw.WriteHeader(&tar.Header{Name: "slipway", Mode: 0o755, Size: int64(len(content)), ModTime: time.Unix(0, 0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(content); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func errOr(err error) string {
	if err != nil {
		return "failed (" + err.Error() + ")"
	}
	return "ok"
}

func tail(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > 60 {
		lines = lines[len(lines)-60:]
	}
	return strings.Join(lines, "\n")
}
