package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/wire"
)

// DefaultWatchIdleTimeout is how long a watch waits for a line (an event or a progress
// line, which members send every 5 s by default) before it takes the member for lost and
// resumes through the next one.
const DefaultWatchIdleTimeout = 15 * time.Second

// WatchOption changes what Watch follows and how.
type WatchOption func(*watchOptions)

type watchOptions struct {
	from  int64
	exact bool
	stale bool
	idle  time.Duration
}

// From starts the watch at revision rev: the first events are the changes at rev. Without
// it the watch starts after the revision the member has when it sets the watch up.
func From(rev int64) WatchOption { return func(o *watchOptions) { o.from = rev } }

// ExactKey watches the one key given instead of every key under the prefix.
func ExactKey() WatchOption { return func(o *watchOptions) { o.exact = true } }

// StaleWatch lets any member serve the watch from its own copy without confirming with the
// primary, at set-up and before each progress line: it then goes on without a primary, but
// its progress lines say only how far that member is.
func StaleWatch() WatchOption { return func(o *watchOptions) { o.stale = true } }

// WatchIdleTimeout sets how long the watch waits for a line before it resumes through the
// next member (default DefaultWatchIdleTimeout). Keep it above the members'
// --watch-progress-interval.
func WatchIdleTimeout(d time.Duration) WatchOption { return func(o *watchOptions) { o.idle = d } }

// CompactedError ends a watch from a revision that no member asked still keeps. List the
// keys (their listing has a revision), then watch from that revision + 1.
type CompactedError struct {
	From   int64 // the revision the watch had to resume from
	Oldest int64 // the oldest revision the last member asked keeps
}

func (e *CompactedError) Error() string {
	return fmt.Sprintf("watch from revision %d: the members keep changes from revision %d on (reason %d: %s); list the keys, then watch from the listing's revision + 1",
		e.From, e.Oldest, int(reason.WatchCompacted), reason.WatchCompacted.Text())
}

