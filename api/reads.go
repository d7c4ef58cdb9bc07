package api

import (
	"context"
	"fmt"
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
// served, so a large read is not starved by a stream of small ones.
type readGate struct {
	sem      *semaphore.Weighted
	size     int64
	wait     time.Duration
	inFlight prometheus.Gauge
}

func newReadGate(size int64, wait time.Duration, reg prometheus.Registerer) *readGate {
	g := &readGate{sem: semaphore.NewWeighted(size), size: size, wait: wait}
	g.inFlight = register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "mirrorkv_http_read_bytes_in_flight",
		Help: "Bytes that listings and large values being served hold, bounded by the API's MaxReadBytesInFlight.",
	}))
	return g
}

// acquire takes n bytes, or all of the gate when n is larger, and returns how many it took.
// It waits at most the gate's wait; then it returns a 503 Busy error, or ctx's error when
// the client went away first.
func (g *readGate) acquire(ctx context.Context, n int64) (int64, error) {
	n = max(0, min(n, g.size))
	if !g.sem.TryAcquire(n) {
		wctx, cancel := context.WithTimeout(ctx, g.wait)
		defer cancel()
		if err := g.sem.Acquire(wctx, n); err != nil {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			return 0, busy(n, g.size)
		}
	}
	g.inFlight.Add(float64(n))
	return n, nil
}

// tryGrow takes more bytes for a read that holds held and now needs n, without waiting. It
// returns what the read holds afterwards, and false (holding as before) when the bytes are
// not there.
func (g *readGate) tryGrow(held, n int64) (int64, bool) {
	n = min(n, g.size)
	if n <= held {
		return held, true
	}
	if !g.sem.TryAcquire(n - held) {
		return held, false
	}
	g.inFlight.Add(float64(n - held))
	return n, true
}

// release gives back n bytes taken by acquire or tryGrow.
func (g *readGate) release(n int64) {
	if n > 0 {
		g.inFlight.Sub(float64(n))
		g.sem.Release(n)
	}
}

// busy is the refusal of a read the gate could not fit in time.
func busy(n, size int64) *Error {
	e := reasonError(reason.Busy, nil)
	e.Msg = fmt.Sprintf("this member is serving its limit of %d bytes of large reads; this read needs %d", size, n)
	return e
}
