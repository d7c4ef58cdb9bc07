package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/client"
	"github.com/mirrorkv/mirrorkv/internal/history"
	"github.com/mirrorkv/mirrorkv/internal/localgroup"
	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/wire"
)

// watchServe makes idle watches send progress often, so that a watcher served by a member
// cut off from the primary (no confirmed progress) resumes elsewhere within seconds.
var watchServe = append([]string{"--watch-progress-interval", "300ms"}, faultServe...)

// watchIdle is the watchers' idle timeout: well above the progress interval.
const watchIdle = 3 * time.Second

// watched is what one watcher saw.
type watched struct {
	name string
	mu   sync.Mutex
	evs  []wire.WatchEvent
	at   int64 // the revision the watch has reached
	err  error
}

func (w *watched) reached() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.at
}

// startWatcher follows prefix from revision from with c until ctx ends.
func startWatcher(ctx context.Context, wg *sync.WaitGroup, name string, c *client.Client, prefix string, from int64, opts ...client.WatchOption) *watched {
	w := &watched{name: name}
	opts = append([]client.WatchOption{client.From(from), client.WatchIdleTimeout(watchIdle)}, opts...)
	wg.Go(func() {
		for resp, err := range c.Watch(ctx, prefix, opts...) {
			w.mu.Lock()
			if err != nil {
				w.err = err
			} else {
				w.evs = append(w.evs, resp.Events...)
				w.at = resp.Revision
			}
			w.mu.Unlock()
		}
	})
	return w
}

// TestWatch_Faults runs the fault harness's writers and checker with watchers of the round's
// keys while the primary is killed with SIGKILL and restarted, then cut off from the others
// and healed. Each watcher (two linearizable, one stale, over members in different orders)
// must see every committed change of the prefix exactly once, in revision order: the same
// sequence for all, every acknowledged write in it, nothing that was not written, writes
// to a key in the order the history's real time fixes, and each key's last change equal
// to the value the checker read last.
func TestWatch_Faults(t *testing.T) {
	h := startHarness(t, harnessOptions{failover: 3, serveArgs: watchServe})
	const prefix = "r0/"
	start, err := h.clients[0].List(t.Context(), prefix, "", 0)
	if err != nil {
		t.Fatalf("list before the round: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var wg sync.WaitGroup
	watchers := []*watched{
		startWatcher(ctx, &wg, "linearizable via "+h.g.Members[0].Name, h.clients[0], prefix, start.Revision+1),
		startWatcher(ctx, &wg, "linearizable via "+h.g.Members[1].Name, h.clients[1], prefix, start.Revision+1),
		startWatcher(ctx, &wg, "stale via "+h.g.Members[2].Name, h.clients[2], prefix, start.Revision+1, client.StaleWatch()),
	}

	roundStart := time.Now()
	w := h.startWorkload(0)
	time.Sleep(time.Second)
	old := h.primary()
	t.Logf("kill -9 the primary %s", old.Name)
	if err := old.Kill(); err != nil {
		t.Fatal(err)
	}
	next := h.newPrimary(old, 30*time.Second)
	hold(2 * time.Second)
	if err := h.g.Restart(old); err != nil {
		t.Fatal(err)
	}
	hold(time.Second)
	t.Logf("cut the primary %s off from the others", next.Name)
	if err := h.net.Isolate(next.Name); err != nil {
		t.Fatal(err)
	}
	h.newPrimary(next, 30*time.Second)
	hold(2 * time.Second)
	h.settle()
	time.Sleep(time.Second)
	w.finish()
	w.check(t.Name(), 0, roundStart)
	if t.Failed() {
		return
	}

	end, err := h.clients[0].List(t.Context(), prefix, "", 0)
	if err != nil {
		t.Fatalf("list after the round: %v", err)
	}
	eventually(t, 60*time.Second, "every watcher reaches the last revision", func() error {
		for _, wt := range watchers {
			if at := wt.reached(); at < end.Revision {
				return fmt.Errorf("%s is at revision %d of %d (error %v)", wt.name, at, end.Revision, wt.err)
			}
		}
		return nil
	})
	cancel()
	wg.Wait()
	ops := w.rec.Ops()
	finals := make(map[string]string)
	for _, kv := range end.KVs {
		finals[kv.Key] = string(kv.Value)
	}
	for _, wt := range watchers {
		if wt.err != nil {
			t.Errorf("%s ended with %v", wt.name, wt.err)
		}
		checkWatched(t, wt, ops, finals)
		if !slices.EqualFunc(wt.evs, watchers[0].evs, func(a, b wire.WatchEvent) bool {
			return a.Revision == b.Revision && a.Key == b.Key && string(a.Value) == string(b.Value)
		}) {
			t.Errorf("%s saw %d events, %s %d, and they differ", wt.name, len(wt.evs), watchers[0].name, len(watchers[0].evs))
		}
	}
	t.Logf("each watcher saw %d changes of %s, revisions %d to %d", len(watchers[0].evs), prefix, start.Revision+1, end.Revision)
}

// checkWatched compares the events of one watcher with the history of the writes.
func checkWatched(t *testing.T, wt *watched, ops []history.Op, finals map[string]string) {
	t.Helper()
	type write struct {
		op  history.Op
		rev int64 // 0: not seen
	}
	writes := make(map[string]*write) // key and value -> the write; values are unique
	for _, op := range ops {
		if (op.Kind == history.Put || op.Kind == history.CAS) && (op.Out.OK || op.Out.Unknown) {
			writes[op.Key+"\x00"+op.Value] = &write{op: op}
		}
	}
	var lastRev int64
	lastOfKey := make(map[string]wire.WatchEvent)
	for _, e := range wt.evs {
		switch {
		case e.Revision < lastRev:
			t.Fatalf("%s: %s at revision %d after revision %d: out of order", wt.name, e.Key, e.Revision, lastRev)
		case e.Type != wire.EventPut:
			t.Fatalf("%s: a %s of %s at %d; the workload only puts", wt.name, e.Type, e.Key, e.Revision)
		}
		if prev, ok := lastOfKey[e.Key]; ok && prev.Revision >= e.Revision {
			t.Fatalf("%s: %s at revision %d, again after %d: a duplicate", wt.name, e.Key, e.Revision, prev.Revision)
		}
		lastRev, lastOfKey[e.Key] = e.Revision, e
		wr, ok := writes[e.Key+"\x00"+string(e.Value)]
		switch {
		case !ok:
			t.Fatalf("%s: %s=%q at %d was never written (or was refused)", wt.name, e.Key, e.Value, e.Revision)
		case wr.rev != 0:
			t.Fatalf("%s: %s=%q at %d and again at %d", wt.name, e.Key, e.Value, wr.rev, e.Revision)
		}
		wr.rev = e.Revision
	}
	byKey := make(map[string][]*write)
	for _, wr := range writes {
		if wr.op.Out.OK && wr.rev == 0 {
			t.Errorf("%s: the acknowledged write %s=%q never came", wt.name, wr.op.Key, wr.op.Value)
		}
		if wr.rev != 0 {
			byKey[wr.op.Key] = append(byKey[wr.op.Key], wr)
		}
	}
	for key, ws := range byKey {
		for _, a := range ws {
			for _, b := range ws {
				if a.op.Out.OK && a.op.Return < b.op.Call && a.rev >= b.rev {
					t.Errorf("%s: %s=%q (revision %d) returned before %s=%q (revision %d) was called", wt.name, key, a.op.Value, a.rev, key, b.op.Value, b.rev)
				}
			}
		}
	}
	for key, v := range finals {
		if e := lastOfKey[key]; string(e.Value) != v {
			t.Errorf("%s: the last change of %s is %q, the key holds %q", wt.name, key, e.Value, v)
		}
	}
}

// rawWatch opens GET /v1/watch on one member.
func rawWatch(t *testing.T, h *harness, m *localgroup.Member, query string) (*http.Response, *bufio.Scanner) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, m.ClientURL+"/v1/watch?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: h.raw.Transport} // no overall timeout: a stream
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 16<<20)
	return resp, sc
}

