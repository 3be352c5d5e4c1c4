package engine

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReadStreamToTheEnd(t *testing.T) {
	in := `{"status":"Preparing","id":"a"}
{"errorDetail":{"message":"received unexpected HTTP status: 500 Internal Server Error"},"error":"received unexpected HTTP status: 500 Internal Server Error"}
{"status":"after the error"}
{"error":"legacy only"}
`
	var seen []string
	err := readStream(strings.NewReader(in), func(m Message) { seen = append(seen, m.Status+m.ErrorText) })
	var se *StreamError
	if !errors.As(err, &se) || !strings.Contains(se.Message, "500") {
		t.Fatalf("want the first errorDetail, got %v", err)
	}
	if len(seen) != 4 {
		t.Fatalf("stream not read to the end: %v", seen)
	}
}

func TestReadStreamTruncated(t *testing.T) {
	err := readStream(io.MultiReader(strings.NewReader(`{"status":"Pushing"}{"aux":`)), nil)
	if err == nil || !strings.Contains(err.Error(), "progress stream") {
		t.Fatalf("a cut stream must fail, got %v", err)
	}
	if err := readStream(strings.NewReader(`{"status":"ok"}`), nil); err != nil {
		t.Fatal(err)
	}
}

func TestClassify(t *testing.T) {
	cases := map[string]Kind{
		"unauthorized: authentication required":                                              KindAuth,
		"denied: requested access to the resource is denied":                                 KindAuth,
		"toomanyrequests: You have reached your pull rate limit":                             KindRetryable,
		"received unexpected HTTP status: 503 Service Unavailable":                           KindRetryable,
		"Put https://r/v2/x/blobs/uploads/1: read: connection reset by peer":                 KindRetryable,
		"net/http: TLS handshake timeout":                                                    KindRetryable,
		"Get https://10.0.0.1:5999/v2/: dial tcp 10.0.0.1:5999: connect: connection refused": KindUnreachable,
		"dial tcp: lookup nope.invalid: no such host":                                        KindUnreachable,
		"x509: certificate signed by unknown authority":                                      KindTLS,
		"manifest unknown: manifest unknown":                                                 KindNotFound,
		"something else":                                                                     KindOther,
	}
	for msg, want := range cases {
		if got := Classify(errors.New(msg)); got != want {
			t.Errorf("Classify(%q) = %v, want %v", msg, got, want)
		}
	}
}
