// Command wanlink puts a simulated wide-area link in front of the test
// registry for the push benchmark: a plain-HTTP reverse proxy on 127.0.0.1
// (an insecure registry for the engine by default) that adds a round-trip
// delay to every request and caps the rate of every request and response body,
// as a registry across a network does. On loopback, pushes are bound by this
// machine's CPU instead, which is not what a CI agent pushing to a remote
// registry waits for.
//
//	wanlink -upstream 10.213.0.1:5443 -ca ca.crt [-rtt 50ms] [-rate 1048576]
//
// It prints its address on stdout and serves until killed.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"time"
)

func main() {
	upstream := flag.String("upstream", "", "registry host:port (TLS)")
	caFile := flag.String("ca", "", "CA certificate of the registry")
	rtt := flag.Duration("rtt", 50*time.Millisecond, "delay added to every request")
	rate := flag.Int("rate", 1<<20, "bytes per second per request stream, each direction")
	flag.Parse()
	pem, err := os.ReadFile(*caFile)
	if err != nil {
		log.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	up, _ := url.Parse("https://" + *upstream)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	addr := ln.Addr().String()
	rp := &httputil.ReverseProxy{
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, MaxIdleConnsPerHost: 64},
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(up)
			r.Out.Header.Set("X-Forwarded-Proto", "http")
			r.Out.Header.Set("X-Forwarded-Host", addr)
			if r.Out.Body != nil {
				r.Out.Body = &slow{r: r.Out.Body, rate: *rate}
			}
		},
		ModifyResponse: func(resp *http.Response) error {
			if loc := resp.Header.Get("Location"); loc != "" {
				resp.Header.Set("Location", strings.Replace(loc, "https://"+*upstream, "http://"+addr, 1))
			}
			resp.Body = &slow{r: resp.Body, rate: *rate}
			return nil
		},
	}
	fmt.Println(addr)
	log.Fatal(http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(*rtt)
		rp.ServeHTTP(w, r)
	})))
}

// slow reads at most rate bytes per second.
type slow struct {
	r     io.ReadCloser
	rate  int
	start time.Time
	n     int
}

func (s *slow) Read(p []byte) (int, error) {
	if s.start.IsZero() {
		s.start = time.Now()
	}
	if len(p) > 32<<10 {
		p = p[:32<<10]
	}
	n, err := s.r.Read(p)
	s.n += n
	if due := time.Duration(float64(s.n) / float64(s.rate) * float64(time.Second)); due > time.Since(s.start) {
		time.Sleep(due - time.Since(s.start))
	}
	return n, err
}

func (s *slow) Close() error { return s.r.Close() }
