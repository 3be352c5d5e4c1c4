package deploy

// A fake server for the logic tests: a Conn that runs each command with the
// local `sh -c` in a temporary HOME, where `docker` and `docker-compose` are
// this test binary acting as small fakes that keep the engine's state (images,
// containers) in a JSON file. The real thing is tested against real sshd,
// Docker and Compose in integration_test.go.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v4"

	"github.com/slipway-dev/slipway/tools/internal/sshx"
)

const fakeToolEnv = "SLIPWAY_FAKE_TOOL"

func TestMain(m *testing.M) {
	if tool := os.Getenv(fakeToolEnv); tool != "" {
		os.Exit(fakeMain(tool, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// fakeHost is one fake server.
type fakeHost struct {
	t       *testing.T
	name    string
	home    string
	state   string // state dir of the fake engine
	tmp     string // the server's TMPDIR
	env     []string
	mu      sync.Mutex
	cmds    []string
	dials   int
	smoke   string // address DialContext connects to, whatever is asked
	cut     int64  // >0: stdin of the upload session is cut after this many bytes
	badAuth bool   // the fake registry refuses every login
	failImg string // pulls of images containing this fail
	// killOn: the first command containing it kills its connection (the
	// command fails, as does every later one on that connection).
	killOn      string
	refuse      bool             // dials fail (the host is unreachable)
	killRefuses bool             // killOn also makes later dials fail
	onCmd       func(cmd string) // called before each command runs
}

func newFakeHost(t *testing.T, name string) *fakeHost {
	t.Helper()
	root := t.TempDir()
	f := &fakeHost{t: t, name: name, home: filepath.Join(root, "home"), state: filepath.Join(root, "engine"), tmp: filepath.Join(root, "tmp")}
	bin := filepath.Join(root, "bin")
	for _, d := range []string{f.home, f.state, f.tmp, bin} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"docker", "docker-compose"} {
		script := fmt.Sprintf("#!/bin/sh\n%s=%s exec %s \"$@\"\n", fakeToolEnv, tool, sshx.Quote(self))
		if err := os.WriteFile(filepath.Join(bin, tool), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Only the tools a server has besides Docker: the real docker and
	// docker-compose of this machine must not be found.
	sys := filepath.Join(root, "sys")
	os.MkdirAll(sys, 0o755)
	for _, tool := range []string{"sh", "cat", "mkdir", "mv", "rm", "ln", "tar", "find", "grep", "stat", "date", "readlink",
		"mktemp", "dirname", "chmod", "tr", "printf", "sleep", "touch", "echo", "true", "false", "ls", "id", "cp", "wc", "sha256sum"} {
		if p, err := exec.LookPath(tool); err == nil {
			os.Symlink(p, filepath.Join(sys, tool))
		}
	}
	f.env = []string{"HOME=" + f.home, "PATH=" + bin + ":" + sys, "TMPDIR=" + f.tmp, "FAKE_STATE=" + f.state, "LC_ALL=C"}
	return f
}

// conn is a Conn on this host (one "handshake").
func (f *fakeHost) conn() *fakeConn { return &fakeConn{h: f} }

type fakeConn struct {
	h      *fakeHost
	closed bool
	dead   bool
}

func (c *fakeConn) Handshakes() int { return 1 }
func (c *fakeConn) Close() error    { c.closed = true; return nil }

func (c *fakeConn) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	f := c.h
	f.mu.Lock()
	f.cmds = append(f.cmds, cmd)
	if f.killOn != "" && strings.Contains(cmd, f.killOn) {
		f.killOn, c.dead = "", true
		f.refuse = f.refuse || f.killRefuses
	}
	dead, onCmd := c.dead, f.onCmd
	f.mu.Unlock()
	if dead {
		return errors.New("ssh: connection lost")
	}
	if onCmd != nil {
		onCmd(cmd)
	}
	f.mu.Lock()
	cut := f.cut
	env := append([]string(nil), f.env...)
	if f.badAuth {
		env = append(env, "FAKE_BAD_AUTH=1")
	}
	if f.failImg != "" {
		env = append(env, "FAKE_FAIL_IMAGE="+f.failImg)
	}
	f.mu.Unlock()
	if cut > 0 && strings.Contains(cmd, "tar -x") && stdin != nil {
		stdin = io.LimitReader(stdin, cut)
	}
	x := exec.CommandContext(ctx, "sh", "-c", cmd)
	x.Env = env
	x.Dir = f.home
	if stdin != nil {
		// Copied by us, as sshx does: the command's end must not wait for
		// a stdin that stays open (docker system dial-stdio's).
		w, err := x.StdinPipe()
		if err != nil {
			return err
		}
		go func() {
			io.Copy(w, stdin)
			w.Close()
		}()
	}
	var errb bytes.Buffer
	x.Stdout = stdout
	if stdout == nil {
		x.Stdout = io.Discard
	}
	if stderr != nil {
		x.Stderr = io.MultiWriter(&errb, stderr)
	} else {
		x.Stderr = &errb
	}
	err := x.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return &sshx.ExitError{Cmd: cmd, Code: ee.ExitCode(), Stderr: errb.String()}
	}
	return err
}

func (c *fakeConn) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c.h.mu.Lock()
	c.h.dials++
	to := c.h.smoke
	c.h.mu.Unlock()
	if to == "" {
		return nil, fmt.Errorf("connect %s: connection refused", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, to)
}

// fakeDial routes host names to fake hosts.
func fakeDial(hosts ...*fakeHost) DialFunc {
	return func(ctx context.Context, target string, opts sshx.Options) (Conn, error) {
		for _, h := range hosts {
			if h.name == target {
				h.mu.Lock()
				refuse := h.refuse
				h.mu.Unlock()
				if refuse {
					return nil, fmt.Errorf("dial tcp %s:22: connect: connection refused", target)
				}
				return h.conn(), nil
			}
		}
		return nil, fmt.Errorf("dial tcp %s:22: connect: no route to host", target)
	}
}

func (f *fakeHost) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.cmds...)
}

// engine reads the fake engine's state.
func (f *fakeHost) engine() *fakeState {
	st, err := loadState(f.state)
	if err != nil {
		f.t.Fatal(err)
	}
	return st
}

// ---- the fake tools ----

type fakeContainer struct {
	ID, Name, Service, Project, Image, WorkingDir string
	State, Health                                 string
	ExitCode                                      int
	RestartPolicy                                 string
	OneOff                                        bool
}

type fakeState struct {
	Images     map[string]bool
	Containers []fakeContainer
	Log        []string // compose and docker commands that changed something
	Seq        int
}

func loadState(dir string) (*fakeState, error) {
	st := &fakeState{Images: map[string]bool{}}
	data, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, st); err != nil {
		return nil, err
	}
	if st.Images == nil {
		st.Images = map[string]bool{}
	}
	return st, nil
}

