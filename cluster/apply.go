package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/raft"

	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/store"
)

// forwarder runs what only the primary may do, apply and read index, on the primary: here
// when this member leads, over the member channel otherwise, retried once when the primary
// it tried was stale.
type forwarder struct {
	cfg     Config
	raft    forwardRaft
	st      staller
	fsm     applyWaiter
	rpc     memberCaller
	life    *life
	metrics *metrics
	reads   *readBatcher

	// readyTerm is the term in which this member, as leader, committed its first command:
	// from then on its commit index covers every entry committed before (raft §6.4).
	readyTerm atomic.Uint64
}

// applyWaiter is the FSM as read index waits on it.
type applyWaiter interface {
	waitApplied(ctx context.Context, idx uint64) error
}

func newForwarder(cfg Config, r forwardRaft, st staller, fsm applyWaiter, rpc memberCaller, lf *life, m *metrics) *forwarder {
	f := &forwarder{cfg: cfg, raft: r, st: st, fsm: fsm, rpc: rpc, life: lf, metrics: m}
	f.reads = newReadBatcher(f)
	return f
}

// apply commits cmd through the primary; see Cluster.Apply.
func (f *forwarder) apply(ctx context.Context, cmd store.Command) (store.Result, error) {
	if cmd.Op == store.OpSetMember || cmd.Op == store.OpRemoveMember || cmd.Op == store.OpSetCRL {
		return store.Result{}, reason.Wrap(reason.NotAllowed, fmt.Errorf("apply a membership or CRL command: %w", ErrNotAllowed))
	}
	return f.applyData(ctx, store.EncodeCommand(cmd))
}

func (f *forwarder) applyData(ctx context.Context, data []byte) (store.Result, error) {
	var res store.Result
	err := f.onPrimary(ctx, func(ctx context.Context, p primary) (err error) {
		res, err = f.applyOn(ctx, p, data)
		return err
	})
	return res, err
}

// applyOn applies data on p: locally when p is this member, forwarded otherwise.
func (f *forwarder) applyOn(ctx context.Context, p primary, data []byte) (store.Result, error) {
	if p.id == f.cfg.Name {
		return f.applyLocal(ctx, data)
	}
	return f.forwardApply(ctx, p.addr, data)
}

// primary is a member that leads, or that some member believes leads.
type primary struct{ addr, id string }

// onPrimary runs do against the primary this member knows of. When that attempt certainly
// did not take effect because the member was no longer the primary, or could not be
// reached, do runs again: on the primary the refusing member named, or else on the next
// primary this member learns of, so that the retry does not hit the same stale one.
func (f *forwarder) onPrimary(ctx context.Context, do func(context.Context, primary) error) error {
	p, err := f.waitLeader(ctx, "")
	if err != nil {
		return err
	}
	return f.retry(ctx, p, do)
}

// maxAttempts bounds the attempts of one operation on a primary. One failover needs two;
// the third covers a leadership that moves again while an election settles (pre-votes on
// a loaded machine), and every refused attempt certainly did not take effect.
const maxAttempts = 3

// retry runs do on p, then again as onPrimary describes, at most maxAttempts times.
func (f *forwarder) retry(ctx context.Context, p primary, do func(context.Context, primary) error) error {
	for attempt := 1; ; attempt++ {
		err := do(ctx, p)
		if err == nil || !retryable(err) || attempt == maxAttempts {
			return err
		}
		next, ok := hintOf(err)
		if !ok || next.id == p.id {
			var werr error
			if next, werr = f.waitLeader(ctx, p.id); werr != nil {
				return werr
			}
		}
		p = next
	}
}

// waitLeader returns the current primary, waiting while an election runs, up to the time
// a failover takes: followers notice the silence after one to two heartbeat timeouts, and
// an election with pre-vote may take a few rounds of one to two election timeouts. With
// avoid set (a member that just failed as primary), it waits for another one, and returns
// avoid only if no other shows up in that time.
func (f *forwarder) waitLeader(ctx context.Context, avoid string) (primary, error) {
	deadline := time.Now().Add(2*f.cfg.HeartbeatTimeout + 6*f.cfg.ElectionTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if f.life.closing.Load() {
			return primary{}, shutdownErr()
		}
		a, i := f.raft.LeaderWithID()
		late := time.Now().After(deadline)
		if i != "" && (string(i) != avoid || late) {
			return primary{addr: string(a), id: string(i)}, nil
		}
		if late {
			return primary{}, reason.Wrap(reason.NoPrimary, ErrNoPrimary)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return primary{}, reason.Wrap(reason.NoPrimary, fmt.Errorf("wait for a primary: %w", ctx.Err()))
		case <-f.life.ctx.Done():
			return primary{}, shutdownErr()
		}
	}
}

// applyLocal applies on this member, which must be the primary. It refuses at once while
// the store is stalled, and waits at most ApplyTimeout (or until ctx ends, or Close) for
// the commit and the store's result; past that the outcome is unknown.
func (f *forwarder) applyLocal(ctx context.Context, data []byte) (store.Result, error) {
	if err := f.st.Stalled(); err != nil {
		return store.Result{}, fmt.Errorf("apply command: the primary's store is stalled: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, f.cfg.ApplyTimeout)
	defer cancel()
	ctx, stop := mergeDone(ctx, f.life.ctx)
	defer stop()
	timeout := f.cfg.ApplyTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(d))
	}
	fut := f.raft.Apply(data, timeout)
	if err := f.life.waitFuture(ctx, fut, "apply command"); err != nil {
		return store.Result{}, err
	}
	p, ok := fut.Response().(*pendingResult)
	if !ok {
		return store.Result{}, fmt.Errorf("apply command: unexpected FSM response %T", fut.Response())
	}
	res, err := p.wait(ctx, f.st.Stalled)
	if err != nil {
		return store.Result{}, reason.Wrap(reason.Timeout, fmt.Errorf("apply command: committed, store outcome unknown: %w", err))
	}
	return res, nil
}

