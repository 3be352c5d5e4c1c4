package plan

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"text/template"
	"text/template/parse"
	"unicode/utf8"
)

// DefaultTagTemplate is the tag every build gets unless --tag says otherwise.
const DefaultTagTemplate = "{{.Commit}}"

// MaxTagLength is Docker's limit on a tag.
const MaxTagLength = 128

// maxTemplateLength bounds a --tag template; a real one is a few dozen bytes.
const maxTemplateLength = 1024

// TagData is what a --tag template sees.
type TagData struct {
	Commit        string // 40 hex
	ShortCommit   string // 12 hex
	Branch        string // sanitised to the tag charset; "" on a detached HEAD outside CI
	BuildNumber   string // Jenkins BUILD_NUMBER; "" outside Jenkins
	DefaultBranch string // origin/HEAD's branch, else main
}

// tagFields maps each template field to where its value comes from, for errors.
var tagFields = map[string]string{
	"Commit":        "GIT_COMMIT or git rev-parse HEAD",
	"ShortCommit":   "GIT_COMMIT or git rev-parse HEAD",
	"Branch":        "BRANCH_NAME or GIT_BRANCH (Jenkins), else the checked-out branch; HEAD is detached and neither is set",
	"BuildNumber":   "BUILD_NUMBER, which Jenkins sets; it is not set",
	"DefaultBranch": "origin/HEAD",
}

func (d TagData) values() map[string]string {
	return map[string]string{
		"Commit":        d.Commit,
		"ShortCommit":   d.ShortCommit,
		"Branch":        d.Branch,
		"BuildNumber":   d.BuildNumber,
		"DefaultBranch": d.DefaultBranch,
	}
}

func fieldList() string {
	names := make([]string, 0, len(tagFields))
	for n := range tagFields {
		names = append(names, "."+n)
	}
	sort.Strings(names)
	return strings.Join(names, " ")
}

// tagRE is the tag grammar of github.com/distribution/reference.
var tagRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

// ValidTag reports whether t is a valid Docker image tag.
func ValidTag(t string) bool { return tagRE.MatchString(t) }

