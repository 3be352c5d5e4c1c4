// Package progress writes one line per event to stderr, prefixed by service or
// host, plain when stderr is not a terminal (Jenkins logs) or NO_COLOR is set.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// Logger is safe for concurrent use; loggers made by With share one writer lock
// so lines from parallel builds never interleave mid-line.
type Logger struct {
	mu     *sync.Mutex
	w      io.Writer
	prefix string
	color  bool
}

// New returns a logger on w. Colour is used only when w is a terminal and
// NO_COLOR is unset.
func New(w io.Writer) *Logger {
	return &Logger{mu: &sync.Mutex{}, w: w, color: isTerminal(w) && os.Getenv("NO_COLOR") == ""}
}

// Discard is a logger that writes nothing (tests, --json quiet paths).
func Discard() *Logger { return &Logger{mu: &sync.Mutex{}, w: io.Discard} }

// With returns a logger whose lines start with [name].
func (l *Logger) With(name string) *Logger {
	c := *l
	c.prefix = l.prefix + "[" + name + "] "
	return &c
}

// Printf writes one event line (several if msg holds newlines, each prefixed).
func (l *Logger) Printf(format string, a ...any) {
	msg := strings.TrimRight(fmt.Sprintf(format, a...), "\n")
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range strings.Split(msg, "\n") {
		if l.color && l.prefix != "" {
			fmt.Fprintf(l.w, "\x1b[36m%s\x1b[0m%s\n", l.prefix, line)
		} else {
			fmt.Fprintf(l.w, "%s%s\n", l.prefix, line)
		}
	}
}

// Warnf writes a line marked as a warning.
func (l *Logger) Warnf(format string, a ...any) {
	if l.color {
		l.Printf("\x1b[33mwarning:\x1b[0m "+format, a...)
		return
	}
	l.Printf("warning: "+format, a...)
}

// Done writes "<what> done in 1.2s".
func (l *Logger) Done(what string, start time.Time) {
	l.Printf("%s done in %s", what, Duration(time.Since(start)))
}

// Duration rounds d for humans: 850ms, 1.2s, 2m03s.
func Duration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	default:
		d = d.Round(time.Second)
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
}

// Writer returns an io.Writer that logs each complete line it receives, for
// streaming a child's output (build steps, compose) with the logger's prefix.
func (l *Logger) Writer() io.WriteCloser { return &lineWriter{l: l} }

type lineWriter struct {
	l   *Logger
	buf []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			break
		}
		w.l.Printf("%s", strings.TrimRight(string(w.buf[:i]), "\r"))
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

// Close flushes a last partial line.
func (w *lineWriter) Close() error {
	if len(w.buf) > 0 {
		w.l.Printf("%s", string(w.buf))
		w.buf = nil
	}
	return nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
