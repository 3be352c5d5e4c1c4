package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
)

// Message is one object of the engine's JSON progress stream (build, pull,
// push): the fields slipway reads from docker's jsonmessage.
type Message struct {
	Stream   string          `json:"stream,omitempty"`
	Status   string          `json:"status,omitempty"`
	ID       string          `json:"id,omitempty"`
	Progress string          `json:"progress,omitempty"`
	Aux      json.RawMessage `json:"aux,omitempty"`
	Error    *StreamError    `json:"errorDetail,omitempty"`
	// ErrorText is the legacy "error" string, set with Error.
	ErrorText string `json:"error,omitempty"`
}

// StreamError is an errorDetail from the stream: the operation failed even
// though the HTTP call itself returned 200.
type StreamError struct {
	Code    int    `json:"code,omitempty"`
	Message string `json:"message"`
}

func (e *StreamError) Error() string { return e.Message }

// readStream decodes the stream to its END, calling fn for every message, and
// returns the first errorDetail. A push or build is not a success until the
// stream has ended without one.
func readStream(r io.Reader, fn func(Message)) error {
	dec := json.NewDecoder(r)
	var first error
	for {
		var m Message
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return first
			}
			if first != nil {
				return first
			}
			return fmt.Errorf("reading the engine's progress stream: %w", err)
		}
		if m.Error == nil && m.ErrorText != "" {
			m.Error = &StreamError{Message: m.ErrorText}
		}
		if fn != nil {
			fn(m)
		}
		if m.Error != nil && first == nil {
			first = m.Error
		}
	}
}

// Kind classifies an engine or registry error for retry decisions.
type Kind int

// Error kinds.
const (
	KindOther       Kind = iota
	KindAuth             // 401/403: wrong or missing credentials; retrying will not help
	KindRetryable        // 429, 5xx, connection reset, timeouts
	KindUnreachable      // connection refused, unknown host, no route: the registry is not there
	KindTLS              // certificate problems
	KindNotFound         // manifest or repository unknown
)

func (k Kind) String() string {
	return [...]string{"other", "auth", "retryable", "unreachable", "tls", "not found"}[k]
}

// Classify reads an error from the engine (HTTP status or stream errorDetail
// text, which is all the engine passes on from the registry).
func Classify(err error) Kind {
	if err == nil {
		return KindOther
	}
	msg := strings.ToLower(err.Error())
	has := func(subs ...string) bool {
		for _, s := range subs {
			if strings.Contains(msg, s) {
				return true
			}
		}
		return false
	}
	switch {
	case has("manifest unknown", "name unknown", "no such image"):
		return KindNotFound
	case has("x509:", "certificate signed by unknown authority", "tls: failed to verify", "certificate is not valid", "server gave http response to https client"):
		return KindTLS
	case cerrdefs.IsUnauthorized(err), cerrdefs.IsPermissionDenied(err),
		has("unauthorized", "authentication required", "incorrect username or password", "denied:", "access to the resource is denied", "401 unauthorized", "403 forbidden", "no basic auth credentials"):
		return KindAuth
	case has("toomanyrequests", "too many requests", " 429", "status: 429", "connection reset", "broken pipe", "i/o timeout", "tls handshake timeout",
		"timeout exceeded", "unexpected eof", "500 internal server error", "502 bad gateway", "503 service unavailable", "504 gateway timeout",
		"unexpected http status: 5", "status code 5", "server misbehaving", "blob upload unknown"),
		strings.HasPrefix(msg, "unknown: "): // the registry's UNKNOWN error code, a 5xx
		return KindRetryable
	case has("connection refused", "no such host", "no route to host", "network is unreachable", "host is unreachable"):
		return KindUnreachable
	case cerrdefs.IsNotFound(err), has("manifest unknown", "not found", "name unknown", "does not exist", "no such image"):
		return KindNotFound
	case cerrdefs.IsUnavailable(err), cerrdefs.IsInternal(err):
		return KindRetryable
	}
	return KindOther
}
