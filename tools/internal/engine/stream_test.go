package engine

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/docker/docker/client"

	"github.com/slipway-dev/slipway/tools/internal/regauth"
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
		// What dockerd 20.10 put in the push stream for faults injected in
		// front of a real registry (push's TestRegistryFault* tests).
		`error parsing HTTP 429 response body: unexpected end of JSON input: ""`: KindRetryable,
		"toomanyrequests: injected rate limit":                                   KindRetryable,
		"unauthorized: injected: authentication required":                        KindAuth,
		"denied: injected denied":                                                KindAuth,
		"manifest invalid: injected: manifest rejected by policy":                KindOther,
		"something else": KindOther,
	}
	for msg, want := range cases {
		if got := Classify(errors.New(msg)); got != want {
			t.Errorf("Classify(%q) = %v, want %v", msg, got, want)
		}
	}
}

// pushStreamEngine is an engine API that answers every push with stream.
func pushStreamEngine(t *testing.T, stream string) *Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/push") {
			http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, stream)
	}))
	t.Cleanup(srv.Close)
	api, err := client.NewClientWithOpts(client.WithHost("tcp://"+strings.TrimPrefix(srv.URL, "http://")), client.WithVersion("1.41"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { api.Close() })
	return &Client{api: api}
}

// TestPushFailsOnErrorDetail: the engine answers a push with 200 and reports
// the registry's refusal inside the stream; Push must fail with it, whatever
// came before, and must not report a digest.
func TestPushFailsOnErrorDetail(t *testing.T) {
	const ref = "127.0.0.1:5000/shop/api:v1"
	const refused = `{"status":"The push refers to repository [127.0.0.1:5000/shop/api]"}
{"status":"Preparing","progressDetail":{},"id":"5b7a2564ccaa"}
{"status":"Pushed","progressDetail":{},"id":"5b7a2564ccaa"}
{"errorDetail":{"message":"manifest invalid: manifest rejected by policy"},"error":"manifest invalid: manifest rejected by policy"}
`
	var seen []Message
	res, err := pushStreamEngine(t, refused).Push(context.Background(), ref, regauth.Auth{}, func(m Message) { seen = append(seen, m) })
	var se *StreamError
	if !errors.As(err, &se) || se.Message != "manifest invalid: manifest rejected by policy" {
		t.Fatalf("want the errorDetail, got %v", err)
	}
	if res.Digest != "" {
		t.Errorf("a failed push reported digest %q", res.Digest)
	}
	if len(seen) != 4 {
		t.Errorf("%d messages passed on, want all 4", len(seen))
	}
	if k := Classify(err); k != KindOther {
		t.Errorf("a refused manifest classified %v: it must not be retried", k)
	}

	// An errorDetail fails the push even after a digest was reported.
	const late = `{"status":"v1: digest: sha256:aaaa size: 524"}
{"aux":{"Tag":"v1","Digest":"sha256:aaaa","Size":524}}
{"errorDetail":{"message":"unknown: late failure"},"error":"unknown: late failure"}
`
	if _, err := pushStreamEngine(t, late).Push(context.Background(), ref, regauth.Auth{}, nil); err == nil || !strings.Contains(err.Error(), "late failure") {
		t.Errorf("errorDetail after the digest: got %v", err)
	}

	ok := `{"aux":{"Tag":"v1","Digest":"sha256:` + strings.Repeat("b", 64) + `","Size":524}}` + "\n"
	if res, err := pushStreamEngine(t, ok).Push(context.Background(), ref, regauth.Auth{}, nil); err != nil || res.Digest != "sha256:"+strings.Repeat("b", 64) || res.Size != 524 {
		t.Errorf("clean push: %+v %v", res, err)
	}
	if _, err := pushStreamEngine(t, `{"status":"Pushed","id":"x"}`).Push(context.Background(), ref, regauth.Auth{}, nil); err == nil || !strings.Contains(err.Error(), "ended without a digest") {
		t.Errorf("stream without a digest: got %v", err)
	}
}
