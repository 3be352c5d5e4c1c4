package buildkit

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// BaseImages returns the images a Dockerfile's FROM lines name, read with
// BuildKit's own parser and shell lexer (so ${A:+${B}} and friends expand as
// the build will expand them), with args overriding the ARG defaults before
// the first FROM. Stage names, scratch and FROMs that stay empty or
// unresolved are skipped: the build itself reports those.
func BaseImages(dockerfile []byte, args map[string]string) ([]string, error) {
	res, err := parser.Parse(bytes.NewReader(dockerfile))
	if err != nil {
		return nil, fmt.Errorf("reading the Dockerfile: %w", err)
	}
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return nil, fmt.Errorf("reading the Dockerfile: %w", err)
	}
	lex := shell.NewLex(res.EscapeToken)
	env := map[string]string{}
	for _, cmd := range metaArgs {
		for _, kv := range cmd.Args {
			if v, ok := args[kv.Key]; ok {
				env[kv.Key] = v
				continue
			}
			if kv.Value == nil {
				continue
			}
			v, _, err := lex.ProcessWord(*kv.Value, getter(env))
			if err != nil {
				return nil, fmt.Errorf("reading the Dockerfile: ARG %s: %w", kv.Key, err)
			}
			env[kv.Key] = v
		}
	}
	seen := map[string]bool{"scratch": true}
	var refs []string
	for _, st := range stages {
		ref, _, err := lex.ProcessWord(st.BaseName, getter(env))
		if err == nil && ref != "" && !seen[strings.ToLower(ref)] && !strings.Contains(ref, "$") {
			seen[ref] = true
			refs = append(refs, ref)
		}
		if st.Name != "" {
			seen[strings.ToLower(st.Name)] = true
		}
	}
	return refs, nil
}

type getter map[string]string

func (g getter) Get(k string) (string, bool) { v, ok := g[k]; return v, ok }

func (g getter) Keys() []string {
	keys := make([]string, 0, len(g))
	for k := range g {
		keys = append(keys, k)
	}
	return keys
}
