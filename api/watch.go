package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/store"
	"github.com/mirrorkv/mirrorkv/wire"
)

// GET /v1/watch streams the changes of a prefix (or one key) from a revision, as
// newline-delimited JSON: one wire.WatchResponse per line, flushed as it is made. NDJSON
// rather than server-sent events because every line is the same JSON object the Go client,
// jq and a browser's fetch() reader parse alike, `curl -N` prints it as it comes, and it
// needs no framing beyond the newline; EventSource's one advantage, reconnecting by itself,
// does not fit a stream that must resume from a revision the client chooses, and it cannot
// present a client certificate of its own choosing anyway. docs/api.md has the details.
//
// Each watcher reads the store's change log itself, from its own position, when the store
// says the revision moved: writes never wait for watchers, and a watcher far behind reads
// the log in bounded steps. What a watcher has read and its connection has not yet taken is
// bounded by WatchBuffer; a watcher that leaves it full for WatchSlowTimeout is cut off with
// a last line carrying reason 412 watch-slow.

// Defaults of the watch settings.
const (
	// DefaultMaxWatchers bounds the watches one member serves at once.
	DefaultMaxWatchers = 1024
	// DefaultWatchBuffer bounds the bytes one watcher holds that its connection has not taken.
	DefaultWatchBuffer = 256 << 10
	// DefaultWatchProgressInterval is how long a watch stays silent before a progress line.
	DefaultWatchProgressInterval = 5 * time.Second
	// DefaultWatchSlowTimeout is how long a watcher may leave its buffer full.
	DefaultWatchSlowTimeout = 5 * time.Second
)

// ChangeLog is the store's change log as watches read it; *store.Store implements it. A
// Reader that does not implement it makes /v1/watch answer 503 watch-unavailable.
type ChangeLog interface {
	Changes(from int64, prefix string, lim store.ChangeLimit) ([]store.Change, int64, error)
	Changed() <-chan struct{}
	OldestChange() int64
}

// watchQuery is what GET /v1/watch asks for.
type watchQuery struct {
	prefix string // the prefix, or the key when exact
	exact  bool   // ?key=: one key only
	from   int64  // 0: from the next revision
	stale  bool
}

// parseWatchQuery reads the query of GET /v1/watch: ?prefix=P or ?key=K (neither: every
// key), ?from=REV, ?stale.
func parseWatchQuery(raw string, maxKey int) (watchQuery, error) {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return watchQuery{}, badRequest("the query does not parse: %s", err)
	}
	if err := checkQuery(q, "prefix", "key", "from", "stale"); err != nil {
		return watchQuery{}, err
	}
	var w watchQuery
	for _, name := range []string{"prefix", "key", "from"} {
		if len(q[name]) > 1 {
			return w, badRequest("give ?%s once", name)
		}
	}
	_, hasPrefix := q["prefix"]
	_, hasKey := q["key"]
	switch {
	case hasPrefix && hasKey:
		return w, badRequest("give ?prefix= or ?key=, not both")
	case hasKey:
		w.prefix, w.exact = q.Get("key"), true
		if err := validateKey(w.prefix, maxKey); err != nil {
			return w, err
		}
	case len(q.Get("prefix")) > maxKey:
		return w, badRequest("?prefix= is %d bytes, longer than the longest key (%d)", len(q.Get("prefix")), maxKey)
	default:
		w.prefix = q.Get("prefix")
	}
	if v, ok := q["from"]; ok {
		n, err := strconv.ParseInt(v[0], 10, 64)
		if err != nil || n <= 0 {
			return w, &Error{Status: http.StatusBadRequest, Msg: fmt.Sprintf("?from=%q is not a revision", v[0]),
				Fix: "revisions start at 1; leave ?from out to watch from now on"}
		}
		w.from = n
	}
	w.stale, err = boolParam(q, "stale")
	return w, err
}

// watchers counts the watches this member serves.
type watchers struct {
	n     atomic.Int64
	gauge prometheus.Gauge
	cut   *prometheus.CounterVec
	stop  chan struct{} // closed by StopWatches
	once  sync.Once
}

