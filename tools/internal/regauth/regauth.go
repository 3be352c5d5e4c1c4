// Package regauth finds registry credentials the way the docker CLI does:
// slipway's own environment variables first (only for the registries slipway
// pushes to, so they never travel to a third-party registry), then the Docker
// config.json (credHelpers, credsStore, auths). It never prints a secret: every
// Auth carries a Source naming where it came from, for error messages.
package regauth

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/distribution/reference"
	"github.com/docker/docker-credential-helpers/client"
	"github.com/docker/docker-credential-helpers/credentials"
)

// Environment variables slipway reads its registry credentials from.
const (
	EnvUser     = "SLIPWAY_REGISTRY_USER"
	EnvPassword = "SLIPWAY_REGISTRY_PASSWORD"
)

// IndexServer is the key Docker uses for Docker Hub in config.json and in
// credential helpers.
const IndexServer = "https://index.docker.io/v1/"

// Auth is what the engine needs to talk to one registry.
type Auth struct {
	Host          string // registry host as in image references: "10.213.0.1:5443", "docker.io"
	ServerAddress string // what docker sends as serveraddress ("https://index.docker.io/v1/" for Docker Hub)
	Username      string
	Password      string
	IdentityToken string
	RegistryToken string
	// Source names where the credentials came from, for messages: "env
	// SLIPWAY_REGISTRY_USER/SLIPWAY_REGISTRY_PASSWORD", "config.json
	// /root/.docker/config.json", "credential helper docker-credential-pass",
	// or "no credentials".
	Source string
}

// Anonymous reports whether there are no credentials.
func (a Auth) Anonymous() bool {
	return a.Username == "" && a.Password == "" && a.IdentityToken == "" && a.RegistryToken == ""
}

// String never shows the secret.
func (a Auth) String() string {
	if a.Anonymous() {
		return fmt.Sprintf("%s (no credentials)", a.Host)
	}
	return fmt.Sprintf("%s as %q (%s)", a.Host, a.Username, a.Source)
}

// Encoded returns the X-Registry-Auth header value the engine expects
// (base64url JSON), or "" for anonymous access.
func (a Auth) Encoded() string {
	if a.Anonymous() {
		return ""
	}
	b, _ := json.Marshal(struct {
		Username      string `json:"username,omitempty"`
		Password      string `json:"password,omitempty"`
		ServerAddress string `json:"serveraddress,omitempty"`
		IdentityToken string `json:"identitytoken,omitempty"`
		RegistryToken string `json:"registrytoken,omitempty"`
	}{a.Username, a.Password, a.ServerAddress, a.IdentityToken, a.RegistryToken})
	return base64.URLEncoding.EncodeToString(b)
}

// Options configure a Store.
type Options struct {
	// Getenv reads the environment; default os.Getenv.
	Getenv func(string) string
	// EnvHosts are the registries SLIPWAY_REGISTRY_USER/PASSWORD apply to (the
	// hosts of the images slipway builds). Other registries get only
	// config.json credentials, so a private password never reaches, say, Docker Hub.
	EnvHosts []string
}

// Store looks up credentials per registry host. Safe for concurrent use.
type Store struct {
	getenv   func(string) string
	envHosts map[string]bool

	once    sync.Once
	cfg     *configFile
	cfgPath string
	cfgErr  error

	mu    sync.Mutex
	cache map[string]Auth
}

// New returns a Store.
func New(o Options) *Store {
	s := &Store{getenv: o.Getenv, envHosts: map[string]bool{}, cache: map[string]Auth{}}
	if s.getenv == nil {
		s.getenv = os.Getenv
	}
	for _, h := range o.EnvHosts {
		s.envHosts[NormalizeHost(h)] = true
	}
	return s
}

// ForRef returns the credentials for the registry of an image reference.
func (s *Store) ForRef(ref string) (Auth, error) {
	host, err := HostOf(ref)
	if err != nil {
		return Auth{}, err
	}
	return s.For(host)
}

// For returns the credentials for a registry host. Lookup order: the slipway
// environment variables (for EnvHosts), then config.json as docker does:
// credHelpers[host], credsStore, auths. No credentials is not an error: the
// registry may allow anonymous pulls.
func (s *Store) For(host string) (Auth, error) {
	host = NormalizeHost(host)
	s.mu.Lock()
	if a, ok := s.cache[host]; ok {
		s.mu.Unlock()
		return a, nil
	}
	s.mu.Unlock()
	a, err := s.lookup(host)
	if err != nil {
		return Auth{}, err
	}
	s.mu.Lock()
	s.cache[host] = a
	s.mu.Unlock()
	return a, nil
}

