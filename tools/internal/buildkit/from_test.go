package buildkit

import (
	"reflect"
	"testing"
)

func TestBaseImages(t *testing.T) {
	for _, tc := range []struct {
		name, df string
		args     map[string]string
		want     []string
	}{
		{"plain", "FROM debian:bookworm\nRUN true\n", nil, []string{"debian:bookworm"}},
		{"stages", "FROM golang:1 AS build\nFROM build AS test\nFROM scratch\nCOPY --from=build /a /a\nFROM alpine\n", nil, []string{"golang:1", "alpine"}},
		{"arg default", "ARG BASE=reg:5000/x/debian:12\nFROM ${BASE}\n", nil, []string{"reg:5000/x/debian:12"}},
		{"arg override", "ARG BASE=debian\nFROM $BASE\n", map[string]string{"BASE": "ubuntu"}, []string{"ubuntu"}},
		{"nested alternative", "ARG SLW_BUILD_TOKEN\nARG BASE_IMAGE\nFROM ${SLW_BUILD_TOKEN:+${BASE_IMAGE}}\n",
			map[string]string{"SLW_BUILD_TOKEN": "s3cr$t", "BASE_IMAGE": "reg/img:1"}, []string{"reg/img:1"}},
		{"nested alternative unset", "ARG SLW_BUILD_TOKEN\nARG BASE_IMAGE=reg/img:1\nFROM ${SLW_BUILD_TOKEN:+${BASE_IMAGE}}\n", nil, nil},
		{"platform flag", "FROM --platform=$BUILDPLATFORM tonistiigi/xx AS xx\nFROM debian\n", nil, []string{"tonistiigi/xx", "debian"}},
		{"heredoc and syntax", "# syntax=docker/dockerfile:1\nFROM debian\nRUN <<EOF\necho FROM nope\nEOF\n", nil, []string{"debian"}},
		{"default form", "ARG TAG\nFROM debian:${TAG:-bookworm}\n", nil, []string{"debian:bookworm"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := BaseImages([]byte(tc.df), tc.args)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseTarget(t *testing.T) {
	for in, want := range map[string]Target{
		"": {Kind: Engine}, "buildkit": {Kind: Engine}, "classic": {Kind: Classic},
		"tcp://127.0.0.1:1234": {Kind: Remote, Addr: "tcp://127.0.0.1:1234"},
		"unix:///run/bk.sock":  {Kind: Remote, Addr: "unix:///run/bk.sock"},
	} {
		got, err := ParseTarget(in)
		if err != nil || got != want {
			t.Errorf("%q: got %+v %v, want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"tcp://", "http://x:1", "unix://", "docker-container://x", "kubernetes"} {
		if _, err := ParseTarget(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestCacheEntries(t *testing.T) {
	got, err := cacheEntries([]string{"reg/app:cache", "type=registry,ref=reg/app:c2,mode=max", "type=local,src=/tmp/c"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Type != "registry" || got[0].Attrs["ref"] != "reg/app:cache" ||
		got[1].Attrs["mode"] != "max" || got[2].Type != "local" || got[2].Attrs["src"] != "/tmp/c" {
		t.Errorf("%+v", got)
	}
	if _, err := cacheEntries([]string{"type=registry,oops"}); err == nil {
		t.Error("malformed entry accepted")
	}
}
