package cirecipes

import (
	"fmt"
	"strings"
	"testing"
	"unicode"
)

// The two small expression languages the recipes use in conditions: GitHub
// Actions' `${{ }}` / `if:` expressions and GitLab's `rules: if:`. Only what
// a recipe may need is implemented; anything else is an error, so a recipe
// using more fails the test instead of being misread.

type token struct {
	kind string // "str", "ident", "var", "op", "(", ")", "end"
	text string
}

func lex(src string, vars bool) ([]token, error) {
	var out []token
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			i++
		case c == '\'' || (vars && c == '"'):
			j := strings.IndexByte(src[i+1:], c)
			if j < 0 {
				return nil, fmt.Errorf("unterminated string in %q", src)
			}
			out = append(out, token{"str", src[i+1 : i+1+j]})
			i += j + 2
		case strings.HasPrefix(src[i:], "==") || strings.HasPrefix(src[i:], "!=") ||
			strings.HasPrefix(src[i:], "&&") || strings.HasPrefix(src[i:], "||"):
			out = append(out, token{"op", src[i : i+2]})
			i += 2
		case c == '!':
			out = append(out, token{"op", "!"})
			i++
		case c == '(' || c == ')':
			out = append(out, token{string(c), string(c)})
			i++
		case vars && c == '$':
			j := i + 1
			for j < len(src) && (src[j] == '_' || unicode.IsLetter(rune(src[j])) || unicode.IsDigit(rune(src[j]))) {
				j++
			}
			out = append(out, token{"var", src[i+1 : j]})
			i = j
		case !vars && (c == '_' || unicode.IsLetter(rune(c))):
			j := i
			for j < len(src) && (src[j] == '_' || src[j] == '.' || src[j] == '-' || unicode.IsLetter(rune(src[j])) || unicode.IsDigit(rune(src[j]))) {
				j++
			}
			out = append(out, token{"ident", src[i:j]})
			i = j
		default:
			return nil, fmt.Errorf("unexpected %q in %q", c, src)
		}
	}
	return append(out, token{"end", ""}), nil
}

// evaluator: precedence ! > == != > && > ||. Values are strings; true is
// "true", false is "" (GitHub: `a || b` yields a's value when a is truthy).
type evaluator struct {
	toks   []token
	pos    int
	lookup func(tok token) (string, error)
}

func truthy(s string) bool { return s != "" && s != "false" }

func boolStr(b bool) string {
	if b {
		return "true"
	}
	return ""
}

func (e *evaluator) peek() token { return e.toks[e.pos] }
func (e *evaluator) next() token { t := e.toks[e.pos]; e.pos++; return t }

func (e *evaluator) or() (string, error) {
	v, err := e.and()
	for err == nil && e.peek().text == "||" {
		e.next()
		var r string
		r, err = e.and()
		if !truthy(v) {
			v = r
		}
	}
	return v, err
}

func (e *evaluator) and() (string, error) {
	v, err := e.cmp()
	for err == nil && e.peek().text == "&&" {
		e.next()
		var r string
		r, err = e.cmp()
		if truthy(v) {
			v = r
		}
	}
	return v, err
}

func (e *evaluator) cmp() (string, error) {
	v, err := e.unary()
	if err != nil {
		return "", err
	}
	if op := e.peek().text; op == "==" || op == "!=" {
		e.next()
		r, err := e.unary()
		if err != nil {
			return "", err
		}
		eq := strings.EqualFold(v, r)
		return boolStr(eq == (op == "==")), nil
	}
	return v, nil
}

func (e *evaluator) unary() (string, error) {
	t := e.next()
	switch t.kind {
	case "op":
		if t.text == "!" {
			v, err := e.unary()
			return boolStr(!truthy(v)), err
		}
	case "(":
		v, err := e.or()
		if err == nil && e.next().kind != ")" {
			err = fmt.Errorf("missing )")
		}
		return v, err
	case "str":
		return t.text, nil
	case "ident", "var":
		if t.kind == "ident" && e.peek().kind == "(" {
			e.next()
			if e.next().kind != ")" {
				return "", fmt.Errorf("%s(): arguments are not supported", t.text)
			}
			return e.lookup(token{"call", t.text})
		}
		return e.lookup(t)
	}
	return "", fmt.Errorf("unexpected %q", t.text)
}

func evaluate(src string, vars bool, lookup func(token) (string, error)) (string, error) {
	toks, err := lex(src, vars)
	if err != nil {
		return "", err
	}
	e := &evaluator{toks: toks, lookup: lookup}
	v, err := e.or()
	if err == nil && e.peek().kind != "end" {
		err = fmt.Errorf("trailing %q", e.peek().text)
	}
	if err != nil {
		return "", fmt.Errorf("expression %q: %w", src, err)
	}
	return v, nil
}