func (s *Store) lookup(host string) (Auth, error) {
	a := Auth{Host: host, ServerAddress: ServerAddress(host), Source: "no credentials"}
	user, pass := s.getenv(EnvUser), s.getenv(EnvPassword)
	if s.envHosts[host] && (user != "" || pass != "") {
		if user == "" || pass == "" {
			return Auth{}, fmt.Errorf("registry %s: only one of %s and %s is set; set both (or neither, to use the Docker config.json)", host, EnvUser, EnvPassword)
		}
		a.Username, a.Password = user, pass
		a.Source = "env " + EnvUser + "/" + EnvPassword
		return a, nil
	}

	cfg, path, err := s.config()
	if err != nil {
		return Auth{}, err
	}
	if cfg == nil {
		return a, nil
	}
	helper := cfg.CredHelpers[a.ServerAddress]
	if helper == "" {
		helper = cfg.CredHelpers[host]
	}
	if helper == "" {
		helper = cfg.CredsStore
	}
	if helper != "" {
		got, err := fromHelper(helper, a)
		if err != nil {
			return Auth{}, err
		}
		if !got.Anonymous() {
			return got, nil
		}
		// docker's native store falls back to the file's auths too.
	}
	if e, ok := cfg.find(host); ok {
		u, p, err := e.userPass()
		if err != nil {
			return Auth{}, fmt.Errorf("docker config %s: auths entry for %s: %w; run 'docker login %s' again", path, host, err, host)
		}
		a.Username, a.Password = u, p
		a.IdentityToken, a.RegistryToken = e.IdentityToken, e.RegistryToken
		if !a.Anonymous() {
			a.Source = "config.json " + path
		}
	}
	return a, nil
}

func fromHelper(helper string, a Auth) (Auth, error) {
	prog := "docker-credential-" + helper
	creds, err := client.Get(client.NewShellProgramFunc(prog), a.ServerAddress)
	if err != nil && credentials.IsErrCredentialsNotFound(err) && a.ServerAddress != a.Host {
		creds, err = client.Get(client.NewShellProgramFunc(prog), a.Host)
	}
	if err != nil {
		if credentials.IsErrCredentialsNotFound(err) {
			return a, nil
		}
		return Auth{}, fmt.Errorf("registry %s: credential helper %s failed: %w (is it installed and on PATH?)", a.Host, prog, err)
	}
	a.Source = "credential helper " + prog
	if creds.Username == "<token>" {
		a.IdentityToken = creds.Secret
	} else {
		a.Username, a.Password = creds.Username, creds.Secret
	}
	return a, nil
}

// ConfigPath returns the Docker config.json slipway reads: $DOCKER_CONFIG/config.json,
// else ~/.docker/config.json.
func (s *Store) ConfigPath() string {
	if d := s.getenv("DOCKER_CONFIG"); d != "" {
		return filepath.Join(d, "config.json")
	}
	home := s.getenv("HOME")
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	return filepath.Join(home, ".docker", "config.json")
}

func (s *Store) config() (*configFile, string, error) {
	s.once.Do(func() {
		s.cfgPath = s.ConfigPath()
		data, err := os.ReadFile(s.cfgPath)
		if errors.Is(err, fs.ErrNotExist) {
			return
		}
		if err != nil {
			s.cfgErr = fmt.Errorf("reading docker config %s: %w", s.cfgPath, err)
			return
		}
		var c configFile
		if err := json.Unmarshal(data, &c); err != nil {
			s.cfgErr = fmt.Errorf("docker config %s is not valid JSON: %w; fix or remove it, or set %s/%s", s.cfgPath, err, EnvUser, EnvPassword)
			return
		}
		s.cfg = &c
	})
	return s.cfg, s.cfgPath, s.cfgErr
}

type configFile struct {
	Auths       map[string]authEntry `json:"auths"`
	CredsStore  string               `json:"credsStore"`
	CredHelpers map[string]string    `json:"credHelpers"`
}

type authEntry struct {
	Auth          string `json:"auth"`
	Username      string `json:"username"`
	Password      string `json:"password"`
	IdentityToken string `json:"identitytoken"`
	RegistryToken string `json:"registrytoken"`
}

func (e authEntry) userPass() (string, string, error) {
	if e.Auth == "" {
		return e.Username, e.Password, nil
	}
	raw, err := base64.StdEncoding.DecodeString(e.Auth)
	if err != nil {
		return "", "", errors.New(`"auth" is not base64`)
	}
	u, p, ok := strings.Cut(string(raw), ":")
	if !ok {
		return "", "", errors.New(`"auth" is not base64 of user:password`)
	}
	return u, p, nil
}

// find matches config keys as docker's file store does: the exact server
// address, else any key whose hostname (scheme and path stripped) is the host.
func (c *configFile) find(host string) (authEntry, bool) {
	addr := ServerAddress(host)
	if e, ok := c.Auths[addr]; ok {
		return e, true
	}
	for k, e := range c.Auths {
		if NormalizeHost(keyHost(k)) == host {
			return e, true
		}
	}
	return authEntry{}, false
}

// keyHost strips scheme and path from a config.json key ("https://reg:5000/v2/" -> "reg:5000").
func keyHost(k string) string {
	k = strings.TrimPrefix(strings.TrimPrefix(k, "https://"), "http://")
	h, _, _ := strings.Cut(k, "/")
	return h
}

// NormalizeHost maps Docker Hub's aliases to "docker.io" and lower-cases the host.
func NormalizeHost(h string) string {
	h = strings.ToLower(keyHost(h))
	switch h {
	case "docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com":
		return "docker.io"
	}
	return h
}

// ServerAddress is the key docker uses for a registry host in config.json and
// credential helpers: IndexServer for Docker Hub, else the host itself.
func ServerAddress(host string) string {
	if NormalizeHost(host) == "docker.io" {
		return IndexServer
	}
	return host
}

// HostOf returns the registry host of an image reference ("postgres:15" -> "docker.io").
func HostOf(ref string) (string, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", fmt.Errorf("image reference %q: %w", ref, err)
	}
	return NormalizeHost(reference.Domain(named)), nil
}
