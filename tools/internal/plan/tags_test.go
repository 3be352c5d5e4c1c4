package plan

import (
	"reflect"
	"strings"
	"testing"
)

const (
	commit = "0123456789abcdef0123456789abcdef01234567"
	short  = "0123456789ab"
)

func data(branch, build string) TagData {
	return TagData{Commit: commit, ShortCommit: short, Branch: branch, BuildNumber: build, DefaultBranch: "main"}
}

func TestSanitizeBranch(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"main", "main"},
		{"feature/JIRA-12", "feature-JIRA-12"},
		{"release/1.2.x", "release-1.2.x"},
		{"user@host:fix bug", "user-host-fix-bug"},
		{".hidden", "hidden"},
		{"-x", "x"},
		{"..-.a", "a"},
		{"/leading", "leading"},
		{"fé", "f-"},
		{"日本", ""},
		{"", ""},
		{"a_b.c-d", "a_b.c-d"},
		{strings.Repeat("x", 200), strings.Repeat("x", 128)},
	} {
		got := SanitizeBranch(tc.in)
		if got != tc.want {
			t.Errorf("SanitizeBranch(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if got != "" && !ValidTag(got) {
			t.Errorf("SanitizeBranch(%q) = %q is not a valid tag", tc.in, got)
		}
	}
}

func TestRenderTags(t *testing.T) {
	for _, tc := range []struct {
		name      string
		templates []string
		data      TagData
		dirty     bool
		want      []string
		err       string // substring of the error; "" means success
	}{
		{name: "default on default branch", data: data("main", ""), want: []string{commit, "latest"}},
		{name: "default on another branch", data: data("feature-x", ""), want: []string{commit}},
		{name: "default detached", data: data("", ""), want: []string{commit}},
		{name: "default dirty", data: data("main", ""), dirty: true, want: []string{commit + "-dirty", "latest-dirty"}},
		{name: "short and branch", templates: []string{"{{.ShortCommit}}", "{{.Branch}}-{{.BuildNumber}}"},
			data: data("feature-x", "7"), want: []string{short, "feature-x-7"}},
		{name: "conditional latest", templates: []string{"{{.Commit}}", "{{if eq .Branch .DefaultBranch}}latest{{end}}"},
			data: data("dev", ""), want: []string{commit}},
		{name: "conditional latest on main", templates: []string{"{{.Commit}}", "{{if eq .Branch .DefaultBranch}}latest{{end}}"},
			data: data("main", ""), want: []string{commit, "latest"}},
		{name: "guarded build number", templates: []string{"{{with .BuildNumber}}build-{{.}}{{end}}", "x"},
			data: data("main", ""), want: []string{"x"}},
		{name: "slice builtin", templates: []string{"{{slice .Commit 0 7}}"}, data: data("main", ""), want: []string{"0123456"}},
		{name: "duplicates dropped", templates: []string{"{{.Commit}}", "{{.Commit}}", "v1"}, data: data("main", ""),
			want: []string{commit, "v1"}},
		{name: "spaces trimmed", templates: []string{" {{.ShortCommit}} "}, data: data("main", ""), want: []string{short}},
		{name: "literal", templates: []string{"stable"}, data: data("main", ""), dirty: true, want: []string{"stable-dirty"}},

		{name: "all empty", templates: []string{"{{if false}}x{{end}}"}, data: data("main", ""), err: "rendered to an empty string"},
		{name: "unknown field", templates: []string{"{{.Sha}}"}, data: data("main", ""), err: ".Sha, which does not exist"},
		{name: "sub field", templates: []string{"{{.Commit.X}}"}, data: data("main", ""), err: "has no field"},
		{name: "empty build number", templates: []string{"b{{.BuildNumber}}"}, data: data("main", ""), err: "BUILD_NUMBER"},
		{name: "empty branch", templates: []string{"{{.Branch}}"}, data: data("", ""), err: "detached"},
		{name: "parse error", templates: []string{"{{.Commit"}, data: data("main", ""), err: "not a valid template"},
		{name: "bad charset", templates: []string{"v1/{{.ShortCommit}}"}, data: data("main", ""), err: "not a valid image tag"},
		{name: "leading dash", templates: []string{"-{{.ShortCommit}}"}, data: data("main", ""), err: "not a valid image tag"},
		{name: "too long", templates: []string{"{{.Commit}}{{.Commit}}{{.Commit}}{{.Commit}}"}, data: data("main", ""),
			err: "limit is 128"},
		{name: "dirty pushes over the limit", templates: []string{strings.Repeat("a", 125)}, data: data("main", ""),
			dirty: true, err: "limit is 128"},
		{name: "range refused", templates: []string{"{{range 3}}x{{end}}"}, data: data("main", ""), err: "range"},
		{name: "define refused", templates: []string{`{{define "a"}}x{{end}}y`}, data: data("main", ""), err: "defines templates"},
		{name: "huge output", templates: []string{`{{printf "%0900d" 1}}`}, data: data("main", ""), err: "more than 128"},
		{name: "exec error", templates: []string{"{{slice .Commit 0 99}}"}, data: data("main", ""), err: "--tag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := RenderTags(tc.templates, tc.data, tc.dirty)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("RenderTags(%q) = %q, %v; want an error containing %q", tc.templates, got, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("RenderTags(%q): %v", tc.templates, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("RenderTags(%q) = %q, want %q", tc.templates, got, tc.want)
			}
		})
	}
}