// ghEval evaluates a GitHub expression over ctx (dotted names) with status
// (success, failure, always, cancelled) from the job's state.
func ghEval(src string, ctx map[string]string, failed bool) (string, error) {
	return evaluate(src, false, func(t token) (string, error) {
		if t.kind == "call" {
			switch t.text {
			case "always":
				return "true", nil
			case "success":
				return boolStr(!failed), nil
			case "failure":
				return boolStr(failed), nil
			case "cancelled":
				return "", nil
			}
			return "", fmt.Errorf("function %s() is not emulated", t.text)
		}
		if t.text == "true" || t.text == "false" {
			return boolStr(t.text == "true"), nil
		}
		v, ok := ctx[t.text]
		if !ok && !strings.HasPrefix(t.text, "secrets.") && !strings.HasPrefix(t.text, "vars.") {
			return "", fmt.Errorf("context %s is not emulated", t.text)
		}
		return v, nil // unset secrets and vars are ""
	})
}

// ghIf is a step's or job's if: (implicitly wrapped in success() unless it
// names a status function).
func ghIf(cond string, ctx map[string]string, failed bool) (bool, error) {
	cond = strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(cond), "${{"), "}}"))
	if cond == "" {
		return !failed, nil
	}
	v, err := ghEval(cond, ctx, failed)
	if err != nil {
		return false, err
	}
	if !strings.Contains(cond, "always()") && !strings.Contains(cond, "failure()") && !strings.Contains(cond, "cancelled()") {
		return !failed && truthy(v), nil
	}
	return truthy(v), nil
}

// ghSubst replaces every ${{ expr }} in s.
func ghSubst(s string, ctx map[string]string) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(s, "${{")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		j := strings.Index(s[i:], "}}")
		if j < 0 {
			return "", fmt.Errorf("unterminated ${{ in %q", s)
		}
		v, err := ghEval(s[i+3:i+j], ctx, false)
		if err != nil {
			return "", err
		}
		b.WriteString(s[:i])
		b.WriteString(v)
		s = s[i+j+2:]
	}
}

// glIf evaluates a GitLab rules: if: over the job's variables.
func glIf(cond string, vars map[string]string) (bool, error) {
	v, err := evaluate(cond, true, func(t token) (string, error) {
		if t.kind != "var" {
			return "", fmt.Errorf("%q is not emulated", t.text)
		}
		return vars[t.text], nil
	})
	return truthy(v), err
}

func TestExpressions(t *testing.T) {
	ctx := map[string]string{"github.event_name": "push", "github.ref_name": "main", "github.head_ref": "",
		"github.event.repository.default_branch": "main", "vars.X": "x"}
	for _, c := range []struct {
		cond   string
		failed bool
		want   bool
	}{
		{"github.event_name == 'push' && github.ref_name == github.event.repository.default_branch", false, true},
		{"github.event_name == 'push' && github.ref_name == github.event.repository.default_branch", true, false},
		{"github.event_name == 'pull_request'", false, false},
		{"always()", true, true},
		{"failure()", true, true},
		{"!(vars.X == 'y') && vars.X", false, true},
		{"", false, true},
		{"", true, false},
	} {
		got, err := ghIf(c.cond, ctx, c.failed)
		if err != nil || got != c.want {
			t.Errorf("ghIf(%q, failed=%v) = %v, %v; want %v", c.cond, c.failed, got, err, c.want)
		}
	}
	if s, err := ghSubst("${{ github.head_ref || github.ref_name }}/${{ vars.X }}", ctx); err != nil || s != "main/x" {
		t.Errorf("ghSubst = %q, %v", s, err)
	}
	if _, err := ghIf("github.nope == 'x'", ctx, false); err == nil {
		t.Error("an unknown context evaluated without an error")
	}
	vars := map[string]string{"CI_COMMIT_BRANCH": "main", "CI_DEFAULT_BRANCH": "main", "CI_PIPELINE_SOURCE": "push"}
	for _, c := range []struct {
		cond string
		want bool
	}{
		{`$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH`, true},
		{`$CI_PIPELINE_SOURCE == "merge_request_event"`, false},
		{`$CI_COMMIT_BRANCH && $CI_OPEN_MERGE_REQUESTS`, false},
		{`$CI_COMMIT_BRANCH`, true},
		{`$CI_MERGE_REQUEST_IID || $CI_COMMIT_BRANCH != "main"`, false},
	} {
		got, err := glIf(c.cond, vars)
		if err != nil || got != c.want {
			t.Errorf("glIf(%q) = %v, %v; want %v", c.cond, got, err, c.want)
		}
	}
}