func nextLine(t *testing.T, sc *bufio.Scanner) wire.WatchResponse {
	t.Helper()
	if !sc.Scan() {
		t.Fatalf("the watch ended: %v", sc.Err())
	}
	var r wire.WatchResponse
	if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
		t.Fatalf("line %q: %v", sc.Bytes(), err)
	}
	return r
}

// TestWatch_Limits runs on real members: a watcher that reconnects resumes from the
// revision after the last it saw with nothing missed or repeated; a from older than the
// history kept is refused with reason 410 and the oldest revision; a watcher that stops
// reading is cut off with reason 412 while writers go on at full speed.
func TestWatch_Limits(t *testing.T) {
	args := append([]string{"--watch-history", "200", "--watch-buffer", "65536", "--watch-slow-timeout", "1s"}, fastServe...)
	h := startHarness(t, harnessOptions{failover: 3, serveArgs: args})
	m := h.g.Members[1]
	c := h.clients[0]
	put := func(key string, value []byte) int64 {
		rev, err := c.Put(t.Context(), key, value)
		if err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
		return rev
	}
	first := put("res/0", []byte("0"))
	for i := 1; i < 20; i++ {
		put("res/"+strconv.Itoa(i), []byte(strconv.Itoa(i)))
	}

	t.Run("resume after reconnecting", func(t *testing.T) {
		_, sc := rawWatch(t, h, m, fmt.Sprintf("prefix=res/&from=%d", first))
		nextLine(t, sc) // created
		var seen []string
		var at int64
		for len(seen) < 10 {
			r := nextLine(t, sc)
			for _, e := range r.Events {
				seen = append(seen, e.Key)
			}
			at = r.Revision
			if len(seen) >= 10 {
				break
			}
		}
		// Reconnect, to another member, from the revision after the last line.
		_, sc = rawWatch(t, h, h.g.Members[2], fmt.Sprintf("prefix=res/&from=%d", at+1))
		nextLine(t, sc)
		for len(seen) < 20 {
			for _, e := range nextLine(t, sc).Events {
				seen = append(seen, e.Key)
			}
		}
		for i, k := range seen {
			if k != "res/"+strconv.Itoa(i) {
				t.Fatalf("after the reconnect the keys seen are %q", seen)
			}
		}
	})

	t.Run("too old", func(t *testing.T) {
		for i := range 250 {
			put("old/"+strconv.Itoa(i%10), []byte("x"))
		}
		resp, _ := rawWatch(t, h, m, "prefix=res/&from=1")
		var we wire.Error
		_ = json.NewDecoder(resp.Body).Decode(&we)
		oldest, _ := strconv.ParseInt(resp.Header.Get(wire.HeaderOldestRevision), 10, 64)
		if resp.StatusCode != http.StatusGone || we.Reason.Code != int(reason.WatchCompacted) || oldest <= 1 {
			t.Fatalf("watch from 1: %d, reason %d, oldest %d; want 410, reason 410 and the oldest revision", resp.StatusCode, we.Reason.Code, oldest)
		}
		for _, err := range c.Watch(t.Context(), "res/", client.From(1)) {
			if ce, ok := errors.AsType[*client.CompactedError](err); !ok || ce.Oldest <= 1 {
				t.Fatalf("Go client from 1: %v, want a CompactedError", err)
			}
			break
		}
		// The fix the error names: list, then watch from the listing's revision + 1.
		l, err := c.List(t.Context(), "res/", "", 0)
		if err != nil {
			t.Fatal(err)
		}
		resp, sc := rawWatch(t, h, m, fmt.Sprintf("prefix=res/&from=%d", l.Revision+1))
		if resp.StatusCode != http.StatusOK || nextLine(t, sc).Revision != l.Revision {
			t.Fatalf("watch from the listing's revision + 1: %d", resp.StatusCode)
		}
	})

	t.Run("slow watcher cut while writes go on", func(t *testing.T) {
		resp, sc := rawWatch(t, h, m, "prefix=slow/")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("watch: %d", resp.StatusCode)
		}
		from := nextLine(t, sc).Revision + 1
		// Eight writers at full speed while the watcher reads nothing, until the member
		// reports the watcher cut off (how much the sockets hold first depends on the host).
		value := []byte(strings.Repeat("s", 32<<10))
		var writes, failed atomic.Int64
		var slowest atomic.Int64
		done := make(chan struct{})
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				for n := 0; ; n++ {
					select {
					case <-done:
						return
					default:
					}
					began := time.Now()
					if _, err := c.Put(t.Context(), fmt.Sprintf("slow/%d/%d", i, n), value); err != nil {
						failed.Add(1)
						continue
					}
					writes.Add(1)
					if d := int64(time.Since(began)); d > slowest.Load() {
						slowest.Store(d)
					}
				}
			})
		}
		began := time.Now()
		eventually(t, 2*time.Minute, "the member cuts the watcher off", func() error {
			if n := watchesCut(t, h, m, "watch-slow"); n < 1 {
				return fmt.Errorf("%d watches cut as slow", n)
			}
			return nil
		})
		close(done)
		wg.Wait()
		t.Logf("%d writes of 32 KiB in %v (%d failed), the slowest %v, with a watcher that reads nothing", writes.Load(), time.Since(began).Round(time.Millisecond), failed.Load(), time.Duration(slowest.Load()))
		if failed.Load() > 0 {
			t.Errorf("%d writes failed while a watcher was stuck", failed.Load())
		}
		stuck := time.AfterFunc(time.Minute, func() { resp.Body.Close() }) // fail, not hang
		defer stuck.Stop()
		want := from
		for {
			r := nextLine(t, sc)
			for _, e := range r.Events {
				if e.Revision < want {
					t.Fatalf("event at %d after %d", e.Revision, want)
				}
				want = e.Revision + 1
			}
			if r.Canceled != nil {
				if r.Canceled.Reason.Code != int(reason.WatchSlow) {
					t.Fatalf("the watch ended with %+v, want reason %d", r.Canceled, reason.WatchSlow)
				}
				t.Logf("cut off at revision %d with %q; resume from %d", r.Revision, r.Canceled.Error, r.Revision+1)
				return
			}
		}
	})
}

// watchesCut reads from m's metrics how many watches it ended with reason name.
func watchesCut(t *testing.T, h *harness, m *localgroup.Member, name string) int {
	t.Helper()
	resp, err := h.raw.Get(m.ClientURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	prefix := `mirrorkv_watches_cut_total{reason="` + name + `"} `
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return int(n)
		}
	}
	return 0
}
