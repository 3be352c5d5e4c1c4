package grace

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestCleanupOutlivesCancelUntilGrace(t *testing.T) {
	parent, cancel := context.WithCancelCause(context.Background())
	ctx, stop := Cleanup(parent, time.Hour)
	defer stop()
	inner, stopInner := Cleanup(ctx, time.Hour)
	defer stopInner()
	// An interruption whose grace is already over: the cleanup ends at once.
	cancel(&Interrupted{Signal: syscall.SIGTERM, At: time.Now().Add(-time.Minute), Grace: time.Second})
	for _, c := range []context.Context{ctx, inner} {
		select {
		case <-c.Done():
		case <-time.After(time.Minute):
			t.Fatal("a cleanup context outlived the interruption's grace")
		}
	}
	if !errors.Is(context.Cause(parent), context.Canceled) {
		t.Error("an Interrupted cause must match context.Canceled (exit 130)")
	}
}

func TestCleanupRunsWithinGrace(t *testing.T) {
	parent, cancel := context.WithCancelCause(context.Background())
	ctx, stop := Cleanup(parent, time.Hour)
	defer stop()
	cancel(&Interrupted{Signal: syscall.SIGTERM, At: time.Now(), Grace: time.Hour})
	<-parent.Done()
	time.Sleep(50 * time.Millisecond) // let AfterFunc run
	if ctx.Err() != nil {
		t.Fatalf("the cleanup context ended with the cancel (%v): it must run within the grace", ctx.Err())
	}
	if l := Left(parent); l <= 0 {
		t.Errorf("Left = %s, want time remaining", l)
	}
	if Left(context.Background()) != -1 {
		t.Error("Left of an uninterrupted context must be -1")
	}
}

func TestParseGrace(t *testing.T) {
	if d, err := ParseGrace(""); err != nil || d != DefaultGrace {
		t.Errorf("ParseGrace(\"\") = %s, %v", d, err)
	}
	if d, err := ParseGrace("4s"); err != nil || d != 4*time.Second {
		t.Errorf("ParseGrace(4s) = %s, %v", d, err)
	}
	for _, bad := range []string{"x", "-1s", "0"} {
		if _, err := ParseGrace(bad); err == nil {
			t.Errorf("ParseGrace(%q): want an error", bad)
		}
	}
}

func TestWriteExitFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "exit")
	env := func(k string) string {
		if k == EnvExitFile {
			return p
		}
		return ""
	}
	if err := WriteExitFile(env, 130); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "130\n" {
		t.Fatalf("exit file = %q, %v", b, err)
	}
	if err := WriteExitFile(func(string) string { return "" }, 1); err != nil {
		t.Errorf("no SLIPWAY_EXIT_FILE: want no error, got %v", err)
	}
}

func TestCleanupAfterTheGraceIsDoneAtOnce(t *testing.T) {
	parent, cancel := context.WithCancelCause(context.Background())
	cancel(&Interrupted{Signal: syscall.SIGTERM, At: time.Now().Add(-time.Minute), Grace: time.Second})
	ctx, stop := Cleanup(parent, time.Hour)
	defer stop()
	if ctx.Err() == nil {
		t.Fatal("a cleanup context made after the grace ran out must be done already")
	}
}
