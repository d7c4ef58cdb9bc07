package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mirrorkv/mirrorkv/api"
	"github.com/mirrorkv/mirrorkv/api/apitest"
	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/store"
	"github.com/mirrorkv/mirrorkv/wire"
)

// storeGroup is the fake group with its writes applied to a real store, whose change log
// the watches read.
type storeGroup struct {
	*apitest.Group
	mu sync.Mutex
	s  *store.Store
}

func (g *storeGroup) Apply(_ context.Context, cmd store.Command) (store.Result, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.s.Apply(g.s.AppliedIndex()+1, store.EncodeCommand(cmd)), nil
}

func (g *storeGroup) put(t *testing.T, key, value string) int64 {
	t.Helper()
	return g.putValue(t, key, []byte(value))
}

func (g *storeGroup) putValue(tb testing.TB, key string, value []byte) int64 {
	res, _ := g.Apply(context.Background(), store.Command{Op: store.OpPut, Key: key, Value: value})
	if res.Err != nil {
		tb.Errorf("put %s: %v", key, res.Err)
	}
	return res.Revision
}

type watchFixture struct {
	url string
	hc  *http.Client
	g   *storeGroup
}

func newWatchFixture(t *testing.T, cfg api.Config, opts store.Options) *watchFixture {
	t.Helper()
	opts.NoFsync = true
	s, err := store.Open(filepath.Join(t.TempDir(), "store.db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	g, url, pki := serveStore(t, s, cfg)
	tr := &http.Transport{TLSClientConfig: pki.ClientTLS(t, "readonly")}
	t.Cleanup(tr.CloseIdleConnections)
	return &watchFixture{url: url, hc: &http.Client{Transport: tr}, g: g}
}

// serveStore serves the API over s on an httptest TLS server.
func serveStore(tb testing.TB, s *store.Store, cfg api.Config) (*storeGroup, string, *apitest.PKI) {
	tb.Helper()
	g := &storeGroup{Group: apitest.NewGroup("m1"), s: s}
	cfg.Node = "m1"
	pki := apitest.NewPKI(tb)
	hs := httptest.NewUnstartedServer(api.New(cfg, g, s, prometheus.NewRegistry(), nil).Handler())
	hs.TLS = pki.ServerTLS()
	hs.StartTLS()
	tb.Cleanup(hs.Close)
	return g, hs.URL, pki
}

// stream is an open watch.
type stream struct {
	resp *http.Response
	sc   *bufio.Scanner
}

func (f *watchFixture) watch(t *testing.T, query string) (*stream, int) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.url+"/v1/watch?"+query, nil)
	resp, err := f.hc.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 8<<20)
	return &stream{resp: resp, sc: sc}, resp.StatusCode
}

func (s *stream) next(t *testing.T) wire.WatchResponse {
	t.Helper()
	if !s.sc.Scan() {
		t.Fatalf("stream ended: %v", s.sc.Err())
	}
	var r wire.WatchResponse
	if err := json.Unmarshal(s.sc.Bytes(), &r); err != nil {
		t.Fatalf("line %q: %v", s.sc.Bytes(), err)
	}
	return r
}

// events reads lines until it has n events, skipping progress lines.
func (s *stream) events(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	for len(out) < n {
		r := s.next(t)
		if r.Canceled != nil {
			t.Fatalf("watch canceled: %+v", r.Canceled)
		}
		for _, e := range r.Events {
			out = append(out, fmt.Sprintf("%d %s %s=%s", e.Revision, e.Type, e.Key, e.Value))
		}
	}
	return out
}

