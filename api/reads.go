package api

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"

	"github.com/mirrorkv/mirrorkv/reason"
)

// largeValue is the value size from which a GET takes its bytes from the read gate; smaller
// values are cheap enough to serve without counting.
const largeValue = 64 << 10

// readGate bounds the bytes that large reads (listings, large values) hold at once on this
// member, so that concurrent reads cannot run it out of memory: a read takes its bytes
// before it copies anything out of the store, waits a little when they are not there, and
// is refused with reason.Busy when they do not come. The semaphore is first come, first
// served, so a large read is not starved by a stream of small ones. Each client (its
// certificate's subject DN) may hold at most share of it, so that one client cannot take
// every other client's room; past its share a read is refused at once.
type readGate struct {
	sem      *semaphore.Weighted
	size     int64
	share    int64
	wait     time.Duration
	inFlight prometheus.Gauge

	mu   sync.Mutex
	held map[string]int64 // by client; absent when zero
}

func newReadGate(size, share int64, wait time.Duration, reg prometheus.Registerer) *readGate {
	g := &readGate{sem: semaphore.NewWeighted(size), size: size, share: min(share, size), wait: wait, held: map[string]int64{}}
	g.inFlight = register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "mirrorkv_http_read_bytes_in_flight",
		Help: "Bytes that listings and large values being served hold, bounded by the API's MaxReadBytesInFlight.",
	}))
	return g
}

// acquire takes n bytes for who, or who's whole share when n is larger, and returns how many
// it took. It refuses at once, 503 Busy, when who holds its share already; otherwise it waits
// at most the gate's wait, then returns a 503 Busy error, or ctx's error when the client went
// away first.
func (g *readGate) acquire(ctx context.Context, who string, n int64) (int64, error) {
	n = max(0, min(n, g.share))
	if !g.reserve(who, n) {
		return 0, busyClient(who, n, g.share)
	}
	if !g.sem.TryAcquire(n) {
		wctx, cancel := context.WithTimeout(ctx, g.wait)
		defer cancel()
		if err := g.sem.Acquire(wctx, n); err != nil {
			g.unreserve(who, n)
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			return 0, busy(n, g.size)
		}
	}
	g.inFlight.Add(float64(n))
	return n, nil
}

// tryGrow takes more bytes for a read of who that holds held and now needs n, without
// waiting. It returns what the read holds afterwards, and false (holding as before) when the
// bytes are not there.
func (g *readGate) tryGrow(who string, held, n int64) (int64, bool) {
	n = min(n, g.share)
	if n <= held {
		return held, true
	}
	if !g.reserve(who, n-held) {
		return held, false
	}
	if !g.sem.TryAcquire(n - held) {
		g.unreserve(who, n-held)
		return held, false
	}
	g.inFlight.Add(float64(n - held))
	return n, true
}

// release gives back n bytes of who taken by acquire or tryGrow.
func (g *readGate) release(who string, n int64) {
	if n > 0 {
		g.unreserve(who, n)
		g.inFlight.Sub(float64(n))
		g.sem.Release(n)
	}
}

// reserve counts n more bytes against who's share, unless that would pass it.
func (g *readGate) reserve(who string, n int64) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.held[who]+n > g.share {
		return false
	}
	g.held[who] += n
	return true
}

func (g *readGate) unreserve(who string, n int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.held[who] -= n; g.held[who] <= 0 {
		delete(g.held, who)
	}
}

// busyClient is the refusal of a read that would take its client past its share.
func busyClient(who string, n, share int64) *Error {
	e := reasonError(reason.Busy, nil)
	e.Msg = fmt.Sprintf("client %q holds its share of %d bytes of large reads on this member; this read needs %d more: wait for its other listings and large reads to finish", who, share, n)
	return e
}

// busy is the refusal of a read the gate could not fit in time.
func busy(n, size int64) *Error {
	e := reasonError(reason.Busy, nil)
	e.Msg = fmt.Sprintf("this member is serving its limit of %d bytes of large reads; this read needs %d", size, n)
	return e
}