// SanitizeBranch turns a branch name into something a tag can hold: every
// character outside [A-Za-z0-9_.-] becomes '-', leading '.' and '-' go (a tag
// cannot start with them) and the result is cut to MaxTagLength.
// "feature/JIRA-12" becomes "feature-JIRA-12".
func SanitizeBranch(branch string) string {
	var b strings.Builder
	b.Grow(len(branch))
	for _, r := range branch {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '.', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	s := strings.TrimLeft(b.String(), ".-")
	if len(s) > MaxTagLength {
		s = s[:MaxTagLength] // ASCII only by now, so byte slicing is safe
	}
	return s
}

// RenderTags renders the tag templates (DefaultTagTemplate plus "latest" on
// the default branch when templates is empty). A template that renders to
// nothing is skipped, so "{{if eq .Branch .DefaultBranch}}latest{{end}}" works;
// every other result must be a valid tag. dirty appends "-dirty" to every tag.
// Duplicates are dropped, order is kept.
func RenderTags(templates []string, data TagData, dirty bool) ([]string, error) {
	defaults := len(templates) == 0
	if defaults {
		templates = []string{DefaultTagTemplate}
		if data.Branch != "" && data.Branch == data.DefaultBranch {
			templates = append(templates, "latest")
		}
	}
	vals := data.values()
	var tags []string
	seen := map[string]bool{}
	for _, text := range templates {
		tag, err := renderTag(text, vals)
		if err != nil {
			return nil, err
		}
		if tag == "" {
			continue
		}
		if dirty {
			tag += "-dirty"
		}
		if !ValidTag(tag) {
			return nil, badTag(text, tag)
		}
		if !seen[tag] {
			seen[tag] = true
			tags = append(tags, tag)
		}
	}
	if len(tags) == 0 {
		return nil, fmt.Errorf("every --tag template rendered to an empty string, so the images would have no tag: add a --tag that always renders, such as %q", DefaultTagTemplate)
	}
	return tags, nil
}

func badTag(text, tag string) error {
	shown := tag
	if len(shown) > 80 {
		shown = shown[:80] + "..."
	}
	why := "a tag is 1 to 128 of [A-Za-z0-9_.-] and cannot start with '.' or '-'"
	if len(tag) > MaxTagLength {
		why = fmt.Sprintf("it is %d characters, the limit is %d", len(tag), MaxTagLength)
	}
	return fmt.Errorf("--tag %q renders %q, which is not a valid image tag: %s", text, shown, why)
}

// renderTag executes one template. Its output is capped, range and template
// definitions are refused (a tag needs neither, and both can run unbounded),
// and a field printed while empty is an error naming where the value comes from.
func renderTag(text string, vals map[string]string) (string, error) {
	if len(text) > maxTemplateLength {
		return "", fmt.Errorf("--tag template is %d bytes, the limit is %d", len(text), maxTemplateLength)
	}
	if !utf8.ValidString(text) {
		return "", fmt.Errorf("--tag %q is not valid UTF-8", text)
	}
	t, err := template.New("tag").Option("missingkey=error").Parse(text)
	if err != nil {
		return "", fmt.Errorf("--tag %q is not a valid template: %s (fields: %s)", text, trimTemplateErr(err), fieldList())
	}
	if len(t.Templates()) > 1 {
		return "", fmt.Errorf("--tag %q defines templates; a tag template is one expression such as %q", text, "{{.Branch}}-{{.BuildNumber}}")
	}
	if err := checkNodes(text, t.Tree.Root, vals, false); err != nil {
		return "", err
	}
	var out limitedBuilder
	if err := t.Execute(&out, vals); err != nil {
		if out.over {
			return "", fmt.Errorf("--tag %q renders more than %d characters", text, MaxTagLength)
		}
		return "", fmt.Errorf("--tag %q: %s (fields: %s)", text, trimTemplateErr(err), fieldList())
	}
	return strings.TrimSpace(out.String()), nil
}

// checkNodes walks the parse tree. Fields in if/with conditions may be empty
// (that is what conditions are for); a field printed directly may not.
func checkNodes(text string, n parse.Node, vals map[string]string, cond bool) error {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return nil
		}
		for _, c := range n.Nodes {
			if err := checkNodes(text, c, vals, cond); err != nil {
				return err
			}
		}
	case *parse.ActionNode:
		return checkPipe(text, n.Pipe, vals, cond)
	case *parse.IfNode:
		if err := checkPipe(text, n.Pipe, vals, true); err != nil {
			return err
		}
		if err := checkNodes(text, n.List, vals, cond); err != nil {
			return err
		}
		return checkNodes(text, n.ElseList, vals, cond)
	case *parse.WithNode:
		if err := checkPipe(text, n.Pipe, vals, true); err != nil {
			return err
		}
		if err := checkNodes(text, n.List, vals, cond); err != nil {
			return err
		}
		return checkNodes(text, n.ElseList, vals, cond)
	case *parse.RangeNode:
		return fmt.Errorf("--tag %q uses range, which a tag template does not need; use fields such as %s", text, fieldList())
	case *parse.TemplateNode:
		return fmt.Errorf("--tag %q calls a template, which a tag template does not support", text)
	case *parse.BreakNode, *parse.ContinueNode:
		return fmt.Errorf("--tag %q uses break/continue outside a loop", text)
	}
	return nil
}

func checkPipe(text string, p *parse.PipeNode, vals map[string]string, cond bool) error {
	if p == nil {
		return nil
	}
	for _, cmd := range p.Cmds {
		for _, arg := range cmd.Args {
			switch a := arg.(type) {
			case *parse.FieldNode:
				if err := checkField(text, a.Ident, vals, cond); err != nil {
					return err
				}
			case *parse.PipeNode:
				if err := checkPipe(text, a, vals, cond); err != nil {
					return err
				}
			case *parse.ChainNode:
				return fmt.Errorf("--tag %q: fields are strings and have no sub-fields; use %s", text, fieldList())
			}
		}
	}
	return nil
}

func checkField(text string, ident []string, vals map[string]string, cond bool) error {
	name := ident[0]
	if _, ok := tagFields[name]; !ok {
		return fmt.Errorf("--tag %q uses .%s, which does not exist; the fields are %s", text, strings.Join(ident, "."), fieldList())
	}
	if len(ident) > 1 {
		return fmt.Errorf("--tag %q: .%s is a string and has no field .%s", text, name, strings.Join(ident[1:], "."))
	}
	if !cond && vals[name] == "" {
		return fmt.Errorf("--tag %q uses .%s, which is empty here (it comes from %s); "+
			"guard it with {{with .%s}}...{{end}} or drop that --tag", text, name, tagFields[name], name)
	}
	return nil
}

func trimTemplateErr(err error) string {
	s := err.Error()
	// "template: tag:1:2: executing ..." -> "1:2: executing ..."
	s = strings.TrimPrefix(s, "template: tag:")
	return s
}

// limitedBuilder stops a template from writing more than a tag can hold.
type limitedBuilder struct {
	strings.Builder
	over bool
}

func (b *limitedBuilder) Write(p []byte) (int, error) {
	if b.Len()+len(p) > MaxTagLength+64 {
		b.over = true
		return 0, fmt.Errorf("output too long")
	}
	return b.Builder.Write(p)
}