func TestWatch(t *testing.T) {
	f := newWatchFixture(t, api.Config{WatchProgressInterval: 50 * time.Millisecond}, store.Options{})
	f.g.put(t, "a/1", "x")
	f.g.put(t, "b/1", "y")

	t.Run("from a revision", func(t *testing.T) {
		s, code := f.watch(t, "prefix=a/&from=1")
		if code != http.StatusOK || s.resp.Header.Get("Content-Type") != "application/x-ndjson" {
			t.Fatalf("status %d, Content-Type %q", code, s.resp.Header.Get("Content-Type"))
		}
		if first := s.next(t); !first.Created || first.Revision != 0 {
			t.Errorf("first line %+v, want created at revision 0", first)
		}
		f.g.put(t, "a/2", "z")
		f.g.Apply(t.Context(), store.Command{Op: store.OpTxn, Txn: &store.Txn{Then: []store.TxnOp{
			{Op: store.OpPut, Key: "a/3", Value: []byte("t")}, {Op: store.OpDelete, Key: "a/1"}, {Op: store.OpPut, Key: "b/3", Value: []byte("u")},
		}}})
		want := []string{"1 put a/1=x", "3 put a/2=z", "4 delete a/1=", "4 put a/3=t"}
		if got := s.events(t, 4); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("events %q, want %q", got, want)
		}
		p := s.next(t)
		if !p.Progress || p.Revision != 4 {
			t.Errorf("idle line %+v, want progress at revision 4", p)
		}
	})
	t.Run("one key from now", func(t *testing.T) {
		s, _ := f.watch(t, "key=b/1&stale")
		if s.resp.Header.Get(wire.HeaderStale) != "true" {
			t.Error("a stale watch is not marked stale")
		}
		if first := s.next(t); first.Revision != 4 {
			t.Errorf("first line %+v, want revision 4", first)
		}
		f.g.put(t, "b/10", "no")
		f.g.put(t, "b/1", "yes")
		if got := s.events(t, 1); got[0] != "6 put b/1=yes" {
			t.Errorf("events %q", got)
		}
	})
	t.Run("refused", func(t *testing.T) {
		for _, q := range []string{"from=0", "from=x", "prefix=a&key=b", "key=", "from=1&from=2", "nope=1", "key=a//b"} {
			if _, code := f.watch(t, q); code != http.StatusBadRequest {
				t.Errorf("?%s: status %d, want 400", q, code)
			}
		}
	})
}

func TestWatch_Compacted(t *testing.T) {
	f := newWatchFixture(t, api.Config{}, store.Options{ChangeRetention: 2})
	for i := range 5 {
		f.g.put(t, "k", fmt.Sprint(i))
	}
	s, code := f.watch(t, "from=2")
	if code != http.StatusGone {
		t.Fatalf("status %d, want 410", code)
	}
	var we wire.Error
	_ = json.NewDecoder(s.resp.Body).Decode(&we)
	if we.Reason.Code != int(reason.WatchCompacted) || s.resp.Header.Get(wire.HeaderOldestRevision) != "4" {
		t.Errorf("reason %d, oldest %q; want 410 and 4", we.Reason.Code, s.resp.Header.Get(wire.HeaderOldestRevision))
	}
	s, code = f.watch(t, "from=4")
	if code != http.StatusOK {
		t.Fatalf("from the oldest: status %d", code)
	}
	s.next(t)
	if got := s.events(t, 2); got[0] != "4 put k=3" {
		t.Errorf("events from the oldest %q", got)
	}
}

func TestWatch_TooMany(t *testing.T) {
	f := newWatchFixture(t, api.Config{MaxWatchers: 1}, store.Options{})
	s, _ := f.watch(t, "")
	s.next(t)
	s2, code := f.watch(t, "")
	if code != http.StatusTooManyRequests {
		t.Fatalf("second watch: status %d, want 429", code)
	}
	var we wire.Error
	_ = json.NewDecoder(s2.resp.Body).Decode(&we)
	if we.Reason.Code != int(reason.WatchTooMany) {
		t.Errorf("reason %d, want %d", we.Reason.Code, reason.WatchTooMany)
	}
}

