package deploy

import (
	"crypto/sha256"
	"encoding/hex"
	"path"
	"strings"

	"github.com/slipway-dev/slipway/tools/internal/deploy/remote"
)

// Files that containers mount (bind-mounted files, configs and secrets) are
// mounted from a content-addressed store, <dir>/.slipway/files/<sha256>/<name>,
// not from the release directory: Compose decides whether to recreate a
// container from its definition, which holds the mount's path, so a path
// under releases/<commit>/ would recreate every service with a config file on
// every deploy, while a store path changes exactly when the file's content
// does. The release directory still holds every file at its relative path.
// Directories stay mounted from the release directory (containers may write
// into them).

// storeDir is the store's place under the deploy directory.
const storeDir = ".slipway/files"

// storeEntry is a file's path in the store, relative to storeDir.
// The hash covers the name too: two files with the same content and
// different names get their own entries.
func storeEntry(rel string, data []byte) string {
	h := sha256.New()
	h.Write([]byte(path.Base(rel) + "\x00"))
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil)[:16]) + "/" + path.Base(rel)
}

// storeFiles sets the store entry of every referenced file the model mounts
// directly and returns the files and the mount rewrites for dir.
func storeFiles(model map[string]any, files []remote.File, dir string) ([]remote.File, map[string]string) {
	mounted := mountedFiles(model)
	out := make([]remote.File, len(files))
	mounts := map[string]string{}
	for i, f := range files {
		out[i] = f
		if mounted[f.Path] {
			out[i].Store = storeEntry(f.Path, f.Data)
			mounts[f.Path] = dir + "/" + storeDir + "/" + out[i].Store
		}
	}
	return out, mounts
}

// rewriteMounts returns a copy of model whose bind-mount sources and
// config/secret files naming a key of mounts point at its value instead.
func rewriteMounts(model map[string]any, mounts map[string]string) map[string]any {
	m, _ := deepCopyModel(model).(map[string]any)
	if len(mounts) == 0 {
		return m
	}
	lookup := func(p string) (string, bool) {
		if p == "" || strings.HasPrefix(p, "/") || strings.HasPrefix(p, "~") || strings.Contains(p, "$") {
			return "", false
		}
		s, ok := mounts[path.Clean(p)]
		return s, ok
	}
	services, _ := m["services"].(map[string]any)
	for _, sv := range services {
		svc, _ := sv.(map[string]any)
		vols, _ := svc["volumes"].([]any)
		for i, v := range vols {
			switch v := v.(type) {
			case string:
				src, rest, ok := strings.Cut(v, ":")
				if !ok {
					continue
				}
				if s, ok := lookup(src); ok {
					vols[i] = s + ":" + rest
				}
			case map[string]any:
				if t, _ := v["type"].(string); t != "bind" {
					continue
				}
				src, _ := v["source"].(string)
				if s, ok := lookup(src); ok {
					v["source"] = s
				}
			}
		}
	}
	for _, top := range []string{"configs", "secrets"} {
		items, _ := m[top].(map[string]any)
		for _, it := range items {
			item, _ := it.(map[string]any)
			f, _ := item["file"].(string)
			if s, ok := lookup(f); ok {
				item["file"] = s
			}
		}
	}
	return m
}

// mountedFiles lists the relative paths the model mounts as files or uses as
// config/secret files (env_file is read by Compose, not mounted, and is left out).
func mountedFiles(model map[string]any) map[string]bool {
	out := map[string]bool{}
	add := func(p string) {
		if p != "" && !strings.HasPrefix(p, "/") && !strings.HasPrefix(p, "~") && !strings.Contains(p, "$") {
			out[path.Clean(p)] = true
		}
	}
	services, _ := model["services"].(map[string]any)
	for _, sv := range services {
		svc, _ := sv.(map[string]any)
		vols, _ := svc["volumes"].([]any)
		for _, v := range vols {
			switch v := v.(type) {
			case string:
				if src, _, ok := strings.Cut(v, ":"); ok && strings.HasPrefix(src, ".") {
					add(src)
				}
			case map[string]any:
				if t, _ := v["type"].(string); t == "bind" {
					src, _ := v["source"].(string)
					add(src)
				}
			}
		}
	}
	for _, top := range []string{"configs", "secrets"} {
		items, _ := model[top].(map[string]any)
		for _, it := range items {
			item, _ := it.(map[string]any)
			f, _ := item["file"].(string)
			add(f)
		}
	}
	return out
}

func deepCopyModel(v any) any {
	switch x := v.(type) {
	case map[string]any:
		c := make(map[string]any, len(x))
		for k, e := range x {
			c[k] = deepCopyModel(e)
		}
		return c
	case []any:
		c := make([]any, len(x))
		for i, e := range x {
			c[i] = deepCopyModel(e)
		}
		return c
	}
	return v
}
