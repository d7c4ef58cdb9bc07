package cluster

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/hashicorp/raft"

	"github.com/mirrorkv/mirrorkv/reason"
)

// life is a member's lifetime as its parts see it: Close sets closing and cancels ctx, which
// wakes every caller waiting on the member and ends its background work.
type life struct {
	ctx     context.Context
	cancel  context.CancelFunc
	closing atomic.Bool
}

func newLife() *life {
	ctx, cancel := context.WithCancel(context.Background())
	return &life{ctx: ctx, cancel: cancel}
}

// end begins Close: from now on every operation returns shutdownErr.
func (l *life) end() {
	l.closing.Store(true)
	l.cancel()
}

// waitFuture waits for a raft future until ctx ends, which leaves the outcome unknown.
// Raft answers every future by the time it has shut down, so the goroutine ends.
func (l *life) waitFuture(ctx context.Context, f raft.Future, what string) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		if err != nil {
			return raftError(err)
		}
		return nil
	case <-ctx.Done():
		if l.closing.Load() {
			return reason.Wrap(reason.Timeout, fmt.Errorf("%s, outcome unknown: %w", what, ErrShutdown))
		}
		return reason.Wrap(reason.Timeout, fmt.Errorf("%s, outcome unknown: %w", what, ctx.Err()))
	}
}

// shutdownErr is what every operation returns once Close has begun.
func shutdownErr() error { return reason.Wrap(reason.Shutdown, ErrShutdown) }
