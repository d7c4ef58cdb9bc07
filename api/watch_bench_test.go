package api_test

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/api"
	"github.com/mirrorkv/mirrorkv/client"
	"github.com/mirrorkv/mirrorkv/store"
)

// BenchmarkWatchFanout measures how long a change takes to reach every watcher of its prefix:
// 1, 100 and 1000 watchers (Go clients over mutual TLS, one connection each) on one prefix
// while 64 writers put 256-byte values as fast as the store applies them. The writers apply
// straight to a write-behind store, as a member's raft loop would, so the figures are the
// watch path's own: change log, wake-up, encoding, TLS and the client, not raft. Delivery
// latency is the time from the return of a write's apply to a watcher's receipt of it, over
// every (write, watcher) pair. Run it with a fixed count: -benchtime=2000x.
func BenchmarkWatchFanout(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("watchers=%d", n), func(b *testing.B) { benchWatchFanout(b, n) })
	}
}

func benchWatchFanout(b *testing.B, watchers int) {
	s, err := store.Open(filepath.Join(b.TempDir(), "store.db"), store.Options{NoFsync: true, FlushInterval: 100 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	g, url, pki := serveStore(b, s, api.Config{MaxWatchers: watchers + 1, WatchBuffer: 4 << 20})
	c, err := client.New(client.Config{Endpoints: []string{url}, TLS: pki.ClientTLS(b, "readonly")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type receipt struct{ rev, at int64 }
	got := make([][]receipt, watchers)
	reached := make([]atomic.Int64, watchers)
	var ready, done sync.WaitGroup
	for i := range watchers {
		ready.Add(1)
		done.Go(func() {
			first := true
			for resp, err := range c.Watch(ctx, "fan/", client.From(s.Revision()+1), client.WatchIdleTimeout(time.Minute)) {
				if err != nil {
					return
				}
				now := time.Now().UnixNano()
				for _, e := range resp.Events {
					got[i] = append(got[i], receipt{e.Revision, now})
				}
				reached[i].Store(resp.Revision)
				if first {
					first = false
					ready.Done()
				}
			}
		})
	}
	// A first write tells every watcher is connected once each has seen it.
	g.putValue(b, "fan/start", make([]byte, 256))
	ready.Wait()
	base := s.Revision()
	applied := make([]atomic.Int64, b.N+1) // by revision - base: when its apply returned

	b.ReportAllocs()
	b.ResetTimer()
	b.SetParallelism((64 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	var seq atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rev := g.putValue(b, fmt.Sprintf("fan/%d", seq.Add(1)%1000), make([]byte, 256))
			if i := rev - base; i >= 0 && i < int64(len(applied)) {
				applied[i].Store(time.Now().UnixNano())
			}
		}
	})
	last := s.Revision()
	deadline := time.Now().Add(2 * time.Minute)
	for i := range reached {
		for reached[i].Load() < last && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
	b.StopTimer()
	for i := range reached {
		if at := reached[i].Load(); at < last {
			b.Errorf("watcher %d is at revision %d of %d two minutes after the writes", i, at, last)
		}
	}
	cancel()
	done.Wait()
	var all []time.Duration
	for _, rs := range got {
		for _, r := range rs {
			if i := r.rev - base; i > 0 && i < int64(len(applied)) {
				// A watcher may see a change before its writer has taken the time: 0 then.
				all = append(all, time.Duration(max(0, r.at-applied[i].Load())))
			}
		}
	}
	if len(all) == 0 {
		b.Fatal("no event delivered")
	}
	slices.Sort(all)
	q := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))].Microseconds()) }
	b.ReportMetric(q(0.50), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
	b.ReportMetric(float64(len(all))/float64(watchers), "events/watcher")
}
