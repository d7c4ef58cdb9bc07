package api_test

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/api"
	"github.com/mirrorkv/mirrorkv/wire"
)

// TestList_MaxBytes: a listing stops at MaxListBytes of keys and values, with more and a
// next that continues it, and holds at least one key however large.
func TestList_MaxBytes(t *testing.T) {
	f := newFixture(t, api.Config{MaxListBytes: 250})
	v := strings.Repeat("v", 97) // 3-byte keys: 100 bytes a key
	for _, k := range []string{"p/a", "p/b", "p/c", "p/d", "q/a"} {
		f.want(t, f.do(t, "readwrite", "PUT", "/v1/kv/"+k, v), http.StatusOK)
	}
	f.want(t, f.do(t, "readwrite", "PUT", "/v1/kv/p/e", strings.Repeat("x", 1000)), http.StatusOK)
	list := func(query string) wire.List {
		t.Helper()
		r := f.do(t, "readonly", "GET", "/v1/kv/?"+query, "")
		f.want(t, r, http.StatusOK)
		var l wire.List
		if err := json.Unmarshal(r.body, &l); err != nil {
			t.Fatalf("list body %s: %v", r.body, err)
		}
		return l
	}
	keys := func(l wire.List) string {
		var ks []string
		for _, kv := range l.KVs {
			ks = append(ks, kv.Key)
		}
		return strings.Join(ks, " ")
	}
	l := list("prefix=p/&limit=10000&stale=true")
	if keys(l) != "p/a p/b" || !l.More || l.Next == "" {
		t.Fatalf("first page %q more %v next %q: want p/a p/b, more, a next", keys(l), l.More, l.Next)
	}
	var all []string
	for start, pages := "", 0; ; pages++ {
		l := list("prefix=p/&start=" + url.QueryEscape(start))
		if len(l.KVs) == 0 {
			t.Fatalf("page %d after %q is empty", pages, start)
		}
		all = append(all, keys(l))
		if !l.More {
			break
		}
		start = l.Next
	}
	if got := strings.Join(all, " | "); got != "p/a p/b | p/c p/d | p/e" {
		t.Errorf("pages %q, want p/a p/b | p/c p/d | p/e (p/e alone: larger than the bound)", got)
	}
	// The limit still cuts first when it is the smaller bound, with the next key as next.
	if l := list("prefix=p/&limit=1"); keys(l) != "p/a" || !l.More || l.Next != "p/b" {
		t.Errorf("limit 1: %q more %v next %q, want p/a, more, next p/b", keys(l), l.More, l.Next)
	}
}

// TestLargeReadTimeout: a client that asks for a listing and never reads it holds the
// listing's bytes only until LargeReadTimeout, after which other large reads pass again.
func TestLargeReadTimeout(t *testing.T) {
	const values = 8 // 8 MiB of values, 11 MiB of JSON: more than the sockets buffer
	f := newFixture(t, api.Config{MaxListBytes: values << 20, MaxReadBytesInFlight: values << 20,
		ReadWait: 10 * time.Millisecond, LargeReadTimeout: 500 * time.Millisecond})
	for i := range values {
		f.want(t, f.do(t, "readwrite", "PUT", fmt.Sprintf("/v1/kv/big/%d", i), strings.Repeat("v", 1<<20)), http.StatusOK)
	}
	conn, err := tls.Dial("tcp", strings.TrimPrefix(f.srv.URL, "https://"), f.srv.PKI.ClientTLS(t, "readonly"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /v1/kv/?prefix=big/&stale=true HTTP/1.1\r\nHost: m1\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// The stuck reader holds the whole budget: other listings are refused.
	sawBusy := false
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := f.do(t, "readonly", "GET", "/v1/kv/?prefix=big/&limit=1&stale=true", "")
		switch {
		case r.status == http.StatusServiceUnavailable:
			sawBusy = true
		case r.status == http.StatusOK && sawBusy:
			return // the stuck reader was cut off and let go of its bytes
		case r.status != http.StatusOK:
			t.Fatalf("listing: %d %s", r.status, r.body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s: busy seen %v, and the stuck reader still holds the budget", sawBusy)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