func (st *fakeState) save(dir string) error {
	data, _ := json.MarshalIndent(st, "", " ")
	tmp := filepath.Join(dir, "state.json.tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "state.json"))
}

// fakeMain is docker or docker-compose. It holds an flock on the state for
// the whole command, as parallel pulls run at once.
func fakeMain(tool string, args []string) int {
	dir := os.Getenv("FAKE_STATE")
	lf, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 125
	}
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 125
	}
	st, err := loadState(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 125
	}
	var code int
	if tool == "docker" {
		code = fakeDocker(st, args)
	} else {
		code = fakeCompose(st, args)
	}
	if err := st.save(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 125
	}
	return code
}

func fakeDocker(st *fakeState, args []string) int {
	if len(args) == 0 {
		return 1
	}
	switch args[0] {
	case "version":
		fmt.Println("20.10.99-fake")
		return 0
	case "compose":
		fmt.Fprintln(os.Stderr, "docker: 'compose' is not a docker command.")
		return 1
	case "login":
		cfg := filepath.Join(os.Getenv("DOCKER_CONFIG"), "config.json")
		data, err := os.ReadFile(cfg)
		if err != nil || os.Getenv("DOCKER_CONFIG") == "" {
			fmt.Fprintln(os.Stderr, "Error: Cannot perform an interactive login from a non TTY device")
			return 1
		}
		var c struct {
			Auths map[string]struct{ Auth string }
		}
		_ = json.Unmarshal(data, &c)
		a, ok := c.Auths[args[1]]
		raw, _ := base64.StdEncoding.DecodeString(a.Auth)
		if !ok || os.Getenv("FAKE_BAD_AUTH") != "" || !strings.Contains(string(raw), ":") {
			fmt.Fprintln(os.Stderr, "Error response from daemon: Get \"https://"+args[1]+"/v2/\": unauthorized")
			return 1
		}
		st.Log = append(st.Log, "login "+args[1]+" as "+strings.SplitN(string(raw), ":", 2)[0])
		fmt.Println("Login Succeeded")
		return 0
	case "image":
		switch args[1] {
		case "inspect":
			if st.Images[args[len(args)-1]] {
				return 0
			}
			fmt.Fprintln(os.Stderr, "Error: No such image")
			return 1
		case "rm":
			for _, img := range args[2:] {
				inUse := false
				for _, c := range st.Containers {
					inUse = inUse || c.Image == img
				}
				if !inUse {
					delete(st.Images, img)
					st.Log = append(st.Log, "rmi "+img)
				}
			}
			return 0
		}
	case "pull":
		img := args[len(args)-1]
		if fi := os.Getenv("FAKE_FAIL_IMAGE"); fi != "" && strings.Contains(img, fi) {
			fmt.Fprintln(os.Stderr, "Error response from daemon: manifest for "+img+" not found")
			return 1
		}
		st.Images[img] = true
		st.Log = append(st.Log, "pull "+img+" DOCKER_CONFIG="+os.Getenv("DOCKER_CONFIG"))
		return 0
	case "ps":
		project := ""
		for _, a := range args {
			if v, ok := strings.CutPrefix(a, "label=com.docker.compose.project="); ok {
				project = v
			}
		}
		for _, c := range st.Containers {
			if c.Project == project {
				fmt.Println(c.ID)
			}
		}
		return 0
	case "inspect":
		var out []map[string]any
		for _, id := range args[1:] {
			for _, c := range st.Containers {
				if c.ID != id {
					continue
				}
				state := map[string]any{"Status": c.State, "ExitCode": c.ExitCode, "StartedAt": time.Now().UTC().Format(time.RFC3339)}
				if c.Health != "" {
					state["Health"] = map[string]any{"Status": c.Health}
				}
				out = append(out, map[string]any{
					"Id": c.ID, "Name": "/" + c.Name, "RestartCount": 0, "State": state,
					"Config": map[string]any{"Image": c.Image, "Labels": map[string]string{
						"com.docker.compose.project": c.Project, "com.docker.compose.service": c.Service,
						"com.docker.compose.oneoff":              map[bool]string{true: "True", false: "False"}[c.OneOff],
						"com.docker.compose.project.working_dir": c.WorkingDir}},
					"HostConfig": map[string]any{"RestartPolicy": map[string]any{"Name": c.RestartPolicy}},
				})
			}
		}
		data, _ := json.Marshal(out)
		fmt.Println(string(data))
		return 0
	case "volume":
		// The fake engine keeps no volumes: ls lists none, rm has none to remove.
		return 0
	case "logs":
		id := args[len(args)-1]
		for _, c := range st.Containers {
			if c.ID == id {
				fmt.Printf("starting %s\nfatal: %s is broken\n", c.Service, c.Service)
			}
		}
		return 0
	}
	fmt.Fprintf(os.Stderr, "fake docker: unsupported %q\n", args)
	return 1
}

