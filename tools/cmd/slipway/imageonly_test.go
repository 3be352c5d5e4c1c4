package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/testenv"
)

// imageOnlyCompose is an app that builds nothing: a stock image from the
// registry (auth required) configured by its environment, with the plex
// shape of bind mount (a variable source; Compose v2 once refused it as an
// undefined volume).
const imageOnlyCompose = `name: %s
services:
  web:
    image: %s
    command: ["sh", "-c", "echo \"$$APP_RELEASE\" > /srv/data/seen && mkdir -p /srv/www && echo \"$$APP_RELEASE\" > /srv/www/version && cd /srv/www && exec python3 -m http.server 8000"]
    environment:
      APP_RELEASE: ${APP_RELEASE:-none}
    ports:
      - "${APP_PORT:-8000}:8000"
    volumes:
      - ${APP_DATA:-./data}:/srv/data
    healthcheck:
      test: ["CMD-SHELL", "test -s /srv/www/version"]
      interval: 1s
      timeout: 3s
      retries: 30
    stop_grace_period: 1s
`

const imageOnlyTestCompose = `services:
  web:
    image: %[1]s
    command: ["sh", "-c", "mkdir -p /srv/www && echo none > /srv/www/version && cd /srv/www && exec python3 -m http.server 8000"]
    healthcheck:
      test: ["CMD-SHELL", "test -s /srv/www/version"]
      interval: 1s
      timeout: 3s
      retries: 30
  check:
    image: %[1]s
    command: ["python3", "-c", "import urllib.request; assert urllib.request.urlopen('http://web:8000/version').read().strip() == b'none'"]
    depends_on:
      web: {condition: service_healthy}
`

