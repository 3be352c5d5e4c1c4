package secrets

// The leak scanner: what a secret looks like in its common encodings, and the
// three places searched for it (bytes such as a captured log, files under a
// directory, the argv of every process on the machine).

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// secret is one hostile value. Its marker is a random token that appears in
// every line of the value, so a partial leak (one line, a shell-quoted or
// JSON/URL-escaped copy) is found too: those encodings keep letters and digits
// as they are.
type secret struct {
	name   string // "registry password", for reports; never the value
	marker string
	value  string
}

// newSecret returns a value holding $, %, both quotes, a backslash, spaces,
// a newline, a command substitution and a backtick, around a fresh marker.
func newSecret(name, kind string) secret {
	b := make([]byte, 5)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	// Short enough for bcrypt (72 bytes: the registry's htpasswd).
	m := "SLW" + kind[:1] + hex.EncodeToString(b)
	v := m + `-a $HOME %41 'q' "d" b\s` + "\n" + m + "-b $(id) `id` 1%"
	return secret{name: name, marker: m, value: v}
}

// needle is one byte string whose presence means the secret leaked.
type needle struct {
	secret string // secret.name
	form   string // "raw", "base64 of user:password", ...
	b      []byte
}

// needles lists the forms a secret is searched in: raw, each line alone,
// JSON-escaped, URL-encoded, base64 (std and URL alphabets) of the value and
// of extra (e.g. "user:password", the registry's basic auth), hex of the
// marker, the marker itself, and the marker's base64 at all three byte
// alignments (so it is found inside any base64 blob, such as a docker
// config.json "auth" or an X-Registry-Auth header).
func (s secret) needles(extra map[string]string) []needle {
	var out []needle
	seen := map[string]bool{}
	add := func(form, v string) {
		if len(v) < 12 || seen[v] {
			return
		}
		seen[v] = true
		out = append(out, needle{secret: s.name, form: form, b: []byte(v)})
	}
	add("raw", s.value)
	for i, l := range strings.Split(s.value, "\n") {
		add(fmt.Sprintf("line %d", i+1), l)
	}
	js, _ := json.Marshal(s.value)
	add("JSON-escaped", strings.Trim(string(js), `"`))
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s.value)
	add("JSON-escaped (no HTML escaping)", strings.Trim(strings.TrimSpace(buf.String()), `"`))
	add("URL-encoded (query)", url.QueryEscape(s.value))
	add("URL-encoded (path)", url.PathEscape(s.value))
	add("URL-encoded (userinfo)", url.UserPassword("u", s.value).String()[2:])
	forms := map[string]string{"the value": s.value}
	for k, v := range extra {
		forms[k] = v
	}
	keys := make([]string, 0, len(forms))
	for k := range forms {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, e := range []struct {
			name string
			enc  *base64.Encoding
		}{{"base64", base64.StdEncoding}, {"base64url", base64.URLEncoding}, {"base64 (raw)", base64.RawStdEncoding}} {
			add(e.name+" of "+k, e.enc.EncodeToString([]byte(forms[k])))
		}
	}
	add("hex of the marker", hex.EncodeToString([]byte(s.marker)))
	add("marker", s.marker)
	for _, f := range base64Fragments([]byte(s.marker)) {
		add("base64 of the marker inside a larger blob", f)
	}
	return out
}

// base64Fragments returns, for each of the three byte alignments and both
// alphabets, the base64 characters that depend only on b: whatever bytes
// surround b in a larger encoded blob, these characters appear in it.
func base64Fragments(b []byte) []string {
	var out []string
	for k := 0; k < 3; k++ {
		in := append(make([]byte, k), b...)
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
			s := enc.EncodeToString(in)
			first := (8*k + 5) / 6         // first character with no prefix bit
			last := (8 * (k + len(b))) / 6 // characters before it hold only b's bits
			if last > first {
				out = append(out, s[first:last])
			}
		}
	}
	return out
}

// hit is a leak found: where, which secret, in which form. It never holds
// the secret itself, so reports are safe to print.
type hit struct {
	where  string
	secret string
	form   string
}

func (h hit) String() string { return fmt.Sprintf("%s: %s (%s)", h.where, h.secret, h.form) }

