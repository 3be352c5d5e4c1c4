package sshx

import (
	"os/exec"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/slipway-dev/slipway/tools/internal/exit"
)

func TestParseTarget(t *testing.T) {
	good := map[string]Target{
		"web1":                       {Host: "web1"},
		"deploy@web1":                {User: "deploy", Host: "web1"},
		"deploy@web1:2222":           {User: "deploy", Host: "web1", Port: 2222},
		"10.213.0.11":                {Host: "10.213.0.11"},
		"10.213.0.11:22":             {Host: "10.213.0.11", Port: 22},
		"[::1]:2222":                 {Host: "::1", Port: 2222},
		"root@[fe80::1%eth0]:22":     {User: "root", Host: "fe80::1%eth0", Port: 22},
		"[::1]":                      {Host: "::1"},
		"::1":                        {Host: "::1"},
		"me@2001:db8::7":             {User: "me", Host: "2001:db8::7"},
		"ssh://deploy@web1:2200":     {User: "deploy", Host: "web1", Port: 2200},
		"a@b@host":                   {User: "a@b", Host: "host"},
		"  web1  ":                   {Host: "web1"},
		"prod-web.example.com:65535": {Host: "prod-web.example.com", Port: 65535},
	}
	for in, want := range good {
		got, err := ParseTarget(in)
		want.Alias = strings.TrimSpace(in)
		if err != nil || got != want {
			t.Errorf("ParseTarget(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	bad := map[string]string{
		"":               "empty",
		"web1:":          "empty port",
		"web1:0":         "out of range",
		"web1:65536":     "out of range",
		"web1:22x":       "not a number",
		"@web1":          "empty user",
		"deploy@":        "empty host",
		"[::1":           "missing ']'",
		"[::1]x":         "unexpected text",
		"[]:22":          "empty address",
		"1:2:3:zz":       "IPv6",
		"-oProxyCommand": "starts with '-'",
		"web 1":          "whitespace",
		"web1\n":         "", // trimmed: fine
		"a/b":            "'/'",
		"web1,web2":      "contains ','",
		"web;id":         "contains ';'",
	}
	for in, why := range bad {
		_, err := ParseTarget(in)
		if why == "" {
			continue
		}
		if err == nil || !strings.Contains(err.Error(), why) || exit.Code(err) != exit.Usage {
			t.Errorf("ParseTarget(%q): err %v, want exit 2 mentioning %q", in, err, why)
		}
	}
}

func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"web1", "deploy@web1:2222", "[::1]:22", "::1", "ssh://u@h:1", "a@b@c", "[fe80::1%eth0]:22",
		"", ":", "@", "[", "]", "[]:", "h:99999", "-x", "u@[::1]x", "host:22:33", "é@ü:1", "\x00", "h\t"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := ParseTarget(s)
		if err != nil {
			if exit.Code(err) != exit.Usage || !strings.Contains(err.Error(), "invalid host") {
				t.Fatalf("ParseTarget(%q): error %v is not a clear usage error", s, err)
			}
			return
		}
		if tg.Host == "" || strings.HasPrefix(tg.Host, "-") || strings.ContainsAny(tg.Host, " \t\n[]@/") {
			t.Fatalf("ParseTarget(%q) accepted host %q", s, tg.Host)
		}
		if tg.Port < 0 || tg.Port > 65535 {
			t.Fatalf("ParseTarget(%q) port %d", s, tg.Port)
		}
		again, err := ParseTarget(tg.String())
		if err != nil || again.User != tg.User || again.Host != tg.Host || again.Port != tg.Port {
			t.Fatalf("round trip %q -> %q -> %+v, %v", s, tg.String(), again, err)
		}
	})
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"":             "''",
		"plain":        "plain",
		"/srv/app-1.2": "/srv/app-1.2",
		"a b":          "'a b'",
		"it's":         `'it'"'"'s'`,
		"$HOME":        "'$HOME'",
		"a=b":          "'a=b'",
		"~":            "'~'",
	} {
		if got := Quote(in); got != want {
			t.Errorf("Quote(%q) = %s, want %s", in, got, want)
		}
	}
	for _, s := range []string{"", "x y", "$(touch /tmp/pwned)", "`id`", "a'b\"c", "line1\nline2", "\\", "*", "-n", "!!", "%s", "tab\there", "ünï"} {
		checkQuoteInShell(t, s)
	}
}

func FuzzQuote(f *testing.F) {
	for _, s := range []string{"", "a b", "it's", "$(id)", "`x`", "\n", "\\'", "'\"'"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.ContainsRune(s, 0) || !utf8.ValidString(s) {
			return // argv cannot carry NUL; the remote shell gets bytes as given otherwise
		}
		checkQuoteInShell(t, s)
	})
}

// checkQuoteInShell runs the quoted word through a real POSIX shell.
func checkQuoteInShell(t *testing.T, s string) {
	t.Helper()
	out, err := exec.Command("/bin/sh", "-c", "printf '%s' "+Quote(s)+" "+QuoteArgs(s, "x")).Output()
	if err != nil {
		t.Fatalf("sh with %q: %v", Quote(s), err)
	}
	if want := s + s + "x"; string(out) != want {
		t.Fatalf("sh printed %q for Quote(%q)=%s, want %q", out, s, Quote(s), want)
	}
}