// TestIntegrationImageOnly takes an app where no service has build: through
// the whole pipeline with the real binary: build writes a manifest of
// external images, push pins their digests (with the registry's auth), test
// runs its stack, deploy and rollback work with Compose v1 (recreate) and
// v2 (rolling).
func TestIntegrationImageOnly(t *testing.T) {
	env := needBinary(t)
	image := env.FixtureImage("python:bookworm")
	repo := image[:strings.LastIndex(image, ":")]
	want := registryManifest(t, env, repo, "bookworm")
	if want == "" {
		t.Fatalf("the fixture image %s is not in the registry", image)
	}
	for _, c := range []struct {
		compose, strategy string
	}{{"v1", "recreate"}, {"v2", "rolling"}} {
		t.Run(c.compose+"-"+c.strategy, func(t *testing.T) {
			var tg *testenv.Target
			for i := range env.Targets {
				if env.Targets[i].Compose == c.compose {
					tg = &env.Targets[i]
					break
				}
			}
			if tg == nil {
				t.Fatalf("no target runs Compose %s", c.compose)
			}
			s := newSite(t, env, *tg, "slwimg"+c.compose)
			dir := t.TempDir()
			writeFiles(t, dir, map[string]string{
				"compose.yaml":            fmt.Sprintf(imageOnlyCompose, s.project, image),
				"docker-compose.test.yml": fmt.Sprintf(imageOnlyTestCompose, image),
				"README":                  "release a\n",
				".gitignore":              "slipway-*\n",
			})
			if err := commitAll(dir); err != nil {
				t.Fatal(err)
			}
			data := t.TempDir()
			if err := os.Chmod(data, 0o777); err != nil {
				t.Fatal(err)
			}
			release := func(name string) (manifestPath, envFile string) {
				b := run(t, dir, baseEnv(env), 5*time.Minute, "build")
				wantCode(t, b, 0)
				if !strings.Contains(b.errText(), "nothing to build") {
					t.Errorf("build does not say there is nothing to build:\n%s", b.errText())
				}
				p := run(t, dir, baseEnv(env), 5*time.Minute, "push")
				wantCode(t, p, 0)
				var m struct {
					Services      map[string]any
					External      map[string]struct{ Image, Digest string }
					PinnedCompose string
				}
				raw, err := os.ReadFile(filepath.Join(dir, "slipway-release.json"))
				if err != nil {
					t.Fatal(err)
				}
				if err := json.Unmarshal(raw, &m); err != nil {
					t.Fatal(err)
				}
				if len(m.Services) != 0 || m.External["web"].Digest != want || m.External["web"].Image != repo {
					t.Fatalf("manifest after push: services %v, external %+v; want none built and web pinned to %s", m.Services, m.External, want)
				}
				pinnedFile, err := os.ReadFile(filepath.Join(dir, m.PinnedCompose))
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(string(pinnedFile), repo+"@"+want) {
					t.Fatalf("the pinned compose file does not pin web to %s@%s:\n%s", repo, want, pinnedFile)
				}
				// Keep this release's manifest and pinned file apart: the next
				// build overwrites them.
				rel := t.TempDir()
				var mm map[string]any
				json.Unmarshal(raw, &mm)
				mm["pinnedCompose"] = filepath.Join(rel, "pinned.yml")
				if err := os.WriteFile(mm["pinnedCompose"].(string), pinnedFile, 0o644); err != nil {
					t.Fatal(err)
				}
				mm["composeFiles"] = []string{filepath.Join(dir, "compose.yaml")}
				mm["projectDirectory"] = dir
				out, _ := json.MarshalIndent(mm, "", "  ")
				manifestPath = filepath.Join(rel, "slipway-release.json")
				if err := os.WriteFile(manifestPath, out, 0o644); err != nil {
					t.Fatal(err)
				}
				envFile = filepath.Join(rel, "prod.env")
				body := fmt.Sprintf("APP_RELEASE=%s\nAPP_PORT=%d\nAPP_DATA=%s\n", name, s.port, data)
				if err := os.WriteFile(envFile, []byte(body), 0o600); err != nil {
					t.Fatal(err)
				}
				return manifestPath, envFile
			}
			deploy := func(manifestPath, envFile, name string) {
				t.Helper()
				args := append([]string{"deploy"}, s.targetArgs()...)
				args = append(args, "--manifest", manifestPath, "--env-file", envFile, "--strategy", c.strategy, "--health-timeout", "3m")
				d := run(t, dir, baseEnv(env), 10*time.Minute, args...)
				wantCode(t, d, 0)
				if got := waitVersion(s, name); got != name {
					t.Fatalf("after deploying %s the site serves %q", name, got)
				}
				if seen, _ := os.ReadFile(filepath.Join(data, "seen")); strings.TrimSpace(string(seen)) != name {
					t.Errorf("the variable bind mount ${APP_DATA} did not reach %s: seen %q", data, seen)
				}
			}

			ma, ea := release("a")
			if c.compose == "v1" {
				// The test stack runs on the agent; once is enough.
				tr := run(t, dir, baseEnv(env), 10*time.Minute, "test", "--results", t.TempDir())
				wantCode(t, tr, 0)
			}
			deploy(ma, ea, "a")
			writeFiles(t, dir, map[string]string{"README": "release b\n"})
			if err := commitAll(dir); err != nil {
				t.Fatal(err)
			}
			mb, eb := release("b")
			deploy(mb, eb, "b")

			rb := run(t, dir, baseEnv(env), 10*time.Minute, append([]string{"rollback"}, s.targetArgs()...)...)
			wantCode(t, rb, 0)
			if got := waitVersion(s, "a"); got != "a" {
				t.Fatalf("after the rollback the site serves %q, want a", got)
			}
			s.wantNoLock(t)
		})
	}
}

// waitVersion polls the site until it serves want, for up to two minutes:
// the health check passes once the version file exists, and the HTTP server
// may bind a moment later on a loaded machine. It returns the last answer.
func waitVersion(s *site, want string) string {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		got := s.version()
		if got == want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(500 * time.Millisecond)
	}
}
