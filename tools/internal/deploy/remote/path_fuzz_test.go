package remote

import (
	"path"
	"strings"
	"testing"
)

// FuzzValidRelease: a release name that is accepted names exactly one
// directory directly under releases/ (never releases/ itself, a parent, a
// hidden upload directory or a word the shell would split).
func FuzzValidRelease(f *testing.F) {
	for _, s := range []string{"0123456789ab", "", ".", "..", ".tmp-x", "a/b", "../x", "a b", "a\nb", "a\\b", "current", "x\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, r string) {
		if validRelease(r) != nil {
			return
		}
		full := path.Join("/srv/app/releases", r)
		if path.Dir(full) != "/srv/app/releases" || path.Base(full) != r {
			t.Fatalf("accepted release %q resolves to %s, not a directory directly under releases/", r, full)
		}
		if strings.HasPrefix(r, ".") || strings.ContainsAny(r, " \t\n/") {
			t.Fatalf("accepted release %q would be hidden or split by the shell", r)
		}
	})
}

// FuzzValidRelPath: an accepted upload path stays strictly inside the
// release directory.
func FuzzValidRelPath(f *testing.F) {
	for _, s := range []string{"compose.yaml", "conf/nginx.conf", "", ".", "..", "../x", "a/../../x", "/etc/passwd", "a//b", "a/./b", "a\nb", completeMarker} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if validRelPath(p) != nil {
			return
		}
		const root = "/srv/app/releases/abc"
		full := path.Join(root, p)
		if !strings.HasPrefix(full, root+"/") {
			t.Fatalf("accepted path %q resolves to %s, outside %s", p, full, root)
		}
		if strings.ContainsAny(p, "\x00\n") {
			t.Fatalf("accepted path %q holds NUL or newline", p)
		}
	})
}

// FuzzParseReleases: whatever the server prints, the listing parses without
// a panic, newest first, with at most the one current release marked.
func FuzzParseReleases(f *testing.F) {
	f.Add("@@current releases/b\n@@release a 100\n{\"commit\":\"a\"}\n\n@@release b 200\n\n")
	f.Add("@@release a x\n@@release \n@@current \n{")
	f.Add("")
	f.Fuzz(func(t *testing.T, out string) {
		rels, current := parseReleases(out)
		for i, r := range rels {
			if r.Current {
				if r.Name != current {
					t.Fatalf("release %q marked current, current is %q", r.Name, current)
				}
			}
			if i > 0 && rels[i-1].Time().Before(r.Time()) {
				t.Fatalf("not newest first: %v before %v", rels[i-1].Time(), r.Time())
			}
		}
		if strings.Contains(current, "/") {
			t.Fatalf("current %q holds a slash", current)
		}
	})
}
