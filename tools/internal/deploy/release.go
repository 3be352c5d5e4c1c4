// What a release carries to a server: its files, release.json, the lock
// record, and the registry login for the pull.

package deploy

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/user"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/deploy/remote"
	"github.com/slipway-dev/slipway/tools/internal/exit"
	"github.com/slipway-dev/slipway/tools/internal/owner"
	"github.com/slipway-dev/slipway/tools/internal/progress"
	"github.com/slipway-dev/slipway/tools/internal/regauth"
	"github.com/slipway-dev/slipway/tools/internal/version"
)

// releaseFiles are the files of releases/<commit>/: the rendered compose file,
// the referenced files, .env and release.json.
func releaseFiles(b *bundle, kind remote.ComposeKind, dir, previous string, o *Options, log *progress.Logger) ([]remote.File, error) {
	refs, mounts := storeFiles(b.model, b.files, dir)
	compose, err := b.renderCompose(rewriteMounts(b.model, b.checkoutMounts(mounts)), kind, log)
	if err != nil {
		return nil, err
	}
	files := []remote.File{{Path: "compose.yaml", Mode: 0o644, Data: compose}}
	var store []string
	storePaths := map[string]string{}
	for _, f := range refs {
		if f.Store != "" {
			store = append(store, f.Store)
			storePaths[f.Store] = f.Path
		}
		if f.Path == "compose.yaml" || f.Path == ".env" || f.Path == "release.json" {
			return nil, exit.Usagef("the compose file references %s, a name slipway uses in the release directory; rename it", f.Path)
		}
		files = append(files, f)
	}
	if b.env != nil {
		files = append(files, remote.File{Path: ".env", Mode: 0o600, Data: b.env, Secret: true})
	}
	meta := releaseJSON(b, kind, previous, o)
	meta.Store = store
	if len(storePaths) > 0 {
		meta.StorePaths = storePaths
	}
	data, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return nil, err
	}
	files = append(files, remote.File{Path: "release.json", Mode: 0o644, Data: append(data, '\n')})
	return files, nil
}

func releaseJSON(b *bundle, kind remote.ComposeKind, previous string, o *Options) *remote.ReleaseJSON {
	m := b.m
	meta := &remote.ReleaseJSON{
		SchemaVersion: 1, Project: m.Project, Commit: m.Commit, ShortCommit: m.ShortCommit,
		Branch: m.Branch, Dirty: m.Dirty, BuildURL: buildURL(m.BuildURL, o.Getenv), BuildNumber: m.BuildNumber,
		DeployedBy: whoami(), DeployedAt: time.Now().UTC().Format(time.RFC3339),
		Previous: previous, Strategy: o.Strategy, Compose: string(kind),
		Services: map[string]remote.ReleaseImage{}, Images: b.images, Slipway: version.String(),
	}
	if previous == m.Commit {
		meta.Previous = ""
	}
	for n, s := range m.Services {
		meta.Services[n] = remote.ReleaseImage{Image: s.Image, Digest: s.Digest}
	}
	if len(m.External) > 0 {
		meta.External = map[string]remote.ReleaseImage{}
		for n, s := range m.External {
			meta.External[n] = remote.ReleaseImage{Image: s.Image, Digest: s.Digest}
		}
	}
	if meta.Images == nil {
		meta.Images = []string{}
	}
	return meta
}

func buildURL(fromManifest string, getenv func(string) string) string {
	if u := getenv("BUILD_URL"); u != "" {
		return u
	}
	return fromManifest
}

func lockInfo(o *Options, b *bundle) remote.LockInfo {
	return remote.LockInfo{
		Owner: whoami(), PID: os.Getpid(), BuildURL: buildURL(b.m.BuildURL, o.Getenv),
		Command: "deploy " + short(b.m.Commit), Time: time.Now().UTC().Format(time.RFC3339), Origin: owner.Self(),
	}
}

// whoami is user@agent-host, for the lock and release.json.
func whoami() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return name + "@" + host
}

func composeName(h *remote.Host, f *remote.Facts) string {
	if h.Lib != nil {
		name := h.Lib.Name()
		if f.Compose == "" {
			name += " (none on the server)"
		}
		return name
	}
	if f.Compose == remote.ComposeV1 {
		return "v1 (docker-compose)"
	}
	return "v2 " + f.ComposeVer
}

// composeUsed is the result's "compose": v1, v2 or library.
func composeUsed(h *remote.Host) string {
	if h.Lib != nil {
		return ComposeLibrary
	}
	return string(h.Kind)
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// registryConfig builds the config.json forwarded to the servers for the
// pull: credentials of each registry in registries, from
// SLIPWAY_REGISTRY_USER/PASSWORD (only for envHosts, the registries slipway
// pushed to) or the agent's Docker config. nil when there are none
// (anonymous pulls). The second result are the server addresses to log in to.
func registryConfig(registries, envHosts []string, getenv func(string) string) ([]byte, []string, error) {
	store := regauth.New(regauth.Options{Getenv: getenv, EnvHosts: envHosts})
	type entry struct {
		Auth          string `json:"auth,omitempty"`
		IdentityToken string `json:"identitytoken,omitempty"`
		RegistryToken string `json:"registrytoken,omitempty"`
	}
	auths := map[string]entry{}
	var hosts []string
	for _, host := range registries {
		a, err := store.For(host)
		if err != nil {
			return nil, nil, fmt.Errorf("registry credentials: %w", err)
		}
		if a.Anonymous() {
			continue
		}
		e := entry{IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken}
		if a.Username != "" || a.Password != "" {
			e.Auth = base64Std(a.Username + ":" + a.Password)
		}
		auths[a.ServerAddress] = e
		hosts = append(hosts, a.ServerAddress)
	}
	if len(auths) == 0 {
		return nil, nil, nil
	}
	data, err := json.Marshal(map[string]any{"auths": auths})
	if err != nil {
		return nil, nil, err
	}
	return data, hosts, nil
}

func base64Std(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// missing lists the registries of all that are not in have (by server address).
func missing(all, have []string) []string {
	got := map[string]bool{}
	for _, h := range have {
		got[regauth.NormalizeHost(h)] = true
	}
	var out []string
	for _, r := range all {
		if !got[regauth.NormalizeHost(r)] {
			out = append(out, r)
		}
	}
	return out
}
