package cirecipes

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// needle is one form of a secret that must not show up.
type needle struct {
	secret, form string
	b            []byte
}

// needlesOf: the value, its base64 (how Travis settings carry keys) and,
// for a multi-line value (a key), each long line on its own.
func needlesOf(name, value string, extra map[string]string) []needle {
	ns := []needle{{name, "raw", []byte(value)}, {name, "base64", []byte(base64.StdEncoding.EncodeToString([]byte(value)))}}
	for _, l := range strings.Split(value, "\n") {
		if len(l) >= 40 && !strings.HasPrefix(l, "-----") {
			ns = append(ns, needle{name, "line", []byte(l)})
		}
	}
	for form, v := range extra {
		ns = append(ns, needle{name, form, []byte(v)})
	}
	return ns
}

func scan(where string, data []byte, ns []needle) []string {
	var hits []string
	for _, n := range ns {
		if bytes.Contains(data, n.b) {
			hits = append(hits, fmt.Sprintf("%s: %s (%s)", where, n.secret, n.form))
		}
	}
	return hits
}

// scanTree searches every regular file under root (but skip) for the needles.
func scanTree(root string, ns []needle, skip func(path string) bool) (hits []string, files int) {
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || (skip != nil && skip(p)) {
			return nil
		}
		if info, err := d.Info(); err != nil || info.Size() > 64<<20 {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		files++
		hits = append(hits, scan(p, data, ns)...)
		return nil
	})
	return hits, files
}

// argvSampler reads every process's /proc/<pid>/cmdline until stopped.
type argvSampler struct {
	ns      []needle
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	hits    map[string]bool
	samples int
}

func startArgvSampler(ns []needle) *argvSampler {
	s := &argvSampler{ns: ns, stop: make(chan struct{}), done: make(chan struct{}), hits: map[string]bool{}}
	go func() {
		defer close(s.done)
		for {
			s.sample()
			select {
			case <-s.stop:
				return
			case <-time.After(40 * time.Millisecond):
			}
		}
	}()
	return s
}

func (s *argvSampler) sample() {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || len(data) == 0 {
			continue
		}
		for _, n := range s.ns {
			if bytes.Contains(data, n.b) {
				s.mu.Lock()
				s.hits[fmt.Sprintf("argv of a process: %s (%s)", n.secret, n.form)] = true
				s.mu.Unlock()
			}
		}
	}
	s.mu.Lock()
	s.samples++
	s.mu.Unlock()
}

// seen reports the hits so far (and how many samples were taken).
func (s *argvSampler) seen() (hits []string, samples int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for h := range s.hits {
		hits = append(hits, h)
	}
	return hits, s.samples
}

func (s *argvSampler) Stop() {
	close(s.stop)
	<-s.done
}

// redact replaces every needle in text, for failure messages.
func redact(text string, ns []needle) string {
	for _, n := range ns {
		text = strings.ReplaceAll(text, string(n.b), "<"+n.secret+">")
	}
	return text
}
