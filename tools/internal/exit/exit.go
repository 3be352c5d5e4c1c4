// Package exit maps errors to the exit codes of slipway's CLI contract.
package exit

import (
	"context"
	"errors"
	"fmt"
)

// Exit codes, as documented in the README and ARCHITECTURE.md.
const (
	OK          = 0
	Failed      = 1   // failed before changing anything
	Usage       = 2   // bad usage or bad input
	TestsFailed = 3   // tests failed or timed out
	RolledBack  = 4   // deploy failed; every changed host is back on its previous release
	LeftChanged = 5   // deploy failed; hosts left changed
	Cancelled   = 130 // cancelled, after cleanup
)

// Error carries an exit code with the error that caused it.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// With wraps err so that the process exits with code. A nil err stays nil.
func With(code int, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Code: code, Err: err}
}

// Usagef is a bad-input error (exit 2).
func Usagef(format string, a ...any) error {
	return &Error{Code: Usage, Err: fmt.Errorf(format, a...)}
}

// Code returns the exit code for err: the innermost explicit code wins over a
// cancellation, so "tests failed" stays 3 even when the run was also cancelled.
func Code(err error) int {
	if err == nil {
		return OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if errors.Is(err, context.Canceled) {
		return Cancelled
	}
	return Failed
}
