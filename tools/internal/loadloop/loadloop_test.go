package loadloop

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestCheckRefusesOtherHosts(t *testing.T) {
	for _, u := range []string{"http://127.0.0.1:8080/", "http://localhost/x", "http://10.213.0.11:18081/version", "http://[::1]:80/"} {
		if err := Check(u); err != nil {
			t.Errorf("Check(%q): %v", u, err)
		}
	}
	for _, u := range []string{"http://10.213.1.1/", "http://192.168.1.1/", "http://example.com/", "ftp://127.0.0.1/", "http://10.0.0.1/", "::"} {
		if err := Check(u); err == nil {
			t.Errorf("Check(%q) accepted", u)
		}
	}
	if _, err := Start(context.Background(), Options{URL: "http://192.0.2.1/", Count: 1, Duration: time.Second}); err == nil {
		t.Error("Start accepted an address outside the test network")
	}
	if _, err := Start(context.Background(), Options{URL: "http://127.0.0.1/", Duration: time.Second}); err == nil {
		t.Error("Start accepted a loop without a count bound")
	}
}

func TestCountsOKAndFailed(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := n.Add(1)
		switch {
		case i%10 == 0:
			http.Error(w, "boom", http.StatusBadGateway)
		case i > 50:
			w.Write([]byte("v2\n"))
		default:
			w.Write([]byte("v1\n"))
		}
	}))
	defer srv.Close()
	l, err := Start(context.Background(), Options{URL: srv.URL + "/version", Count: 100, Duration: time.Minute, Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	<-l.Done()
	s := l.Stats()
	if s.Total() != 100 || s.Failed != 10 || s.OK != 90 {
		t.Errorf("stats %s", s)
	}
	if s.Bodies["v1"]+s.Bodies["v2"] != 90 || s.Bodies["v2"] == 0 {
		t.Errorf("bodies %v", s.Bodies)
	}
	if len(s.Failures) != 10 || !strings.Contains(s.Failures[0].Reason, "HTTP 502") {
		t.Errorf("failures %+v", s.Failures)
	}
}

func TestBoundedInTimeAndStop(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(5 * time.Millisecond)
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	l, err := Start(context.Background(), Options{URL: srv.URL, Count: 1 << 30, Duration: 300 * time.Millisecond, KeepAlive: true})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the loop did not end at its time bound")
	}
	if s := l.Stats(); s.Failed != 0 || s.OK == 0 {
		t.Errorf("stats %s", s)
	}

	l, err = Start(context.Background(), Options{URL: srv.URL, Count: 1 << 30, Duration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if !l.WaitTotal(context.Background(), 20) {
		t.Fatal("WaitTotal: fewer than 20 requests")
	}
	s := l.Stop()
	if s.Failed != 0 || s.OK < 20 {
		t.Errorf("after Stop: %s", s)
	}
}

func TestConnectionErrorsCount(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: every request is refused
	l, err := Start(context.Background(), Options{URL: "http://" + addr + "/", Count: 5, Duration: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	<-l.Done()
	if s := l.Stats(); s.Failed != 5 || s.OK != 0 {
		t.Errorf("stats %s", s)
	}
}