// StopWatches ends every watch this member serves, now and later, with a last line carrying
// reason 207 shutdown, so that their clients resume on another member at once and a graceful
// shutdown of the HTTP server (http.Server.RegisterOnShutdown) does not wait for them.
func (s *Server) StopWatches() { s.watches.once.Do(func() { close(s.watches.stop) }) }

func newWatchers(reg prometheus.Registerer) *watchers {
	return &watchers{stop: make(chan struct{}),
		gauge: register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mirrorkv_watchers",
			Help: "Watches this member serves now, bounded by --max-watchers.",
		})),
		cut: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mirrorkv_watches_cut_total",
			Help: "Watches the member ended, by reason.",
		}, []string{"reason"})),
	}
}

func (s *Server) watch(w http.ResponseWriter, r *http.Request) error {
	q, err := parseWatchQuery(r.URL.RawQuery, s.cfg.MaxKeyBytes)
	if err != nil {
		return err
	}
	log, ok := s.local.(ChangeLog)
	if !ok {
		e := reasonError(reason.WatchUnavailable, errors.New("the local store keeps no change log"))
		e.Status, e.RetryAfter = http.StatusServiceUnavailable, 1
		return e
	}
	if s.watches.n.Add(1) > int64(s.cfg.MaxWatchers) {
		s.watches.n.Add(-1)
		return &Error{Status: http.StatusTooManyRequests, Reason: reason.WatchTooMany, RetryAfter: 1,
			Msg: fmt.Sprintf("this member serves its maximum of %d watchers", s.cfg.MaxWatchers)}
	}
	s.watches.gauge.Inc()
	defer func() {
		s.watches.n.Add(-1)
		s.watches.gauge.Dec()
	}()
	if err := s.readBarrier(r, q.stale); err != nil {
		return err
	}
	head := s.local.Revision()
	from := q.from
	if from == 0 {
		from = head + 1
	}
	if oldest := log.OldestChange(); from < oldest {
		w.Header().Set(wire.HeaderOldestRevision, strconv.FormatInt(oldest, 10))
		return compacted(&store.CompactedError{From: from, Oldest: oldest})
	}
	// The stream outlives the server's ReadTimeout, which would otherwise cancel it.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{}) // a test's recorder has no deadlines to clear
	h := w.Header()
	h["Content-Type"] = []string{"application/x-ndjson"}
	h["Cache-Control"] = []string{"no-store"}
	h["X-Content-Type-Options"] = []string{"nosniff"}
	if q.stale {
		h[wire.HeaderStale] = s.staleTrue
	}
	setHeaders(h, 0, head, -1)
	w.WriteHeader(http.StatusOK)

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	wt := &watcher{s: s, log: log, q: q, pos: from, room: make(chan struct{}), wake: make(chan struct{}, 1)}
	wt.push(ctx, &wire.WatchResponse{Revision: from - 1, Created: true})
	var wg sync.WaitGroup
	wg.Go(func() { wt.produce(ctx) })
	wt.deliver(ctx, w, rc)
	cancel()
	wg.Wait()
	return nil
}

// compacted is the refusal of a watch from a revision the change log no longer holds.
func compacted(ce *store.CompactedError) *Error {
	return &Error{Status: http.StatusGone, Reason: reason.WatchCompacted, Err: ce,
		Msg: fmt.Sprintf("revision %d is older than the oldest change this member keeps, %d", ce.From, ce.Oldest)}
}

// watcher is one watch being served: produce reads the change log and queues lines, deliver
// writes them to the connection.
type watcher struct {
	s   *Server
	log ChangeLog
	q   watchQuery
	pos int64 // the next revision to read

	mu     sync.Mutex
	queue  [][]byte
	queued int           // bytes in queue and being written
	upTo   int64         // the revision of the last line queued
	room   chan struct{} // closed when deliver has taken lines off the queue
	final  bool          // the last line is queued
	wake   chan struct{} // one token: lines are queued
}