// serve answers an apply or a read index another member forwarded. Off the primary it
// refuses with reason.NotPrimary, naming the primary, and never forwards again, so a
// request cannot loop between members.
func (f *forwarder) serve(ctx context.Context, method byte, p []byte) ([]byte, error) {
	if f.raft.State() != raft.Leader {
		return nil, f.notPrimary(nil)
	}
	if method == methodApply {
		if err := forwardable(p); err != nil {
			return nil, err
		}
		res, err := f.applyLocal(ctx, p)
		if err != nil {
			return nil, err
		}
		return encodeResult(res), nil
	}
	idx, err := f.reads.index(ctx)
	var e enc
	e.uvarint(idx)
	return e.b, err
}

func (f *forwarder) forwardApply(ctx context.Context, addr string, data []byte) (store.Result, error) {
	f.metrics.forwarded.Inc()
	p, err := f.call(ctx, addr, methodApply, data, false)
	if err != nil {
		return store.Result{}, err
	}
	return decodeResult(p)
}

// raftError maps raft's errors to reason-coded ones that say whether the outcome is known.
func raftError(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return reason.Wrap(reason.NotPrimary, fmt.Errorf("apply command: %w: %w", ErrNotPrimary, err))
	case errors.Is(err, raft.ErrLeadershipLost):
		return reason.Wrap(reason.LeadershipLost, fmt.Errorf("apply command: %w", ErrLeadershipLost))
	case errors.Is(err, raft.ErrRaftShutdown):
		return shutdownErr()
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return reason.Wrap(reason.Timeout, fmt.Errorf("apply command: %w", err))
	case isDiskFull(err):
		// The primary could not append to its own raft log, so the entry was never sent:
		// the write did not happen. Raft has stepped it down; the client may retry.
		return reason.Wrap(reason.DiskFull, fmt.Errorf("apply command: append to the raft log: %w", err))
	}
	return fmt.Errorf("apply command: %w", err)
}

// isDiskFull recognises a full disk under an apply's error. raft hands the log store's
// error back as a value when it can, but its log cache flattens it into text ("unable to
// store logs within log store, err: %q"), so the text is read too;
// TestIsDiskFull_RaftLogCache runs raft's own code, so a raft upgrade that words it
// otherwise fails a test rather than turning a refused write into an unknown outcome.
func isDiskFull(err error) bool {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return true
	}
	text := err.Error()
	return strings.Contains(text, syscall.ENOSPC.Error()) || strings.Contains(text, syscall.EDQUOT.Error())
}

// call runs one member RPC and maps a failure to a reason-coded error.
func (f *forwarder) call(ctx context.Context, addr string, method byte, payload []byte, idempotent bool) ([]byte, error) {
	p, err := f.rpc.call(ctx, addr, method, payload, idempotent)
	if err != nil {
		return nil, f.callErr(err)
	}
	return p, nil
}

// callErr maps a failed member RPC: a request never sent means the primary is unreachable
// (safe to retry); one sent without an answer has an unknown outcome, also when this
// member's own Close cut it short.
func (f *forwarder) callErr(err error) error {
	ce, ok := errors.AsType[*callError](err)
	if !ok {
		return err // remote error, already coded
	}
	switch {
	case !ce.Sent && (errors.Is(ce.Err, ErrShutdown) || f.life.closing.Load()):
		return shutdownErr()
	case !ce.Sent:
		return reason.Wrap(reason.NoPrimary, fmt.Errorf("reach primary: %w: %w", ErrNoPrimary, err))
	case f.life.closing.Load():
		return reason.Wrap(reason.Timeout, fmt.Errorf("forward to primary, outcome unknown: %w: %w", ErrShutdown, err))
	}
	return reason.Wrap(reason.Timeout, fmt.Errorf("forward to primary, outcome unknown: %w", err))
}

// retryable reports an error after which the request certainly did not take effect and the
// primary may have changed.
func retryable(err error) bool {
	code := reason.Of(err, reason.OK)
	return code == reason.NotPrimary || (code == reason.NoPrimary && errors.Is(err, ErrNoPrimary))
}

// notPrimaryError is a refusal by a member that is not the primary. It names the primary
// that member knows of, when it knows one, so the caller's retry can go straight there.
type notPrimaryError struct {
	leader primary
	err    error
}

func (e *notPrimaryError) Error() string { return e.err.Error() }
func (e *notPrimaryError) Unwrap() error { return e.err }

// notPrimary is this member's refusal of what only the primary may do; cause, if not nil,
// is the not-primary error that says why.
func (f *forwarder) notPrimary(cause error) error {
	if re, ok := cause.(*reason.Error); ok && re.Code == reason.NotPrimary {
		cause = re.Err // the code goes back on below
	}
	if cause == nil {
		cause = ErrNotPrimary
	}
	a, id := f.raft.LeaderWithID()
	p := primary{addr: string(a), id: string(id)}
	if p.id == f.cfg.Name || p.addr == "" {
		p = primary{}
	}
	if p.id != "" {
		cause = fmt.Errorf("%w; the primary is %s at %s", cause, p.id, p.addr)
	}
	return reason.Wrap(reason.NotPrimary, &notPrimaryError{leader: p, err: cause})
}

// hintOf returns the primary named by a not-primary refusal.
func hintOf(err error) (primary, bool) {
	if np, ok := errors.AsType[*notPrimaryError](err); ok && np.leader.id != "" {
		return np.leader, true
	}
	return primary{}, false
}
