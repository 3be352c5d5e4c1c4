package progress

import (
	"bytes"
	"testing"
	"time"
)

func TestPrefixAndLines(t *testing.T) {
	var b bytes.Buffer
	l := New(&b).With("web")
	l.Printf("step 1\nstep 2")
	w := l.With("db").Writer()
	w.Write([]byte("partial"))
	w.Write([]byte(" line\nnext"))
	w.Close()
	want := "[web] step 1\n[web] step 2\n[web] [db] partial line\n[web] [db] next\n"
	if b.String() != want {
		t.Fatalf("got %q, want %q", b.String(), want)
	}
}

func TestDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		850 * time.Millisecond:  "850ms",
		1234 * time.Millisecond: "1.2s",
		123 * time.Second:       "2m03s",
	} {
		if got := Duration(d); got != want {
			t.Errorf("Duration(%v) = %s, want %s", d, got, want)
		}
	}
}