// produce follows the change log until ctx ends or the watch is cut off.
func (wt *watcher) produce(ctx context.Context) {
	every := wt.s.cfg.WatchProgressInterval
	tick := time.NewTicker(every)
	defer tick.Stop()
	lim := store.ChangeLimit{Bytes: min(wt.s.cfg.WatchBuffer, 1<<20)}
	var sent bool           // a line went out since the last tick
	progressAt := int64(-1) // a confirmed progress line is due once pos passes it; -1: none
	for {
		changed := wt.log.Changed()
		changes, next, err := wt.log.Changes(wt.pos, wt.q.prefix, lim)
		if err != nil {
			wt.fail(err)
			return
		}
		if next > wt.pos {
			wt.pos = next
			if events := wt.events(changes); len(events) > 0 {
				if !wt.push(ctx, &wire.WatchResponse{Revision: next - 1, Events: events}) {
					return
				}
				sent = true
			}
			continue // read on until caught up
		}
		if progressAt >= 0 && wt.pos > progressAt {
			if !wt.push(ctx, &wire.WatchResponse{Revision: wt.pos - 1, Progress: true}) {
				return
			}
			progressAt, sent = -1, true
		}
		select {
		case <-ctx.Done():
			return
		case <-wt.s.watches.stop:
			wt.cut(&Error{Reason: reason.Shutdown, Msg: "this member is shutting down"}, &wire.WatchResponse{Revision: wt.pos - 1})
			return
		case <-changed:
		case <-tick.C:
			if !sent {
				progressAt = wt.progressTarget(ctx)
			}
			sent = false
		}
	}
}

// progressTarget is the revision a progress line may vouch for: on a stale watch the
// member's own, on a linearizable one the revision the member had once it confirmed with the
// primary that it was up to date. -1 when that confirmation failed: no progress line then.
func (wt *watcher) progressTarget(ctx context.Context) int64 {
	if !wt.q.stale {
		rctx, cancel := context.WithTimeout(ctx, wt.s.cfg.WatchProgressInterval)
		err := wt.s.grp.ReadIndex(rctx)
		cancel()
		if err != nil {
			return -1
		}
	}
	return max(wt.s.local.Revision(), wt.pos-1)
}

// events turns the changes read into the events of the watch.
func (wt *watcher) events(changes []store.Change) []wire.WatchEvent {
	var out []wire.WatchEvent
	for _, c := range changes {
		if wt.q.exact && c.Key != wt.q.prefix {
			continue
		}
		e := wire.WatchEvent{Type: wire.EventPut, Key: c.Key, Value: c.Value, Revision: c.Revision, Created: c.Created}
		if c.Deleted {
			e.Type = wire.EventDelete
		}
		out = append(out, e)
	}
	return out
}

// fail ends the watch on an error of the change log with a last line saying why.
func (wt *watcher) fail(err error) {
	last := &wire.WatchResponse{Revision: wt.pos - 1}
	var e *Error
	if ce, ok := errors.AsType[*store.CompactedError](err); ok {
		e, last.Oldest = compacted(ce), ce.Oldest
	} else {
		e = reasonError(reason.WatchUnavailable, err)
		e.Msg = "this member cannot read its change log"
		wt.s.log.Warn("watch ended: the change log cannot be read", "err", err)
	}
	wt.cut(e, last)
}

// cut queues the last line, past the buffer's bound, and ends the watch.
func (wt *watcher) cut(e *Error, last *wire.WatchResponse) {
	last.Canceled = &wire.Error{Error: e.Msg, Reason: wire.Reason{Code: int(e.Reason), Text: e.Reason.Text()}, Fix: e.Reason.Fix()}
	wt.s.watches.cut.WithLabelValues(e.Reason.Name()).Inc()
	line := encodeLine(last)
	wt.mu.Lock()
	wt.queue = append(wt.queue, line)
	wt.queued += len(line)
	wt.final = true
	wt.mu.Unlock()
	wt.signal()
}

