// Package grace is what a cancelled slipway (Ctrl-C, a Jenkins abort or
// timeout: SIGTERM to every process of the step, in any order) still does
// before it exits: it survives its stderr/stdout pipe dying (SIGPIPE is
// ignored; the log also goes to SLIPWAY_LOG_FILE), finishes its cleanup
// (rollback, marker, lock) on a context that ignores the cancel but is
// bounded by SLIPWAY_CANCEL_GRACE from the signal, and writes its exit code
// to SLIPWAY_EXIT_FILE, so that the step can wait for it after the pipe
// and the shell are gone.
package grace

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Environment variables.
const (
	EnvGrace    = "SLIPWAY_CANCEL_GRACE"
	EnvLogFile  = "SLIPWAY_LOG_FILE"
	EnvExitFile = "SLIPWAY_EXIT_FILE"
)

// DefaultGrace bounds the cleanup after a cancel. The library's steps set
// 4s: Jenkins kills a process 5s after its SIGTERM.
const DefaultGrace = 20 * time.Second

// Interrupted is the cancel cause of the context Signal returns.
type Interrupted struct {
	Signal os.Signal
	At     time.Time
	Grace  time.Duration
}

func (e *Interrupted) Error() string {
	return fmt.Sprintf("interrupted by %v", e.Signal)
}

// Is makes errors.Is(err, context.Canceled) true, so the exit code maps to 130.
func (e *Interrupted) Is(target error) bool { return target == context.Canceled }

// ParseGrace reads SLIPWAY_CANCEL_GRACE's value ("" is the default).
func ParseGrace(v string) (time.Duration, error) {
	if strings.TrimSpace(v) == "" {
		return DefaultGrace, nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s=%q: want a positive duration such as 4s or 20s", EnvGrace, v)
	}
	return d, nil
}

// Signal returns a context cancelled by SIGINT or SIGTERM, whose cause is
// an *Interrupted that records when, and stop to release the handler.
func Signal(parent context.Context, grace time.Duration) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-ch:
			cancel(&Interrupted{Signal: s, At: time.Now(), Grace: grace})
		case <-done:
		}
	}()
	var once sync.Once
	return ctx, func() {
		once.Do(func() {
			signal.Stop(ch)
			close(done)
		})
	}
}

// Cause is the interruption that cancelled ctx, or nil.
func Cause(ctx context.Context) *Interrupted {
	var in *Interrupted
	if errors.As(context.Cause(ctx), &in) {
		return in
	}
	return nil
}

// Cleanup returns a context for work that must happen even after parent is
// cancelled (rolling back, removing the marker, releasing the lock): it
// ignores parent's cancel and ends after d, or, once parent is interrupted
// (Signal), at the interruption's time plus its grace, whichever is first.
// Every cleanup call after a cancel must use it: the cancelled context
// fails at once.
func Cleanup(parent context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if parent.Value(cleanupKey{}) != nil {
		// Already a cleanup context: inherit its bound (and its grace timer).
		return context.WithTimeout(parent, d)
	}
	ctx, cancel := context.WithTimeout(context.WithValue(context.WithoutCancel(parent), cleanupKey{}, true), d)
	if Left(parent) == 0 {
		// The grace is used up already: nothing more may start.
		cancel()
		return ctx, cancel
	}
	var mu sync.Mutex
	var timer *time.Timer
	stop := context.AfterFunc(parent, func() {
		left := time.Duration(0)
		if in := Cause(parent); in != nil {
			left = time.Until(in.At.Add(in.Grace))
		} else {
			// A cancel that is no signal (a caller's): no grace of its own;
			// the work is bounded by d.
			return
		}
		mu.Lock()
		timer = time.AfterFunc(max(left, 0), cancel)
		mu.Unlock()
	})
	return ctx, func() {
		stop()
		mu.Lock()
		if timer != nil {
			timer.Stop()
		}
		mu.Unlock()
		cancel()
	}
}

type cleanupKey struct{}

// Left is how much of the grace remains after an interruption of ctx
// (0 when it is used up), or -1 when ctx was not interrupted.
func Left(ctx context.Context) time.Duration {
	in := Cause(ctx)
	if in == nil {
		return -1
	}
	return max(time.Until(in.At.Add(in.Grace)), 0)
}

// Output is the process's stderr while Setup is in effect.
type Output struct {
	file   *os.File // SLIPWAY_LOG_FILE, or nil
	orig   *os.File // the original stderr (a dup of fd 2)
	pipe   *os.File // read end of the pipe now on fd 2
	done   chan struct{}
	closed sync.Once
}

// Setup ignores SIGPIPE (a dead tee must not kill slipway mid-rollback:
// writes to the dead pipe fail instead) and, with SLIPWAY_LOG_FILE set,
// copies everything written to fd 2 (slipway's log, its children's
// stderr, a panic) into that file too; writing to the original stderr
// stops at its first error, the file keeps everything. Call Close before
// exiting to flush.
func Setup(getenv func(string) string) (*Output, error) {
	signal.Ignore(syscall.SIGPIPE)
	path := getenv(EnvLogFile)
	if path == "" {
		return &Output{}, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%s: opening the log file: %w", EnvLogFile, err)
	}
	origFD, err := syscall.Dup(2)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: duplicating stderr: %w", EnvLogFile, err)
	}
	syscall.CloseOnExec(origFD)
	r, w, err := os.Pipe()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", EnvLogFile, err)
	}
	if err := syscall.Dup3(int(w.Fd()), 2, 0); err != nil {
		f.Close()
		r.Close()
		w.Close()
		return nil, fmt.Errorf("%s: redirecting stderr: %w", EnvLogFile, err)
	}
	w.Close()
	o := &Output{file: f, orig: os.NewFile(uintptr(origFD), "stderr"), pipe: r, done: make(chan struct{})}
	go o.copy()
	return o, nil
}

func (o *Output) copy() {
	defer close(o.done)
	buf := make([]byte, 32*1024)
	toOrig := true
	for {
		n, err := o.pipe.Read(buf)
		if n > 0 {
			_, _ = o.file.Write(buf[:n])
			if toOrig {
				if _, werr := o.orig.Write(buf[:n]); werr != nil {
					toOrig = false // the reader is gone (EPIPE): the file has it all
				}
			}
		}
		if err == io.EOF || err != nil {
			return
		}
	}
}

// Close flushes what was written to fd 2 into the log file and restores
// fd 2 (later writes go to the original stderr only).
func (o *Output) Close() {
	if o == nil || o.file == nil {
		return
	}
	o.closed.Do(func() {
		// Putting the original back on fd 2 closes the pipe's last write end
		// (children that inherited it have exited), so the copier sees EOF.
		_ = syscall.Dup3(int(o.orig.Fd()), 2, 0)
		select {
		case <-o.done:
		case <-time.After(2 * time.Second): // a child still holds the pipe
		}
		_ = o.file.Sync()
		_ = o.file.Close()
	})
}

// WriteExitFile writes code to SLIPWAY_EXIT_FILE (if set) atomically: the
// step polls for it after an abort, so it must never see a partial file.
func WriteExitFile(getenv func(string) string, code int) error {
	path := getenv(EnvExitFile)
	if path == "" {
		return nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(code)+"\n"), 0o644); err != nil {
		return fmt.Errorf("%s: %w", EnvExitFile, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("%s: %w", EnvExitFile, err)
	}
	return nil
}
