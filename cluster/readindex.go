package cluster

import (
	"context"
	"fmt"
	"sync"

	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/store"
)

// readIndex returns once the local store reflects every write committed before the call;
// see Cluster.ReadIndex.
func (f *forwarder) readIndex(ctx context.Context) error {
	if err := f.st.Stalled(); err != nil {
		return fmt.Errorf("linearizable read: this member's store is stalled: %w", err)
	}
	var idx uint64
	err := f.onPrimary(ctx, func(ctx context.Context, p primary) (err error) {
		idx, err = f.readIndexOn(ctx, p)
		return err
	})
	if err != nil {
		return err
	}
	return f.waitApplied(ctx, idx)
}

// readIndexOn asks p for a read index: one shared round when p is this member.
func (f *forwarder) readIndexOn(ctx context.Context, p primary) (uint64, error) {
	if p.id == f.cfg.Name {
		return f.reads.index(ctx)
	}
	return f.forwardReadIndex(ctx, p.addr)
}

// waitApplied returns once the store reflects raft index idx, or with an error when ctx
// ends or this member closes.
func (f *forwarder) waitApplied(ctx context.Context, idx uint64) error {
	ctx, stop := mergeDone(ctx, f.life.ctx)
	defer stop()
	if err := f.fsm.waitApplied(ctx, idx); err != nil {
		if f.life.closing.Load() {
			return shutdownErr()
		}
		return reason.Wrap(reason.Timeout, fmt.Errorf("catch up for a linearizable read: %w", err))
	}
	return nil
}

// mergeDone returns a context done when either ctx or other is.
func mergeDone(ctx, other context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(other, cancel)
	return ctx, func() { stop(); cancel() }
}

func (f *forwarder) forwardReadIndex(ctx context.Context, addr string) (uint64, error) {
	p, err := f.call(ctx, addr, methodReadIndex, nil, true)
	if err != nil {
		return 0, err
	}
	d := dec{b: p}
	idx := d.uvarint()
	if err := d.done(); err != nil {
		return 0, fmt.Errorf("decode read index: %w", err)
	}
	return idx, nil
}

// verifiedCommitIndex is one read-index round on the primary: the commit index, taken
// before leadership is confirmed, is at least every index committed before the round began.
func (f *forwarder) verifiedCommitIndex(ctx context.Context) (uint64, error) {
	term := f.raft.CurrentTerm()
	if f.readyTerm.Load() != term {
		if err := f.commitNoop(ctx, term); err != nil {
			return 0, err
		}
	}
	idx := f.raft.CommitIndex()
	if err := f.life.waitFuture(ctx, f.raft.VerifyLeader(), "confirm leadership"); err != nil {
		return 0, err
	}
	if f.raft.CurrentTerm() != term {
		return 0, reason.Wrap(reason.LeadershipLost, fmt.Errorf("confirm leadership: %w", ErrLeadershipLost))
	}
	return idx, nil
}

// commitNoop commits a no-op command in term: a new leader's commit index may miss entries
// its predecessor committed until one entry of its own term commits. The no-op is a
// command, not a raft barrier, because only commands reach every member's FSM and move the
// applied index that followers wait on.
func (f *forwarder) commitNoop(ctx context.Context, term uint64) error {
	res, err := f.applyLocal(ctx, store.EncodeCommand(store.Command{Op: store.OpNoop}))
	if err == nil {
		err = res.Err
	}
	if err != nil {
		return fmt.Errorf("commit leader no-op: %w", err)
	}
	f.readyTerm.Store(term)
	return nil
}

// readBatcher shares one leadership confirmation among all the reads that arrive while the
// previous one is in flight. A read joins the next round, never the running one, because the
// running round took its commit index before the read began.
type readBatcher struct {
	f       *forwarder
	mu      sync.Mutex
	next    *readRound
	running bool
	closed  bool
	wg      sync.WaitGroup
}

type readRound struct {
	done    chan struct{}
	index   uint64
	err     error
	readers int
}

func newReadBatcher(f *forwarder) *readBatcher { return &readBatcher{f: f} }

func (b *readBatcher) index(ctx context.Context) (uint64, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return 0, shutdownErr()
	}
	if b.next == nil {
		b.next = &readRound{done: make(chan struct{})}
	}
	r := b.next
	r.readers++
	if !b.running {
		b.running = true
		b.wg.Add(1)
		go b.run()
	}
	b.mu.Unlock()
	select {
	case <-r.done:
		return r.index, r.err
	case <-ctx.Done():
		return 0, reason.Wrap(reason.Timeout, fmt.Errorf("wait for read index: %w", ctx.Err()))
	case <-b.f.life.ctx.Done():
		return 0, shutdownErr()
	}
}

func (b *readBatcher) run() {
	defer b.wg.Done()
	for {
		b.mu.Lock()
		r := b.next
		b.next = nil
		if r == nil {
			b.running = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		r.index, r.err = b.f.verifiedCommitIndex(b.f.life.ctx)
		b.f.metrics.readRounds.Inc()
		b.f.metrics.readsPerRound.Observe(float64(r.readers))
		close(r.done)
	}
}

func (b *readBatcher) close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.wg.Wait()
}
