package sshx

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"unicode"

	"github.com/slipway-dev/slipway/tools/internal/exit"
)

// ParseTarget parses [user@]host[:port], [ipv6]:port, a bare IPv6 address, or
// ssh://[user@]host[:port]. Errors are bad input (exit 2) and name the problem.
func ParseTarget(s string) (Target, error) {
	orig := s
	s = strings.TrimSpace(s)
	t := Target{Alias: s}
	bad := func(why string) (Target, error) {
		return Target{}, exit.Usagef("invalid host %q: %s (want [user@]host[:port], [ipv6-address]:port)", orig, why)
	}
	if s == "" {
		return bad("empty")
	}
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return bad("contains whitespace or control characters")
		}
	}
	s = strings.TrimPrefix(s, "ssh://")
	if strings.Contains(s, "/") {
		return bad("contains '/'")
	}
	// ssh splits user from host at the last '@' (user names may hold '@').
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		t.User, s = s[:i], s[i+1:]
		if t.User == "" {
			return bad("empty user before '@'")
		}
		if strings.ContainsAny(t.User, ":[]") {
			return bad("user name contains ':' or brackets")
		}
		if strings.HasPrefix(t.User, "-") {
			return bad("user name starts with '-'")
		}
	}
	switch {
	case strings.HasPrefix(s, "["):
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return bad("missing ']' after IPv6 address")
		}
		t.Host = s[1:end]
		rest := s[end+1:]
		if rest != "" {
			if !strings.HasPrefix(rest, ":") {
				return bad("unexpected text after ']'")
			}
			p, err := parsePort(rest[1:])
			if err != "" {
				return bad(err)
			}
			t.Port = p
		}
		if t.Host == "" {
			return bad("empty address in brackets")
		}
		if strings.ContainsAny(t.Host, "[]") {
			return bad("nested brackets")
		}
	case strings.Count(s, ":") >= 2:
		// A bare IPv6 address: no port possible without brackets.
		if net.ParseIP(stripZone(s)) == nil {
			return bad("looks like an IPv6 address but is not one; write [address]:port")
		}
		t.Host = s
	case strings.Contains(s, ":"):
		i := strings.IndexByte(s, ':')
		t.Host = s[:i]
		p, err := parsePort(s[i+1:])
		if err != "" {
			return bad(err)
		}
		t.Port = p
	default:
		t.Host = s
	}
	if t.Host == "" {
		return bad("empty host name")
	}
	if strings.HasPrefix(t.Host, "-") {
		return bad("host name starts with '-'")
	}
	// The characters OpenSSH's valid_hostname refuses, plus brackets.
	if i := strings.IndexAny(t.Host, "[]@,'`\"$\\;&<>|(){}"); i >= 0 {
		return bad(fmt.Sprintf("host name contains %q", t.Host[i]))
	}
	return t, nil
}

func parsePort(s string) (int, string) {
	if s == "" {
		return 0, "empty port after ':'"
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, "port " + strconv.Quote(s) + " is not a number"
		}
	}
	p, err := strconv.Atoi(s)
	if err != nil || p < 1 || p > 65535 {
		return 0, "port " + s + " out of range 1-65535"
	}
	return p, ""
}

func stripZone(h string) string {
	if i := strings.IndexByte(h, '%'); i >= 0 {
		return h[:i]
	}
	return h
}

func isIPv6(h string) bool { return strings.Contains(h, ":") }

func joinHostPort(h string, port int) string { return net.JoinHostPort(h, strconv.Itoa(port)) }

// Quote returns s single-quoted for a POSIX shell, so the remote shell passes
// it through as one word whatever it contains ($, `, ", \, newlines, spaces).
// Plain words made only of safe characters are returned as they are.
func Quote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("@%+:,./_-", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}

// QuoteArgs quotes each word and joins them with spaces: a command line for Run.
func QuoteArgs(args ...string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = Quote(a)
	}
	return strings.Join(q, " ")
}

func abbreviate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// lastLines keeps the last n non-empty lines of s, joined by " | " so that an
// error stays one readable line in a Jenkins log.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	var keep []string
	for i := len(lines) - 1; i >= 0 && len(keep) < n; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			keep = append([]string{l}, keep...)
		}
	}
	return strings.Join(keep, " | ")
}
