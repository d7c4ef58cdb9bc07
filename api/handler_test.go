package api_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mirrorkv/mirrorkv/api"
	"github.com/mirrorkv/mirrorkv/api/apitest"
)

// direct builds the API over a fake group for calls that bypass the network.
func direct(tb testing.TB) (http.Handler, *apitest.Group, *x509.Certificate) {
	tb.Helper()
	g := apitest.NewGroup("m1")
	a := api.New(api.Config{Node: "m1", MaxValueBytes: 1 << 10}, g, g, prometheus.NewRegistry(), nil)
	return a.Handler(), g, apitest.NewPKI(tb).Leaf(tb, "admin", "admin")
}

func TestNoClientCertificate(t *testing.T) {
	h, _, _ := direct(t)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/status", nil))
	if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), `"code":109`) {
		t.Fatalf("without a certificate: %d %s, want 401 with reason 109", rec.Code, rec.Body)
	}
}

func FuzzHandler(f *testing.F) {
	f.Add("PUT", "/v1/kv/a", "If-Match", `"1"`, []byte("v"))
	f.Add("GET", "/v1/kv/a?stale=1", "If-None-Match", "*", []byte{})
	f.Add("DELETE", "/v1/kv/a/b", "", "", []byte{})
	f.Add("GET", "/v1/kv/?prefix=a&limit=3&start=b", "", "", []byte{})
	f.Add("POST", "/v1/members", "Content-Type", "application/json", []byte(`{"name":"m2","memberAddr":"h:1","dn":"CN=m2"}`))
	f.Add("POST", "/v1/members/m1/transfer", "", "", []byte{})
	f.Add("PATCH", "/v1/kv/%2e%2e", "If-Match", "W/x", bytes.Repeat([]byte("x"), 2000))
	f.Add("GET", "/healthz", "", "", []byte{})
	h, _, leaf := direct(f)
	f.Fuzz(func(t *testing.T, method, target, hk, hv string, body []byte) {
		req, err := http.NewRequest(method, "https://m1"+target, bytes.NewReader(body))
		if err != nil || !strings.HasPrefix(req.URL.Path, "/") || req.URL.Host != "m1" {
			return // not a request a server would parse
		}
		if hk != "" && !strings.ContainsAny(hk, "\r\n:") && !strings.ContainsAny(hv, "\r\n") {
			req.Header.Set(hk, hv)
		}
		req.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s (%s: %s): %d %s", method, target, hk, hv, rec.Code, rec.Body)
		}
		if rec.Code >= 400 && rec.Code != http.StatusMovedPermanently && !strings.Contains(rec.Body.String(), `"error"`) {
			t.Fatalf("%s %s: %d without a wire.Error body: %q", method, target, rec.Code, rec.Body)
		}
	})
}

// discard is a ResponseWriter that keeps nothing, so the benchmarks measure the handler.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

func BenchmarkPut(b *testing.B) {
	h, _, leaf := direct(b)
	value := bytes.Repeat([]byte("v"), 256)
	body := bytes.NewReader(value)
	req := httptest.NewRequest("PUT", "/v1/kv/bench/key", nil)
	req.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}
	req.ContentLength = int64(len(value))
	w := &discard{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		body.Reset(value)
		req.Body = io.NopCloser(body)
		clear(w.h)
		h.ServeHTTP(w, req)
	}
}

func BenchmarkGet(b *testing.B) {
	h, g, leaf := direct(b)
	req := httptest.NewRequest("PUT", "/v1/kv/bench/key", strings.NewReader(strings.Repeat("v", 256)))
	req.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}
	h.ServeHTTP(httptest.NewRecorder(), req)
	if _, err := g.Get("bench/key"); err != nil {
		b.Fatal(err)
	}
	req = httptest.NewRequest("GET", "/v1/kv/bench/key", nil)
	req.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}
	w := &discard{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, req)
	}
}

// TestPut_ClaimedLength sends a body that declares nearly the value limit and carries three
// bytes: the member must not allocate what was only claimed.
func TestPut_ClaimedLength(t *testing.T) {
	const limit = 16 << 20
	g := apitest.NewGroup("m1")
	h := api.New(api.Config{Node: "m1", MaxValueBytes: limit}, g, g, prometheus.NewRegistry(), nil).Handler()
	leaf := apitest.NewPKI(t).Leaf(t, "admin", "admin")
	put := func() {
		req := httptest.NewRequest("PUT", "/v1/kv/claimed", strings.NewReader("abc"))
		req.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}
		req.ContentLength = limit - 1
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusBadRequest {
			t.Fatalf("a body shorter than its Content-Length: %d %s, want 400", rec.Code, rec.Body)
		}
	}
	put() // warm the pools
	best := ^uint64(0)
	for range 5 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		put()
		runtime.ReadMemStats(&after)
		best = min(best, after.TotalAlloc-before.TotalAlloc)
	}
	if best > 1<<20 {
		t.Errorf("a PUT claiming %d bytes and sending 3 allocated %d bytes; want under 1 MiB", limit-1, best)
	}
}