// push queues the line of resp. When the buffer is full it waits for room, and cuts the watch off
// (returning false) when none comes within WatchSlowTimeout. One line always fits an empty
// buffer, so a large value never cuts off a watcher that keeps up.
func (wt *watcher) push(ctx context.Context, resp *wire.WatchResponse) bool {
	line := encodeLine(resp)
	var timer *time.Timer
	for {
		wt.mu.Lock()
		if wt.queued == 0 || wt.queued+len(line) <= wt.s.cfg.WatchBuffer {
			wt.queue = append(wt.queue, line)
			wt.queued += len(line)
			wt.upTo = resp.Revision
			wt.mu.Unlock()
			wt.signal()
			if timer != nil {
				timer.Stop()
			}
			return true
		}
		room := wt.room
		wt.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(wt.s.cfg.WatchSlowTimeout)
			defer timer.Stop()
		}
		select {
		case <-ctx.Done():
			return false
		case <-wt.s.watches.stop:
			wt.cut(&Error{Reason: reason.Shutdown, Msg: "this member is shutting down"}, &wire.WatchResponse{Revision: wt.queuedUpTo()})
			return false
		case <-room:
		case <-timer.C:
			wt.cut(&Error{Reason: reason.WatchSlow,
				Msg: fmt.Sprintf("the watcher left %d bytes of events unread for %v", wt.s.cfg.WatchBuffer, wt.s.cfg.WatchSlowTimeout)},
				&wire.WatchResponse{Revision: wt.queuedUpTo()})
			return false
		}
	}
}

// queuedUpTo is the revision the queued lines reach; the last line of a cut watch carries it.
func (wt *watcher) queuedUpTo() int64 {
	wt.mu.Lock()
	defer wt.mu.Unlock()
	return wt.upTo
}

func (wt *watcher) signal() {
	select {
	case wt.wake <- struct{}{}:
	default:
	}
}

// deliver writes the queued lines to the connection until the last line is written, the
// client goes away, or a write fails.
func (wt *watcher) deliver(ctx context.Context, w http.ResponseWriter, rc *http.ResponseController) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-wt.wake:
		}
		wt.mu.Lock()
		lines, final := wt.queue, wt.final
		wt.queue = nil
		wt.mu.Unlock()
		// A client that stops reading is cut off by produce; the deadline only ends a write
		// that hangs on long after, giving a client that comes back to read a fair chance
		// to see the last line with its reason first.
		_ = rc.SetWriteDeadline(time.Now().Add(wt.s.cfg.WatchSlowTimeout + wt.s.cfg.LargeReadTimeout))
		n := 0
		var err error
		for _, l := range lines {
			if _, err = w.Write(l); err != nil {
				break
			}
			n += len(l)
		}
		if err == nil {
			err = rc.Flush()
		}
		wt.mu.Lock()
		wt.queued -= n
		close(wt.room)
		wt.room = make(chan struct{})
		wt.mu.Unlock()
		if err != nil || final {
			return
		}
	}
}

// encodeLine encodes a line as encoding/json would. Lines with events, the bulk of every
// watch, are written by hand: each watcher encodes its own, so with many watchers of one
// prefix the reflection of encoding/json was most of the member's work.
func encodeLine(v *wire.WatchResponse) []byte {
	if v.Created || v.Progress || v.Canceled != nil || len(v.Events) == 0 {
		b, err := json.Marshal(v)
		if err != nil { // a WatchResponse always encodes
			b = []byte(`{}`)
		}
		return append(b, '\n')
	}
	size := 32
	for _, e := range v.Events {
		size += 80 + len(e.Key) + base64.StdEncoding.EncodedLen(len(e.Value))
	}
	buf := bytes.NewBuffer(make([]byte, 0, size))
	buf.WriteString(`{"revision":`)
	buf.Write(strconv.AppendInt(buf.AvailableBuffer(), v.Revision, 10))
	buf.WriteString(`,"events":[`)
	for i, e := range v.Events {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString(`{"type":`)
		appendJSONString(buf, e.Type)
		buf.WriteString(`,"key":`)
		appendJSONString(buf, e.Key)
		if len(e.Value) > 0 {
			buf.WriteString(`,"value":"`)
			buf.Write(base64.StdEncoding.AppendEncode(buf.AvailableBuffer(), e.Value))
			buf.WriteByte('"')
		}
		buf.WriteString(`,"revision":`)
		buf.Write(strconv.AppendInt(buf.AvailableBuffer(), e.Revision, 10))
		if e.Created != 0 {
			buf.WriteString(`,"created":`)
			buf.Write(strconv.AppendInt(buf.AvailableBuffer(), e.Created, 10))
		}
		buf.WriteByte('}')
	}
	buf.WriteString("]}\n")
	return buf.Bytes()
}
