package cluster

import (
	"context"
	"fmt"
	"sync"

	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/store"
)

// ReadIndex returns once the local store reflects every write committed before the call, so
// a read that follows is linearizable. The primary confirms its leadership with one round of
// heartbeats shared by every read that arrives meanwhile; another member asks the primary
// for that index and waits until it has applied it. A member cut off from the majority gets
// an error, never a stale answer.
//
// A member whose store is stalled (a full disk) refuses at once: its store cannot catch up.
func (c *Cluster) ReadIndex(ctx context.Context) error {
	if err := c.st.Stalled(); err != nil {
		return fmt.Errorf("linearizable read: this member's store is stalled: %w", err)
	}
	var idx uint64
	err := c.onPrimary(ctx, func(ctx context.Context, p primary) (err error) {
		idx, err = c.readIndexOn(ctx, p)
		return err
	})
	if err != nil {
		return err
	}
	return c.waitApplied(ctx, idx)
}

// readIndexOn asks p for a read index: one shared round when p is this member.
func (c *Cluster) readIndexOn(ctx context.Context, p primary) (uint64, error) {
	if p.id == c.cfg.Name {
		return c.reads.index(ctx)
	}
	return c.forwardReadIndex(ctx, p.addr)
}

// waitApplied returns once the store reflects raft index idx, or with an error when ctx
// ends or this member closes.
func (c *Cluster) waitApplied(ctx context.Context, idx uint64) error {
	ctx, stop := mergeDone(ctx, c.ctx)
	defer stop()
	if err := c.fsm.waitApplied(ctx, idx); err != nil {
		if c.closing.Load() {
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

func (c *Cluster) forwardReadIndex(ctx context.Context, addr string) (uint64, error) {
	p, err := c.call(ctx, addr, methodReadIndex, nil, true)
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
func (c *Cluster) verifiedCommitIndex(ctx context.Context) (uint64, error) {
	term := c.raft.CurrentTerm()
	if c.readyTerm.Load() != term {
		if err := c.commitNoop(ctx, term); err != nil {
			return 0, err
		}
	}
	idx := c.raft.CommitIndex()
	if err := c.waitFuture(ctx, c.raft.VerifyLeader(), "confirm leadership"); err != nil {
		return 0, err
	}
	if c.raft.CurrentTerm() != term {
		return 0, reason.Wrap(reason.LeadershipLost, fmt.Errorf("confirm leadership: %w", ErrLeadershipLost))
	}
	return idx, nil
}

// commitNoop commits a no-op command in term: a new leader's commit index may miss entries
// its predecessor committed until one entry of its own term commits. The no-op is a
// command, not a raft barrier, because only commands reach every member's FSM and move the
// applied index that followers wait on.
func (c *Cluster) commitNoop(ctx context.Context, term uint64) error {
	res, err := c.applyLocal(ctx, store.EncodeCommand(store.Command{Op: store.OpNoop}))
	if err == nil {
		err = res.Err
	}
	if err != nil {
		return fmt.Errorf("commit leader no-op: %w", err)
	}
	c.readyTerm.Store(term)
	return nil
}

// readBatcher shares one leadership confirmation among all the reads that arrive while the
// previous one is in flight. A read joins the next round, never the running one, because the
// running round took its commit index before the read began.
type readBatcher struct {
	c       *Cluster
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

func newReadBatcher(c *Cluster) *readBatcher { return &readBatcher{c: c} }

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
	case <-b.c.ctx.Done():
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
		r.index, r.err = b.c.verifiedCommitIndex(b.c.ctx)
		b.c.metrics.readRounds.Inc()
		b.c.metrics.readsPerRound.Observe(float64(r.readers))
		close(r.done)
	}
}

func (b *readBatcher) close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.wg.Wait()
}