// scanBytes reports every needle in data, attributed to where.
func scanBytes(where string, data []byte, ns []needle) []hit {
	var out []hit
	for _, n := range ns {
		if bytes.Contains(data, n.b) {
			out = append(out, hit{where: where, secret: n.secret, form: n.form})
		}
	}
	return out
}

// scanOpts limit a tree scan.
type scanOpts struct {
	// changedSince, when set, skips files whose status did not change since
	// then (ctime, which nothing can set back): for big shared trees where
	// only what the run wrote can hold its fresh random markers.
	changedSince time.Time
	// skip reports paths (files or directories) not to scan.
	skip func(path string) bool
}

const maxScanSize = 64 << 20

// scanTree searches every regular file under root. It returns the hits and
// the files it read (a scan that read nothing proves nothing).
func scanTree(root string, ns []needle, o scanOpts) (hits []hit, files []string) {
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // vanished or unreadable (another test's files): not ours
		}
		if o.skip != nil && o.skip(p) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil || info.Size() > maxScanSize {
			return nil
		}
		if !o.changedSince.IsZero() {
			if st, ok := info.Sys().(*syscall.Stat_t); ok && time.Unix(st.Ctim.Unix()).Before(o.changedSince) {
				return nil
			}
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		files = append(files, p)
		hits = append(hits, scanBytes(p, data, ns)...)
		return nil
	})
	return hits, files
}

// argvSampler reads /proc/*/cmdline of every process on the machine (the
// targets' sshd, shells and docker CLIs included: they are network namespaces
// of this host) every interval until stopped.
type argvSampler struct {
	ns   []needle
	stop chan struct{}
	done chan struct{}

	mu      sync.Mutex
	hits    []hit
	samples int
	procs   map[string]bool // distinct pid+cmdline seen, to show the sampling saw real work
}

func startArgvSampler(ns []needle, interval time.Duration) *argvSampler {
	s := &argvSampler{ns: ns, stop: make(chan struct{}), done: make(chan struct{}), procs: map[string]bool{}}
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			s.sample()
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *argvSampler) sample() {
	ents, _ := os.ReadDir("/proc")
	var hits []hit
	seen := map[string]bool{}
	for _, ent := range ents {
		if _, err := strconv.Atoi(ent.Name()); err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + ent.Name() + "/cmdline")
		if err != nil || len(data) == 0 {
			continue
		}
		seen[ent.Name()+" "+string(data)] = true
		for _, h := range scanBytes("", data, s.ns) {
			h.where = fmt.Sprintf("argv of pid %s (%s)", ent.Name(), redactedArgv(data, s.ns))
			hits = append(hits, h)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.samples++
	s.hits = append(s.hits, hits...)
	for k := range seen {
		s.procs[k] = true
	}
}

// Stop ends the sampling and returns the hits (deduplicated), the number of
// samples and of distinct processes seen.
func (s *argvSampler) Stop() (hits []hit, samples, procs int) {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return dedup(s.hits), s.samples, len(s.procs)
}

// redactedArgv shows a command line with every needle replaced, for reports.
func redactedArgv(cmdline []byte, ns []needle) string {
	out := bytes.ReplaceAll(bytes.TrimRight(cmdline, "\x00"), []byte{0}, []byte{' '})
	for _, n := range ns {
		out = bytes.ReplaceAll(out, n.b, []byte("<"+n.secret+">"))
	}
	s := string(out)
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}

// redact replaces every needle in text, so a failing command's output can be
// shown without printing a secret.
func redact(text string, ns []needle) string {
	for _, n := range ns {
		text = strings.ReplaceAll(text, string(n.b), "<"+n.secret+">")
	}
	return text
}

func dedup(hs []hit) []hit {
	seen := map[hit]bool{}
	var out []hit
	for _, h := range hs {
		if !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	return out
}

// only splits hits into those of the named secret and the rest.
func only(hs []hit, name string) (of, rest []hit) {
	for _, h := range hs {
		if h.secret == name {
			of = append(of, h)
		} else {
			rest = append(rest, h)
		}
	}
	return of, rest
}