// Watch follows the changes of the keys that start with prefix (or of the key prefix, with
// ExactKey). It yields one response per line a member sends: the changes since the
// previous one, or a progress line while nothing changes, each with the revision the watch
// has reached.
//
// When a member fails, goes quiet for the idle timeout, or cuts the watch off as too slow,
// Watch resumes by itself through the next member from the revision after the last one it
// yielded, so the events come in revision order with no gap and no duplicate. It ends
// quietly when ctx ends, and with an error it cannot get past: a *CompactedError when the
// members no longer keep the revision it must resume from, or a refusal such as a
// certificate without read access.
func (c *Client) Watch(ctx context.Context, prefix string, opts ...WatchOption) iter.Seq2[wire.WatchResponse, error] {
	o := watchOptions{idle: DefaultWatchIdleTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	return func(yield func(wire.WatchResponse, error) bool) {
		w := &watchRun{c: c, prefix: prefix, o: o, next: o.from, ep: int(c.next.Load())}
		w.run(ctx, yield)
	}
}

// watchRun is one Watch: where it is, and which member it asks.
type watchRun struct {
	c      *Client
	prefix string
	o      watchOptions
	next   int64 // the revision to resume from; 0 until the first line when From was not given
	ep     int   // index of the endpoint to ask next

	failures  int // attempts in a row that yielded nothing
	compacted int // members in a row that no longer keep next
}

func (w *watchRun) run(ctx context.Context, yield func(wire.WatchResponse, error) bool) {
	for ctx.Err() == nil {
		endpoint := w.c.endpoints[w.ep%len(w.c.endpoints)]
		err := w.stream(ctx, endpoint, yield)
		if ctx.Err() != nil || errors.Is(err, errStopped) {
			return
		}
		if ce, ok := errors.AsType[*CompactedError](err); ok {
			// A member restored from a snapshot keeps a shorter history than the others.
			if w.compacted++; w.compacted >= len(w.c.endpoints) {
				yield(wire.WatchResponse{}, ce)
				return
			}
		} else if err != nil && !watchRetryable(err) {
			yield(wire.WatchResponse{}, fmt.Errorf("watch %q: %w", w.prefix, err))
			return
		}
		w.ep++
		w.failures++
		if err := sleep(ctx, backoff(w.failures-1, len(w.c.endpoints), err)); err != nil {
			return
		}
	}
}

// errStopped is the caller breaking out of the loop over Watch.
var errStopped = errors.New("watch stopped")

// watchRetryable says whether another member, or the same one later, may serve the watch.
func watchRetryable(err error) bool {
	if e, ok := errors.AsType[*Error](err); ok {
		switch reason.Code(e.Reason.Code) {
		case reason.WatchTooMany, reason.WatchSlow, reason.WatchUnavailable, reason.Shutdown:
			return true
		}
	}
	return retryable(err, true)
}

// stream reads one watch response from endpoint, yielding its lines, until it ends.
func (w *watchRun) stream(parent context.Context, endpoint string, yield func(wire.WatchResponse, error) bool) (err error) {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	idle := time.AfterFunc(w.o.idle, cancel)
	defer idle.Stop()
	defer func() {
		if err != nil && parent.Err() == nil && ctx.Err() != nil {
			err = &transportError{endpoint: endpoint, err: fmt.Errorf("no line from the member for %v", w.o.idle)}
		}
	}()
	hr, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+w.path(), nil)
	if err != nil {
		return fmt.Errorf("build watch request: %w", err)
	}
	resp, err := w.c.hc.Do(hr)
	if err != nil {
		return &transportError{endpoint: endpoint, err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		e := parseError(endpoint, resp, body)
		if reason.Code(e.Reason.Code) == reason.WatchCompacted {
			oldest, _ := strconv.ParseInt(resp.Header.Get(wire.HeaderOldestRevision), 10, 64)
			return &CompactedError{From: w.next, Oldest: oldest}
		}
		return e
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, maxResponseBytes)
	for sc.Scan() {
		idle.Reset(w.o.idle)
		var line wire.WatchResponse
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return &transportError{endpoint: endpoint, err: fmt.Errorf("decode watch line: %w", err)}
		}
		if err := w.take(endpoint, line, yield); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return &transportError{endpoint: endpoint, err: fmt.Errorf("read watch: %w", err)}
	}
	return &transportError{endpoint: endpoint, err: errors.New("the member ended the watch")}
}

// take handles one line: it yields what is new and moves the resume point past it.
func (w *watchRun) take(endpoint string, line wire.WatchResponse, yield func(wire.WatchResponse, error) bool) error {
	if line.Canceled != nil {
		e := &Error{Status: http.StatusOK, Reason: line.Canceled.Reason, Msg: line.Canceled.Error, Fix: line.Canceled.Fix, Endpoint: endpoint}
		if reason.Code(e.Reason.Code) == reason.WatchCompacted {
			return &CompactedError{From: max(w.next, line.Revision+1), Oldest: line.Oldest}
		}
		w.next = max(w.next, line.Revision+1)
		return e
	}
	if line.Created {
		if w.next == 0 {
			w.next = line.Revision + 1
		}
		w.compacted = 0
		return nil
	}
	// A member is never asked for less than next, so nothing here should be old; the filter
	// keeps a duplicate out even so.
	events := line.Events[:0]
	for _, e := range line.Events {
		if e.Revision >= w.next {
			events = append(events, e)
		}
	}
	if line.Revision+1 <= w.next && len(events) == 0 && !line.Progress {
		return nil
	}
	line.Events = events
	w.next = max(w.next, line.Revision+1)
	w.failures = 0
	if !yield(line, nil) {
		return errStopped
	}
	return nil
}

func (w *watchRun) path() string {
	q := url.Values{}
	if w.o.exact {
		q.Set("key", w.prefix)
	} else if w.prefix != "" {
		q.Set("prefix", w.prefix)
	}
	if w.next > 0 {
		q.Set("from", strconv.FormatInt(w.next, 10))
	}
	if w.o.stale {
		q.Set("stale", "true")
	}
	return "/v1/watch?" + q.Encode()
}
