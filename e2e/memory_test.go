package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/client"
	"github.com/mirrorkv/mirrorkv/internal/localgroup"
	"github.com/mirrorkv/mirrorkv/pki"
	"github.com/mirrorkv/mirrorkv/wire"
)

// Memory bounds of TestMemory_Listings, above the member's baseline once the data is loaded.
// A member's large reads hold at most MaxReadBytesInFlight (64 MiB) of keys and values, plus
// 32 KiB per response being written; the rest is garbage the collector has not yet reclaimed.
// With GOGC=100 the heap in use peaks near twice what is live at a collection: about twice
// (what the baseline holds live + 64 MiB), which stays within the bound whether the baseline
// was sampled just after a collection or just before one. The race detector's shadow memory counts in
// the resident size and is never given back, so its resident bound is only a ceiling.
const (
	memoryHeapBound    = 256 << 20
	memoryRSSBound     = 256 << 20
	memoryRSSBoundRace = 512 << 20
)

// TestMemory_Listings: a read-only client sends the most expensive reads it can — 32
// concurrent stale listings of every key with ?limit=10000, over 1 MiB values — for 10 s.
// The member must stay up and within its memory bounds, refuse what does not fit with 503
// Busy or cut the listings at their byte bound (more=true), and keep serving a legitimate
// client meanwhile. Before listings had a byte bound, each of these requests copied every
// value and encoded all of it at once (64 MiB of values became about 250 MiB of heap), so
// 32 of them needed several GiB.
func TestMemory_Listings(t *testing.T) {
	const (
		keys      = 64
		valueSize = 1 << 20
		attackers = 32
		attack    = 10 * time.Second
	)
	g := startGroup(t, localgroup.Options{Failover: 1, ServeArgs: fastServe})
	m := g.Members[0]
	loader := clientOf(t, g, m)
	value := []byte(strings.Repeat("v", valueSize))
	for i := range keys {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		_, err := loader.Put(ctx, fmt.Sprintf("big/%03d", i), value)
		cancel()
		if err != nil {
			t.Fatalf("load key %d: %v", i, err)
		}
	}
	hc := newHostile(t, g, m)
	time.Sleep(2 * time.Second) // let the store commit what it holds in memory
	base := hc.sample(t)
	rssBound := int64(memoryRSSBound)
	if os.Getenv("MIRRORKV_E2E_RACE") != "0" {
		rssBound = memoryRSSBoundRace
	}
	t.Logf("baseline with %d keys of %d bytes: %d goroutines, %.1f MiB resident, %.1f MiB heap in use",
		keys, valueSize, base.goroutines, base.rssMiB(), base.heapMiB())

	reader := readOnlyHTTP(t, g)
	peak := hc.watch(t)
	var counts listCounts
	deadline := time.Now().Add(attack)
	var wg sync.WaitGroup
	for range attackers {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				counts.add(listEverything(reader, m.ClientURL))
			}
		})
	}
	wg.Wait()
	p := peak()
	if !m.Running() {
		t.Fatalf("the member died under the listings:\n%s", tail(m.Log(), 3000))
	}
	ok, failed, slowest, errs := hc.legit.report()
	t.Logf("%d listings cut at the byte bound (more=true), %d whole, %d refused busy (503); peak %d goroutines, %.1f MiB resident (+%.1f), %.1f MiB heap in use (+%.1f); legitimate client: %d ok, %d failed, slowest %s",
		counts.more.Load(), counts.whole.Load(), counts.busy.Load(), p.goroutines, p.rssMiB(), p.rssMiB()-base.rssMiB(),
		p.heapMiB(), p.heapMiB()-base.heapMiB(), ok, failed, slowest.Round(time.Millisecond))
	if n := counts.other.Load(); n > 0 {
		t.Errorf("%d listings got neither 200 nor 503 Busy, first: %s", n, counts.firstOther.Load())
	}
	if counts.more.Load() == 0 || counts.whole.Load() > 0 {
		t.Errorf("listings of %d MiB: %d cut with more=true, %d whole; want every answered listing cut at the byte bound", keys*valueSize>>20, counts.more.Load(), counts.whole.Load())
	}
	if failed > 0 || ok == 0 {
		t.Errorf("legitimate client under the listings: %d ok, %d failed: %s", ok, failed, strings.Join(errs, " | "))
	}
	if p.rss > base.rss+rssBound {
		t.Errorf("resident memory peaked at %.1f MiB, %.1f MiB above the baseline; the bound is %d MiB", p.rssMiB(), p.rssMiB()-base.rssMiB(), rssBound>>20)
	}
	if p.heap > base.heap+memoryHeapBound {
		t.Errorf("heap in use peaked at %.1f MiB, %.1f MiB above the baseline; the bound is %d MiB", p.heapMiB(), p.heapMiB()-base.heapMiB(), memoryHeapBound>>20)
	}
	eventually(t, 30*time.Second, "goroutines come back down after the listings", func() error {
		if s := hc.sample(t); s.goroutines > base.goroutines+50 {
			return fmt.Errorf("%d goroutines, baseline %d", s.goroutines, base.goroutines)
		}
		return nil
	})
}

// readOnlyHTTP is a plain net/http client with a read-only certificate: no retries, so that
// every refusal is seen.
func readOnlyHTTP(t *testing.T, g *localgroup.Group) *http.Client {
	t.Helper()
	cert, key, err := g.PKI.IssueClient("reader", pki.AccessReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := client.LoadTLS(g.PKI.MemberCA, cert, key)
	if err != nil {
		t.Fatal(err)
	}
	cfg.NextProtos = []string{"http/1.1"}
	tr := &http.Transport{TLSClientConfig: cfg, MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}
}

// listOutcome is how one listing ended.
type listOutcome struct {
	status int
	more   bool
	reason int
	err    error
}

// listEverything asks for every key with the largest ?limit, stale so that any member
// answers from its own copy at once.
func listEverything(c *http.Client, url string) listOutcome {
	resp, err := c.Get(url + "/v1/kv/?prefix=&limit=10000&stale=true")
	if err != nil {
		return listOutcome{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return listOutcome{status: resp.StatusCode, err: err}
	}
	out := listOutcome{status: resp.StatusCode}
	if resp.StatusCode == http.StatusOK {
		var l struct {
			More bool `json:"more"`
		}
		out.err = json.Unmarshal(body, &l)
		out.more = l.More
		return out
	}
	var we wire.Error
	_ = json.Unmarshal(body, &we)
	out.reason = we.Reason.Code
	if resp.Header.Get("Retry-After") != "1" {
		out.err = fmt.Errorf("status %d without Retry-After: 1: %.200s", resp.StatusCode, body)
	}
	return out
}

type listCounts struct {
	more, whole, busy, other atomic.Int64
	firstOther               atomic.Value
}

func (c *listCounts) add(o listOutcome) {
	switch {
	case o.err == nil && o.status == http.StatusOK && o.more:
		c.more.Add(1)
	case o.err == nil && o.status == http.StatusOK:
		c.whole.Add(1)
	case o.err == nil && o.status == http.StatusServiceUnavailable && o.reason == 212:
		c.busy.Add(1)
	default:
		if c.other.Add(1) == 1 {
			c.firstOther.Store(fmt.Sprintf("status %d reason %d: %v", o.status, o.reason, o.err))
		}
	}
}