// TestWatch_Slow stops reading a watch while writes go on: the writes never wait, and the
// watch ends with a last line carrying reason watch-slow after the events it had, with no
// gap.
func TestWatch_Slow(t *testing.T) {
	f := newWatchFixture(t, api.Config{WatchBuffer: 4 << 10, WatchSlowTimeout: 200 * time.Millisecond}, store.Options{})
	s, _ := f.watch(t, "prefix=k")
	s.next(t)
	value := strings.Repeat("v", 64<<10)
	start := time.Now()
	var last int64
	for i := range 300 { // far more than the socket buffers and the watch buffer hold
		last = f.g.put(t, fmt.Sprintf("k%d", i), value)
	}
	t.Logf("300 writes of 64 KiB in %v with a watcher that does not read", time.Since(start))
	time.Sleep(500 * time.Millisecond) // past the slow timeout
	want := int64(1)
	for {
		r := s.next(t)
		for _, e := range r.Events {
			if e.Revision != want {
				t.Fatalf("event at revision %d, want %d", e.Revision, want)
			}
			want++
		}
		if r.Canceled != nil {
			if r.Canceled.Reason.Code != int(reason.WatchSlow) || r.Revision != want-1 {
				t.Fatalf("last line %+v, want reason %d at revision %d", r, reason.WatchSlow, want-1)
			}
			if r.Revision >= last {
				t.Fatalf("cut at revision %d, after the last write %d: the watcher was not behind", r.Revision, last)
			}
			return
		}
	}
}

// TestWatch_Progress checks that an idle watch gets progress lines, also on a store that
// never took a write, and that a linearizable watch gets none while the member cannot
// confirm with the primary, where a stale one does.
func TestWatch_Progress(t *testing.T) {
	f := newWatchFixture(t, api.Config{WatchProgressInterval: 20 * time.Millisecond}, store.Options{})
	lin, _ := f.watch(t, "prefix=p/")
	stale, _ := f.watch(t, "prefix=p/&stale=true")
	for _, s := range []*stream{lin, stale} {
		s.next(t) // created
		if p := s.next(t); !p.Progress || p.Revision != 0 {
			t.Fatalf("idle line %+v, want progress at revision 0", p)
		}
	}
	f.g.Fail(errors.New("no primary"))
	if p := stale.next(t); !p.Progress {
		t.Errorf("stale watch without a primary: %+v, want progress", p)
	}
	got := make(chan wire.WatchResponse, 100)
	go func() {
		for lin.sc.Scan() {
			var r wire.WatchResponse
			if json.Unmarshal(lin.sc.Bytes(), &r) == nil && r.Progress {
				got <- r
			}
		}
	}()
	// Lines already in flight before the failure may still arrive; none after a while.
	time.Sleep(100 * time.Millisecond)
	for len(got) > 0 {
		<-got
	}
	select {
	case r := <-got:
		t.Errorf("linearizable watch without a primary sent %+v", r)
	case <-time.After(300 * time.Millisecond):
	}
	f.g.Fail(nil)
}

// TestWatch_StopWatches ends a watch with reason shutdown and the revision to resume from.
func TestWatch_StopWatches(t *testing.T) {
	s, err := store.Open(filepath.Join(t.TempDir(), "store.db"), store.Options{NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	g := &storeGroup{Group: apitest.NewGroup("m1"), s: s}
	a := api.New(api.Config{Node: "m1"}, g, s, prometheus.NewRegistry(), nil)
	pki := apitest.NewPKI(t)
	hs := httptest.NewUnstartedServer(a.Handler())
	hs.TLS = pki.ServerTLS()
	hs.StartTLS()
	t.Cleanup(hs.Close)
	tr := &http.Transport{TLSClientConfig: pki.ClientTLS(t, "readonly")}
	t.Cleanup(tr.CloseIdleConnections)
	f := &watchFixture{url: hs.URL, hc: &http.Client{Transport: tr}, g: g}
	g.put(t, "k", "v")
	st, _ := f.watch(t, "from=1")
	st.next(t)
	st.events(t, 1)
	a.StopWatches()
	last := st.next(t)
	if last.Canceled == nil || last.Canceled.Reason.Code != int(reason.Shutdown) || last.Revision != 1 {
		t.Fatalf("last line %+v, want reason %d at revision 1", last, reason.Shutdown)
	}
	if _, code := f.watch(t, ""); code != http.StatusOK {
		t.Fatalf("a watch after StopWatches: %d", code)
	}
}
