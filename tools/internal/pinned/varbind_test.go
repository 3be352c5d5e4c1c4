package pinned

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/tools/internal/testenv"
)

// varBindCompose has the plex shape: bind sources that are variables.
const varBindCompose = "services:\n  plex:\n    image: plex\n    volumes:\n" +
	"      - ${PLEX_MEDIA_PATH}:/media/\n" +
	"      - ${LOG_DIR:-./logs}:/logs\n" +
	"      - data:/data\n" +
	"volumes:\n  data: {}\n"

func loadVarBind(t *testing.T) (Model, string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(varBindCompose), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := LoadModel(context.Background(), LoadOptions{ProjectName: "p", Files: []string{filepath.Join(dir, "compose.yaml")}})
	if err != nil {
		t.Fatal(err)
	}
	return m, dir
}

// Every rendering keeps a variable source in short syntax (where the
// server's compose decides bind or volume after interpolating); a named
// volume stays a volume.
func TestVariableBindSourcesRenderShort(t *testing.T) {
	m, _ := loadVarBind(t)
	for _, tg := range []Target{ComposeV2, ComposeV1, Swarm} {
		data, err := Render(m, tg)
		if err != nil {
			t.Fatalf("%v: %v", tg, err)
		}
		vols, _ := svc(decode(t, data), "plex")["volumes"].([]any)
		if len(vols) != 3 {
			t.Fatalf("%v: volumes %v", tg, vols)
		}
		if vols[0] != "${PLEX_MEDIA_PATH}:/media" || vols[1] != "${LOG_DIR:-./logs}:/logs" {
			t.Errorf("%v: variable sources %v %v, want short syntax\n%s", tg, vols[0], vols[1], data)
		}
		if s, ok := vols[2].(string); ok && s != "data:/data" {
			t.Errorf("%v: named volume %v", tg, vols[2])
		}
	}
}

// The real tools read the pinned file's mounts as binds (Compose v2 used to
// refuse "undefined volume"): Compose v1 for its rendering, v2 for its own.
func TestVariableBindSourcesRealCompose(t *testing.T) {
	m, dir := loadVarBind(t)
	check := func(name string, tg Target, argv ...string) {
		data, err := Render(m, tg)
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, name+".yml")
		if err := os.WriteFile(f, data, 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(argv[0], append(argv[1:], "-f", f, "-p", "p", "config")...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "PLEX_MEDIA_PATH=/srv/media")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s config: %v\n%s\nfile:\n%s", name, err, out, data)
		}
		// v1 prints /srv/media:/media:rw, v2 a long bind with source /srv/media.
		got := string(out)
		if !strings.Contains(got, "/srv/media") || !strings.Contains(got, filepath.Join(dir, "logs")) {
			t.Errorf("%s config does not bind /srv/media and %s/logs:\n%s", name, dir, got)
		}
		if strings.Contains(got, "undefined volume") {
			t.Errorf("%s: %s", name, got)
		}
	}
	check("v1", ComposeV1, tool(t, "docker-compose"))
	_, v2 := testenv.RequireComposeV2(t)
	check("v2", ComposeV2, v2)
}
