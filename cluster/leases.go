package cluster

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/mirrorkv/mirrorkv/store"
)

// Lease expiry. Only the primary decides that a lease expired, by its own monotonic clock,
// and commits the revoke through raft like any write, so every member deletes the same keys
// at the same revision. A new primary does not know when the old one last heard a
// keep-alive, so it gives every lease a fresh TTL from the moment it took over: a lease may
// live up to one TTL longer across a failover, never shorter. Keep-alives are raft writes
// (store.OpLeaseKeepAlive), which is what lets any member take them and forward them, and
// what tells the primary of them: its store notes when it applied each one.

// LeaseStore is what the expiry needs of the store; *store.Store implements it. A store
// without it (a test's) has no leases to expire.
type LeaseStore interface {
	// Leases returns every lease with the time this member applied its grant or last
	// keep-alive.
	Leases() []store.Lease
}

// leaseKeeper expires leases while this member is the primary.
type leaseKeeper struct {
	list func() []store.Lease
	// revoke commits the revoke of lease id for expiry, conditional on its touched index.
	revoke  func(ctx context.Context, id, touched int64) error
	every   time.Duration // how often the deadlines are checked
	primary func() bool   // whether this member still leads in the term it started in
	expired func()        // counts a lease revoked for expiry; may be nil
	log     *slog.Logger
}

// run checks the leases every k.every until ctx ends or the member no longer leads. Every
// lease's TTL counts from the later of the run's start and the lease's last refresh, so a
// lease expires between TTL and TTL + every after it, plus the time the revoke takes to
// commit.
func (k *leaseKeeper) run(ctx context.Context) {
	start := time.Now()
	tick := time.NewTicker(k.every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if !k.primary() {
			return
		}
		k.expire(ctx, start)
	}
}

// maxRevokesInFlight bounds the revokes one check proposes at once: many leases that lapse
// together (clients gone with a network) go in a few raft batches, not one commit each.
const maxRevokesInFlight = 64

// expire revokes every lease whose TTL passed, and returns once every revoke is answered,
// so that the next check does not propose one again meanwhile.
func (k *leaseKeeper) expire(ctx context.Context, start time.Time) {
	now := time.Now()
	sem := make(chan struct{}, maxRevokesInFlight)
	var wg sync.WaitGroup
	for _, l := range k.list() {
		from := l.Refreshed
		if from.Before(start) {
			from = start
		}
		if now.Sub(from) < time.Duration(l.TTL)*time.Second {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			k.revokeExpired(ctx, l)
		})
	}
	wg.Wait()
}

// revokeExpired commits the revoke of l for expiry. A failure is retried at the next check.
func (k *leaseKeeper) revokeExpired(ctx context.Context, l store.Lease) {
	err := k.revoke(ctx, l.ID, l.Touched)
	if _, kept := errors.AsType[*store.PreconditionError](err); kept || errors.Is(err, store.ErrLeaseNotFound) {
		return // kept alive or revoked meanwhile
	}
	if err != nil {
		if ctx.Err() == nil {
			k.log.Warn("revoke expired lease; retrying at the next check", "lease", l.ID, "err", err)
		}
		return
	}
	if k.expired != nil {
		k.expired()
	}
	k.log.Info("lease expired; its keys are deleted", "lease", l.ID, "ttl_seconds", l.TTL)
}

// leaseLoop is the running keeper of this member, if it leads.
type leaseLoop struct {
	mu     sync.Mutex
	cancel context.CancelFunc
}

// startLeases starts the lease expiry for the term this member just began to lead in,
// stopping the one of an earlier term. The store must reflect every entry committed before
// the term's first one, so that no lease granted under the last primary is missing.
func (c *Cluster) startLeases(term uint64) {
	ls, ok := c.st.(LeaseStore)
	if !ok {
		return
	}
	every := max(c.cfg.HeartbeatTimeout/2, 5*time.Millisecond)
	k := &leaseKeeper{
		list:  ls.Leases,
		every: every,
		primary: func() bool {
			return c.isLeader() && c.raft.CurrentTerm() == term
		},
		expired: c.metrics.leasesExpired.Inc,
		log:     c.log.With("part", "leases"),
		revoke: func(ctx context.Context, id, touched int64) error {
			cmd := store.Command{Op: store.OpLeaseRevoke, Lease: id, HasIf: true, IfRevision: touched}
			res, err := c.fwd.applyLocal(ctx, store.EncodeCommand(cmd))
			if err == nil {
				err = res.Err
			}
			return err
		},
	}
	ctx, cancel := context.WithCancel(c.life.ctx)
	c.leases.mu.Lock()
	if c.leases.cancel != nil {
		c.leases.cancel()
	}
	c.leases.cancel = cancel
	c.leases.mu.Unlock()
	c.wg.Go(func() {
		defer cancel()
		k.run(ctx)
	})
}

// maxLeaseKeyBytes bounds the keys a forwarded revoke's result carries back, well within
// maxFrame; past it the result carries none.
const maxLeaseKeyBytes = 16 << 20

// Lease results on the member channel: the result kind resultLease, the lease's ID, TTL
// and touched index, and the keys a revoke deleted.
func encodeLeaseResult(e *enc, l *store.Lease) {
	e.b = append(e.b, resultLease)
	e.varint(l.ID)
	e.varint(l.TTL)
	e.varint(l.Touched)
	size := 0
	for _, k := range l.Keys {
		size += len(k)
	}
	if size > maxLeaseKeyBytes {
		e.uvarint(0)
		return
	}
	e.uvarint(uint64(len(l.Keys)))
	for _, k := range l.Keys {
		e.str(k)
	}
}

func decodeLeaseResult(d *dec) *store.Lease {
	l := &store.Lease{ID: d.varint(), TTL: d.varint(), Touched: d.varint()}
	n := d.count(1)
	for range n {
		l.Keys = append(l.Keys, d.str())
	}
	return l
}

// leaseErrs are the lease errors a forwarded result carries, by result kind.
var leaseErrs = map[byte]error{
	resultLeaseNotFound: store.ErrLeaseNotFound,
	resultTooManyLeases: store.ErrTooManyLeases,
	resultLeaseFull:     store.ErrLeaseFull,
}

// leaseErrKind is the result kind of a lease error, 0 for any other error.
func leaseErrKind(err error) byte {
	for kind, sentinel := range leaseErrs {
		if errors.Is(err, sentinel) {
			return kind
		}
	}
	return 0
}