func fakeCompose(st *fakeState, args []string) int {
	var project, file, dir string
	i := 0
	for ; i < len(args); i++ {
		switch args[i] {
		case "-p":
			i++
			project = args[i]
		case "-f":
			i++
			file = args[i]
		case "--project-directory":
			i++
			dir = args[i]
		default:
			goto cmd
		}
	}
cmd:
	if i >= len(args) {
		return 1
	}
	verb, rest := args[i], args[i+1:]
	if verb == "version" {
		fmt.Println("1.29.2")
		return 0
	}
	data, err := os.ReadFile(file)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var model struct {
		Name     string `yaml:"name"`
		Services map[string]struct {
			Image  string            `yaml:"image"`
			Labels map[string]string `yaml:"labels"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(data, &model); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if model.Name != "" {
		fmt.Fprintln(os.Stderr, "ERROR: The Compose file is invalid because: Additional properties are not allowed ('name' was unexpected)")
		return 1
	}
	st.Log = append(st.Log, "compose "+verb+" "+filepath.Base(dir)+" "+strings.Join(rest, " "))
	switch verb {
	case "up":
		var keep []fakeContainer
		for _, c := range st.Containers {
			if c.Project != project {
				keep = append(keep, c)
			}
		}
		names := make([]string, 0, len(model.Services))
		for n := range model.Services {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			s := model.Services[n]
			if !st.Images[s.Image] {
				fmt.Fprintf(os.Stderr, "ERROR: image %s not present\n", s.Image)
				return 1
			}
			state := s.Labels["fake.state"]
			if state == "" {
				state = "running"
			}
			st.Seq++
			keep = append(keep, fakeContainer{ID: fmt.Sprintf("%064d", st.Seq), Name: project + "_" + n + "_1", Service: n, Project: project,
				Image: s.Image, WorkingDir: dir, State: state, Health: s.Labels["fake.health"], ExitCode: map[bool]int{true: 1}[state == "exited"]})
		}
		st.Containers = keep
		return 0
	case "down":
		var keep []fakeContainer
		for _, c := range st.Containers {
			if c.Project != project {
				keep = append(keep, c)
			}
		}
		st.Containers = keep
		return 0
	case "pull":
		for _, s := range model.Services {
			st.Images[s.Image] = true
		}
		return 0
	case "run":
		// run --rm -T SERVICE sh -c CMD
		cmd := rest[len(rest)-1]
		x := exec.Command("sh", "-c", cmd)
		x.Dir = dir
		x.Stdout, x.Stderr = os.Stdout, os.Stderr
		if err := x.Run(); err != nil {
			return 1
		}
		return 0
	}
	fmt.Fprintf(os.Stderr, "fake compose: unsupported %q\n", args)
	return 1
}
