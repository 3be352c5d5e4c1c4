package plan

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	composecli "github.com/compose-spec/compose-go/v2/cli"
	"go.yaml.in/yaml/v4"

	"github.com/slipway-dev/slipway/tools/internal/exit"
)

// precheckComposeFile reads a compose file once for the checks the loader
// lacks: alias cycles and oversized env_file: entries.
func precheckComposeFile(file string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil // the loader reports unreadable files
	}
	if err := checkAliasCycles(file, data); err != nil {
		return err
	}
	return checkServiceEnvFiles(file, data)
}

// checkAliasCycles rejects a compose file in which an alias points to a node
// that contains it (`a: &a {<<: *a}`). compose-go's loader would spend
// minutes on such a file before giving up; this finds it in one pass over
// the node tree, with the line. Files without aliases are not parsed.
func checkAliasCycles(file string, data []byte) error {
	if !bytes.Contains(data, []byte("*")) {
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return nil // a syntax error: the loader reports it with its line
		}
		if n := aliasCycle(&doc, map[*yaml.Node]bool{}); n != nil {
			return exit.Usagef("compose file %s line %d: alias *%s refers to a node that contains it, a cycle; "+
				"merge (<<) or alias an anchor defined outside the node", file, n.Line, n.Value)
		}
	}
}

// aliasCycle returns the first alias that points at one of its ancestors.
// Every alias cycle has one: an alias can only name an anchor defined before
// it, so a cycle closes through a node that encloses the alias.
func aliasCycle(n *yaml.Node, ancestors map[*yaml.Node]bool) *yaml.Node {
	if n == nil {
		return nil
	}
	if n.Kind == yaml.AliasNode {
		if ancestors[n.Alias] {
			return n
		}
		return nil
	}
	ancestors[n] = true
	defer delete(ancestors, n)
	for _, c := range n.Content {
		if bad := aliasCycle(c, ancestors); bad != nil {
			return bad
		}
	}
	return nil
}

// MaxEnvFileSize bounds each env file the compose loader reads (--env-file,
// .env, a service's env_file:). Env files are a few kilobytes; the loader
// holds each one in memory, and a service's are uploaded to every server.
const MaxEnvFileSize = 1 << 20

// limitEnvFileSize refuses --env-file and .env files over MaxEnvFileSize
// before the loader reads them.
func limitEnvFileSize(o *composecli.ProjectOptions) error {
	for _, f := range o.EnvFiles {
		if err := envFileSize(f, "env file "+f); err != nil {
			return err
		}
	}
	return nil
}

// envFileSize checks file f, described in errors as what.
func envFileSize(f, what string) error {
	st, err := os.Stat(f)
	if err != nil || !st.Mode().IsRegular() {
		return nil // the loader reports missing and unreadable files
	}
	if st.Size() > MaxEnvFileSize {
		return exit.Usagef("%s is %d bytes, over slipway's limit of %d bytes (1 MiB) per env file; "+
			"env files hold variables, not data: move large values into a file the service mounts", what, st.Size(), MaxEnvFileSize)
	}
	return nil
}

// checkServiceEnvFiles applies MaxEnvFileSize to the env_file: entries of
// a compose file's services before the loader reads them. Paths written with
// ${VAR} are left to the loader.
func checkServiceEnvFiles(file string, data []byte) error {
	if !bytes.Contains(data, []byte("env_file")) {
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc struct {
			Services map[string]struct {
				EnvFile yaml.Node `yaml:"env_file"`
			} `yaml:"services"`
		}
		if err := dec.Decode(&doc); err != nil {
			return nil // EOF, or an error the loader reports with its line
		}
		for name, svc := range doc.Services {
			for _, p := range envFilePaths(&svc.EnvFile) {
				if strings.Contains(p, "$") {
					continue
				}
				if !filepath.IsAbs(p) {
					p = filepath.Join(filepath.Dir(file), p)
				}
				if err := envFileSize(p, "compose file "+file+": service "+strconv.Quote(name)+": env_file "+p); err != nil {
					return err
				}
			}
		}
	}
}

// envFilePaths reads env_file's forms: a string, a list of strings, a list
// of {path: ...}.
func envFilePaths(n *yaml.Node) []string {
	switch n.Kind {
	case yaml.ScalarNode:
		return []string{n.Value}
	case yaml.SequenceNode:
		var out []string
		for _, c := range n.Content {
			switch c.Kind {
			case yaml.ScalarNode:
				out = append(out, c.Value)
			case yaml.MappingNode:
				for i := 0; i+1 < len(c.Content); i += 2 {
					if c.Content[i].Value == "path" {
						out = append(out, c.Content[i+1].Value)
					}
				}
			}
		}
		return out
	}
	return nil
}

// MaxComposeFileSize bounds each compose file slipway loads. Real compose
// files are kilobytes; a larger one is a mistake or an attack on the YAML
// parser, whose memory grows with the input.
const MaxComposeFileSize = 4 << 20

// limitFileSize refuses, before anything parses them, compose files over
// MaxComposeFileSize.
func limitFileSize(o *composecli.ProjectOptions) error {
	for _, f := range o.ConfigPaths {
		st, err := os.Stat(f)
		if err != nil {
			continue // the loader reports unreadable files
		}
		if st.Size() > MaxComposeFileSize {
			return exit.Usagef("compose file %s is %d bytes, over slipway's limit of %d bytes (4 MiB) per compose file; "+
				"remove what it does not need or split it with include: or several -f files", f, st.Size(), MaxComposeFileSize)
		}
	}
	return nil
}
