package api_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mirrorkv/mirrorkv/api"
	"github.com/mirrorkv/mirrorkv/api/apitest"
	"github.com/mirrorkv/mirrorkv/store"
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
	f.Add("POST", "/v1/txn", "Content-Type", "application/json", []byte(`{"compare":[{"key":"a","target":"revision","op":"<","revision":3},{"key":"b","target":"absent"}],"then":[{"op":"put","key":"a","value":"1"}],"else":[{"op":"delete","key":"b"}]}`))
	f.Add("POST", "/v1/txn", "Content-Length", "1", []byte(`{"then":[{"op":"put","key":"k"},{"op":"put","key":"k"}]}`))
	f.Add("POST", "/v1/leases", "Content-Type", "application/json", []byte(`{"ttl":5}`))
	f.Add("POST", "/v1/leases/1/keepalive", "", "", []byte{})
	f.Add("PUT", "/v1/kv/a?lease=1", "", "", []byte("v"))
	f.Add("DELETE", "/v1/leases/01", "", "", []byte{})
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

// blockingWriter is a ResponseWriter whose first Write waits until release is closed: a
// client that reads slowly, holding its read's bytes on the member meanwhile.
type blockingWriter struct {
	*httptest.ResponseRecorder
	writing chan struct{}
	release chan struct{}
}

func (w *blockingWriter) Write(b []byte) (int, error) {
	select {
	case <-w.writing:
	default:
		close(w.writing)
	}
	<-w.release
	return w.ResponseRecorder.Write(b)
}

// TestBusy fills a member's read gate with one slow reader of a large value: every further
// large read waits ReadWait and gets 503 with reason Busy and Retry-After: 1, small reads
// still pass, and once the slow reader is done the large reads pass again.
func TestBusy(t *testing.T) {
	g := apitest.NewGroup("m1")
	cfg := api.Config{Node: "m1", MaxReadBytesInFlight: 100 << 10, ReadWait: 10 * time.Millisecond}
	h := api.New(cfg, g, g, prometheus.NewRegistry(), nil).Handler()
	ca := apitest.NewPKI(t)
	leaves := map[string]*x509.Certificate{"GET": ca.Leaf(t, "reader", "readonly"), "PUT": ca.Leaf(t, "writer", "readwrite")}
	serve := func(w http.ResponseWriter, method, target, body string) {
		req := httptest.NewRequest(method, target, strings.NewReader(body))
		req.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaves[method]}}
		h.ServeHTTP(w, req)
	}
	serve(httptest.NewRecorder(), "PUT", "/v1/kv/big", strings.Repeat("b", 80<<10))
	serve(httptest.NewRecorder(), "PUT", "/v1/kv/small", "s")

	slow := &blockingWriter{ResponseRecorder: httptest.NewRecorder(), writing: make(chan struct{}), release: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		serve(slow, "GET", "/v1/kv/big?stale=true", "")
	}()
	<-slow.writing // the slow reader holds 80 KiB of the 100 KiB

	for _, target := range []string{"/v1/kv/big?stale=true", "/v1/kv/?stale=true", "/v1/kv/?prefix=b&limit=1&stale=true"} {
		rec := httptest.NewRecorder()
		serve(rec, "GET", target, "")
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "1" || !strings.Contains(rec.Body.String(), `"code":212`) {
			t.Errorf("GET %s with the gate full: %d Retry-After %q %s; want 503, Retry-After 1, reason 212",
				target, rec.Code, rec.Header().Get("Retry-After"), rec.Body)
		}
	}
	rec := httptest.NewRecorder()
	serve(rec, "GET", "/v1/kv/small?stale=true", "")
	if rec.Code != http.StatusOK {
		t.Errorf("a small value with the gate full: %d %s, want 200", rec.Code, rec.Body)
	}

	close(slow.release)
	<-done
	if slow.Code != http.StatusOK || slow.Body.Len() != 80<<10 {
		t.Fatalf("the slow reader got %d with %d bytes", slow.Code, slow.Body.Len())
	}
	for _, target := range []string{"/v1/kv/big?stale=true", "/v1/kv/?stale=true"} {
		rec := httptest.NewRecorder()
		serve(rec, "GET", target, "")
		if rec.Code != http.StatusOK {
			t.Errorf("GET %s once the gate is free: %d %s, want 200", target, rec.Code, rec.Body)
		}
	}
}

func BenchmarkList(b *testing.B) {
	h, g, leaf := direct(b)
	for i := range 100 {
		if _, err := g.Apply(b.Context(), store.Command{Op: store.OpPut, Key: fmt.Sprintf("bench/%03d", i), Value: bytes.Repeat([]byte("v"), 256)}); err != nil {
			b.Fatal(err)
		}
	}
	req := httptest.NewRequest("GET", "/v1/kv/?prefix=bench/&limit=100&stale=true", nil)
	req.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}
	w := &discard{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, req)
	}
}

// TestBusy_SmallListing: a listing with a small ?limit takes only what limit+1 values of the
// largest size need, so it passes where a full listing would not fit.
func TestBusy_SmallListing(t *testing.T) {
	g := apitest.NewGroup("m1")
	cfg := api.Config{Node: "m1", MaxReadBytesInFlight: 3584 << 10, ReadWait: 10 * time.Millisecond}
	h := api.New(cfg, g, g, prometheus.NewRegistry(), nil).Handler()
	ca := apitest.NewPKI(t)
	leaves := map[string]*x509.Certificate{"GET": ca.Leaf(t, "reader", "readonly"), "PUT": ca.Leaf(t, "writer", "readwrite")}
	serve := func(w http.ResponseWriter, method, target, body string) {
		req := httptest.NewRequest(method, target, strings.NewReader(body))
		req.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaves[method]}}
		h.ServeHTTP(w, req)
	}
	serve(httptest.NewRecorder(), "PUT", "/v1/kv/big", strings.Repeat("b", 1<<20))
	slow := &blockingWriter{ResponseRecorder: httptest.NewRecorder(), writing: make(chan struct{}), release: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		serve(slow, "GET", "/v1/kv/big?stale=true", "")
	}()
	<-slow.writing // 1 MiB of the 3.5 MiB held: 2.5 MiB free
	defer func() { close(slow.release); <-done }()

	for _, tc := range []struct {
		target string
		want   int
	}{
		{"/v1/kv/?stale=true", http.StatusServiceUnavailable},         // needs all 3.5 MiB
		{"/v1/kv/?limit=1&stale=true", http.StatusOK},                 // needs 2 keys of 1 KiB + 1 MiB
		{"/v1/kv/?limit=2&stale=true", http.StatusServiceUnavailable}, // needs 3 of them
	} {
		rec := httptest.NewRecorder()
		serve(rec, "GET", tc.target, "")
		if rec.Code != tc.want {
			t.Errorf("GET %s with 2.5 MiB free: %d %s, want %d", tc.target, rec.Code, rec.Body, tc.want)
		}
	}
}