func TestImageRepo(t *testing.T) {
	for _, tc := range []struct {
		name                              string
		project, service, image, registry string
		want, err                         string
	}{
		{name: "image tag stripped", project: "shop", service: "api", image: "reg.example:5000/shop/api:1.0", want: "reg.example:5000/shop/api"},
		{name: "image digest stripped", project: "shop", service: "api",
			image: "reg/api@sha256:" + strings.Repeat("a", 64), want: "reg/api"},
		{name: "image kept as written", project: "shop", service: "api", image: "api", registry: "ignored:5000", want: "api"},
		{name: "default no registry", project: "shop", service: "api", want: "shop-api"},
		{name: "default registry", project: "shop", service: "api", registry: "10.213.0.1:5443/team/", want: "10.213.0.1:5443/team/shop-api"},
		{name: "service lowercased", project: "shop", service: "Web", want: "shop-web"},
		{name: "service with dot", project: "shop", service: "web.v2", want: "shop-web.v2"},
		{name: "uppercase image", project: "shop", service: "api", image: "Reg/API:1", err: "must be lowercase"},
		{name: "bad image", project: "shop", service: "api", image: "a b", err: `image "a b" is not a valid`},
		{name: "bad default", project: "shop", service: "api_", err: "set image:"},
		{name: "bad registry", project: "shop", service: "api", registry: "Reg Istry", err: "--registry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ImageRepo(tc.project, tc.service, tc.image, tc.registry)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ImageRepo = %q, %v; want error containing %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ImageRepo = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestValidRef(t *testing.T) {
	if err := ValidRef("reg:5000/shop-api", commit); err != nil {
		t.Errorf("valid ref rejected: %v", err)
	}
	if err := ValidRef(strings.Repeat("a", 300), "tag"); err == nil {
		t.Error("a 300-character repository was accepted")
	}
}

func TestOrderBuilds(t *testing.T) {
	b := func(name string, deps ...string) Build { return Build{Service: name, DependsOn: deps} }
	got, err := orderBuilds([]Build{b("web", "api"), b("api", "base"), b("base"), b("worker", "base"), b("admin")})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, x := range got {
		names = append(names, x.Service)
	}
	want := []string{"admin", "base", "api", "web", "worker"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("order %v, want %v", names, want)
	}
	_, err = orderBuilds([]Build{b("a", "b"), b("b", "c"), b("c", "a"), b("d")})
	if err == nil || !strings.Contains(err.Error(), "a -> b -> c -> a") {
		t.Errorf("cycle error %v, want it to name a -> b -> c -> a", err)
	}
}

func TestSimpleNameOf(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"name: shop\nservices: {}\n", "shop", true},
		{"services:\n  a:\n    image: x\nname: Shop-1 # the shop\n", "Shop-1", true},
		{"name: \"shop\"\n", "", false},                 // quoted: parse
		{"name: ${APP}\n", "", false},                   // interpolated: parse
		{"name: a\n---\nname: b\n", "", false},          // several documents: parse
		{"name: a\nservices: {}\nname: b\n", "", false}, // duplicate: let the parser complain
		{"services:\n  name: x\n", "", false},           // not top level
	} {
		got, ok := simpleNameOf([]byte(tc.in))
		if got != tc.want || ok != tc.ok {
			t.Errorf("simpleNameOf(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
