package composecli

// Compose v2 against the real binary test/scripts/services.sh builds (pinned
// version, env.json "ComposeV2"): as the `docker compose` plugin and as a
// standalone executable named by SLIPWAY_COMPOSE, creating and removing a
// real project on the agent's engine.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/tools/internal/progress"
	"github.com/slipway-dev/slipway/tools/internal/testenv"
)

func TestComposeV2DetectPlugin(t *testing.T) {
	_, bin := testenv.RequireComposeV2(t)
	t.Setenv(EnvOverride, "")
	t.Setenv("XDG_CACHE_HOME", t.TempDir())

	t.Setenv("DOCKER_CONFIG", testenv.ComposePluginConfig(t, bin))
	c, err := Detect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.Argv, " ") != "docker compose" || c.Version != testenv.ComposeV2Version || c.Major != 2 || c.V1() {
		t.Errorf("with the plugin installed: detected %+v, want docker compose %s", c, testenv.ComposeV2Version)
	}
	if got := c.String(); got != "docker compose "+testenv.ComposeV2Version {
		t.Errorf("String() = %q", got)
	}

	// The same forced by name.
	t.Setenv(EnvOverride, "docker compose")
	if c, err := Detect(context.Background()); err != nil || c.Version != testenv.ComposeV2Version || c.V1() {
		t.Errorf("SLIPWAY_COMPOSE=\"docker compose\": %+v %v", c, err)
	}

	// Without the plugin, the agent's docker-compose v1 is found instead.
	t.Setenv(EnvOverride, "")
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	if _, err := exec.LookPath("docker-compose"); err != nil {
		if testenv.Required() {
			t.Fatal("no docker-compose v1 on PATH for the fallback half (services.sh up installs it)")
		}
		t.Skip("no docker-compose v1 on PATH for the fallback half")
	}
	c, err = Detect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.Argv, " ") != "docker-compose" || !c.V1() {
		t.Errorf("without the plugin: detected %+v, want docker-compose v1", c)
	}
}

func TestComposeV2DetectStandaloneOverride(t *testing.T) {
	_, bin := testenv.RequireComposeV2(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // no plugin: the override alone decides
	t.Setenv(EnvOverride, bin)
	for i := 0; i < 2; i++ { // the second answer comes from the version cache
		c, err := Detect(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Argv) != 1 || c.Argv[0] != bin || c.Version != testenv.ComposeV2Version || c.V1() {
			t.Errorf("detect %d: %+v, want %s %s (v2)", i, c, bin, testenv.ComposeV2Version)
		}
	}
	cache, err := os.ReadFile(filepath.Join(os.Getenv("XDG_CACHE_HOME"), "slipway", "compose-version.json"))
	if err != nil || !strings.Contains(string(cache), bin) {
		t.Errorf("the standalone v2's version was not cached: %v %s", err, cache)
	}
}

// Both ways of running v2 create a real project from a v2-only file (a
// top-level name, which v1 rejects) with the project flags, then take it down.
func TestComposeV2RunsProject(t *testing.T) {
	env, bin := testenv.RequireComposeV2(t)
	image := env.FixtureImage("debian:bookworm")
	if out, err := exec.Command("docker", "image", "inspect", "--format", ".", image).CombinedOutput(); err != nil {
		t.Fatalf("fixture image %s not on the agent (services.sh up pulls it): %v %s", image, err, out)
	}
	for _, mode := range []string{"plugin", "standalone"} {
		t.Run(mode, func(t *testing.T) {
			t.Setenv("XDG_CACHE_HOME", t.TempDir())
			if mode == "plugin" {
				t.Setenv("DOCKER_CONFIG", testenv.ComposePluginConfig(t, bin))
				t.Setenv(EnvOverride, "")
			} else {
				t.Setenv("DOCKER_CONFIG", t.TempDir())
				t.Setenv(EnvOverride, bin)
			}
			c, err := Detect(context.Background())
			if err != nil || c.V1() {
				t.Fatalf("detect: %+v %v", c, err)
			}
			b := make([]byte, 4)
			rand.Read(b)
			name := "slwcv2" + mode[:1] + hex.EncodeToString(b)
			dir := t.TempDir()
			file := filepath.Join(dir, "compose.yaml")
			yml := "name: ignored-the-flag-wins\nservices:\n  box:\n    image: " + image + "\n    command: [\"sleep\", \"600\"]\n    environment:\n      FROM_ENV: ${SLW_V2_X:-unset}\n"
			if err := os.WriteFile(file, []byte(yml), 0o644); err != nil {
				t.Fatal(err)
			}
			ps := func() string {
				out, _ := exec.Command("docker", "ps", "-aq", "--filter", "label=com.docker.compose.project="+name).Output()
				return strings.TrimSpace(string(out))
			}
			t.Cleanup(func() {
				if ids := ps(); ids != "" {
					_ = exec.Command("docker", append([]string{"rm", "-f"}, strings.Fields(ids)...)...).Run()
				}
				_ = exec.Command("docker", "network", "rm", name+"_default").Run()
			})
			var log bytes.Buffer
			p := Project{Name: name, Files: []string{file}, ProjectDir: dir, Env: append(os.Environ(), "SLW_V2_X=from-child-env"), Log: progress.New(&log)}
			ctx := context.Background()
			if err := c.Run(ctx, p, "up", "--no-start"); err != nil {
				t.Fatalf("up --no-start: %v\n%s", err, log.String())
			}
			id := ps()
			if id == "" {
				t.Fatalf("no container of project %s after up --no-start; log:\n%s", name, log.String())
			}
			out, err := exec.Command("docker", "inspect", "--format", `{{index .Config.Labels "com.docker.compose.version"}} {{range .Config.Env}}{{.}} {{end}}`, id).Output()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(out), testenv.ComposeV2Version+" ") || !strings.Contains(string(out), "FROM_ENV=from-child-env") {
				t.Errorf("container made by %s: %s", c, out)
			}
			// The plain progress COMPOSE_PROGRESS asks for: no cursor movement for the log.
			if strings.Contains(log.String(), "\x1b[") {
				t.Errorf("escape sequences in the compose log: %q", log.String())
			}
			err = c.Run(ctx, p, "down", "--remove-orphans")
			if err != nil {
				t.Fatalf("down: %v\n%s", err, log.String())
			}
			if ids := ps(); ids != "" {
				t.Errorf("containers left after down: %s", ids)
			}
			// A failing command carries the output's tail and the command.
			err = c.Run(ctx, Project{Name: name, Files: []string{filepath.Join(dir, "missing.yaml")}, Env: os.Environ()}, "config")
			if err == nil || !strings.Contains(err.Error(), "config") || !strings.Contains(err.Error(), "missing.yaml") {
				t.Errorf("config of a missing file: %v", err)
			}
		})
	}
}
