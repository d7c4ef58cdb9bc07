package cluster

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	raftwal "github.com/mirrorkv/mirrorkv/internal/raftwal"
	"github.com/mirrorkv/mirrorkv/internal/raftwal/metadb"
	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/store"
	"github.com/mirrorkv/mirrorkv/wire"
)

// walSegmentSize is the size of one raft-wal segment file, preallocated.
const walSegmentSize = 16 << 20

// Cluster is one member of a replicated group: a raft node whose FSM is the store, the member
// RPC service beside it on the member channel, and the membership and status built on both.
// Cluster owns the lifecycle (New, Close, the background work); forwarding, membership and
// status are parts of their own, each over the few raft methods it needs.
type Cluster struct {
	cfg  Config
	log  *slog.Logger
	st   StateMachine
	auth Authoriser

	fsm      *fsm
	raft     *raft.Raft
	trans    *raft.NetworkTransport
	logStore io.Closer
	dirLock  io.Closer // held from New to the end of Close
	mux      *mux
	rpc      *rpcClient
	metrics  *metrics
	observer *raft.Observer

	fwd *forwarder      // apply and read index on the primary
	mem *membership     // membership changes, the authoriser feed, join
	rep *statusReporter // Self, Status, roles
	pre *preferrer      // moves the primary role to the preferred member

	leases leaseLoop // lease expiry while this member leads (leases.go)

	life         *life
	wg           sync.WaitGroup
	membersDirty chan struct{}
	closeOnce    sync.Once
	closeErr     error

	idents atomic.Pointer[identities] // who each member DN may speak for in raft
	claims claimLog
}

// New starts a member: it opens the raft log in cfg.Dir, bootstraps a new group when asked,
// and serves raft and the member RPCs on nw, which it owns from now on.
func New(cfg Config, st StateMachine, nw Network, auth Authoriser, log *slog.Logger) (*Cluster, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("validate cluster config: %w", err)
	}
	if st == nil || nw == nil || auth == nil || log == nil {
		return nil, errors.New("create cluster: store, network, authoriser and logger are required")
	}
	cfg = cfg.withDefaults()
	c := &Cluster{cfg: cfg, log: log, st: st, auth: auth, life: newLife(),
		membersDirty: make(chan struct{}, 1)}
	c.fsm = newFSM(st, isMemberCommand, c.markMembersDirty)
	ids := identitiesOf(selfMember(cfg), nil)
	c.idents.Store(&ids)
	c.claims.last = map[string]time.Time{}
	c.mux = newMux(nw, cfg.Advertise, log, c.serveRPC, c.checkClaim)
	c.rpc = newRPCClient(c.mux, cfg.TransportTimeout, c.rpcDuration)
	if err := c.startRaft(); err != nil {
		c.life.cancel()
		c.fsm.close()
		_ = c.mux.close()
		return nil, err
	}
	c.metrics = newMetrics(c, c.cfg.Registerer)
	c.newParts()
	var err error
	if c.rep.recovery, err = readRecovery(cfg.Dir); err != nil {
		c.log.Warn("status will not show the last disaster recovery", "err", err)
	}
	c.startBackground()
	c.mux.serve()
	return c, nil
}

// newParts builds forwarding, membership and status over the running raft.
func (c *Cluster) newParts() {
	c.fwd = newForwarder(c.cfg, c.raft, c.st, c.fsm, c.rpc, c.life, c.metrics)
	c.rep = &statusReporter{cfg: c.cfg, raft: c.raft, fsm: c.fsm, st: c.st, rpc: c.rpc, life: c.life,
		leaderChanges: c.metrics.leaderChanges, flush: c.rpc.flush,
		becamePrimary: func() { c.wg.Go(c.onLeader) },
		role:          wire.RoleUnsync, prevRole: wire.RoleUnsync}
	c.mem = &membership{cfg: c.cfg, log: c.log, raft: c.raft, st: c.st, fwd: c.fwd, peers: c.rep,
		rpc: c.rpc, auth: c.auth, life: c.life, idents: &c.idents, dirty: c.membersDirty,
		drop: func(addr string) {
			c.rpc.drop(addr)
			c.mux.closeTo(addr)
		}}
	c.pre = &preferrer{cfg: c.cfg, log: c.log, raft: c.raft, st: c.st, peers: c.rep, life: c.life,
		transfer: c.mem.transferLocal}
}

func (c *Cluster) startRaft() (err error) {
	cfg := c.cfg
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return fmt.Errorf("create raft directory: %w", err)
	}
	lock, err := lockDir(cfg.Dir)
	if err != nil {
		return err
	}
	var closers []io.Closer
	defer func() {
		if err != nil {
			slices.Reverse(closers)
			for _, cl := range closers {
				_ = cl.Close()
			}
			_ = lock.Close()
		}
	}()
	hlog := newHCLog(c.log.With("component", "raft"))
	if c.cfg.LogStore, err = logStoreFor(cfg.LogStore, cfg.Dir); err != nil {
		return err
	}
	logs, stable, closer, err := openLogStore(c.cfg.LogStore, cfg.Dir, hlog)
	if err != nil {
		return err
	}
	closers = append(closers, closer)
	snaps, err := openSnapshotStore(cfg.Dir, 2, hlog) // 0700 directories, no file open to others
	if err != nil {
		return err
	}
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: &streamLayer{m: c.mux, closed: make(chan struct{})}, MaxPool: cfg.MaxPool,
		Timeout: cfg.TransportTimeout, Logger: hlog,
		// One append in flight per follower: raft's pipelined replication deadlocks after a
		// follower refuses an append (a full disk, a log mismatch): the decoder stops reading
		// responses while the sender may still queue one more request, and replication to that
		// follower stops for good while heartbeats keep it from calling an election. Found by
		// e2e TestFault_DiskFull; docs/cluster.md.
		MaxRPCsInFlight: 1})
	closers = append(closers, trans)
	rc := c.raftConfig(hlog)
	if rc.NoSnapshotRestoreOnStart, err = c.storeCoversSnapshot(snaps); err != nil {
		return err
	}
	if cfg.Bootstrap {
		if err := c.bootstrap(rc, logs, stable, snaps, trans); err != nil {
			return err
		}
	}
	r, err := raft.NewRaft(rc, c.fsm, logs, stable, snapshotStore{snaps, c.fsm}, trans)
	if err != nil {
		return fmt.Errorf("start raft: %w", err)
	}
	c.raft, c.trans, c.logStore, c.dirLock = r, trans, closer, lock
	return nil
}

func (c *Cluster) raftConfig(hlog hclog.Logger) *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(c.cfg.Name)
	rc.Logger = hlog
	rc.HeartbeatTimeout = c.cfg.HeartbeatTimeout
	rc.ElectionTimeout = c.cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = c.cfg.LeaderLeaseTimeout
	rc.CommitTimeout = c.cfg.CommitTimeout
	rc.SnapshotThreshold = c.cfg.SnapshotThreshold
	rc.SnapshotInterval = c.cfg.SnapshotInterval
	rc.TrailingLogs = c.cfg.TrailingLogs
	rc.MaxAppendEntries = c.cfg.MaxAppendEntries
	// BatchApplyCh stays off: with it, raft buffers apply futures in a channel that nothing
	// drains at shutdown, so an Apply enqueued as raft stops never returns (seen as a hung
	// Close). Without it the leader loop still group-commits every writer waiting to send.
	rc.BatchApplyCh = false
	// The store is on disk and skips entries it already has: restoring the last snapshot
	// at start would wipe it only to replay everything. startRaft turns the restore back
	// on when the store is behind the last snapshot.
	rc.NoSnapshotRestoreOnStart = true
	return rc
}

// storeCoversSnapshot reports whether the store already reflects the newest snapshot, so
// that raft may skip restoring it at start. Raft then replays only the entries after the
// snapshot, so a store behind it (lost, replaced by an older backup, or not synced before
// a crash) must be restored from it, or the entries in between would never reach it.
func (c *Cluster) storeCoversSnapshot(snaps raft.SnapshotStore) (bool, error) {
	metas, err := snaps.List()
	if err != nil {
		return false, fmt.Errorf("list snapshots in %s: %w", c.cfg.Dir, err)
	}
	if len(metas) == 0 {
		return true, nil
	}
	applied := c.st.AppliedIndex()
	if applied >= metas[0].Index {
		return true, nil
	}
	c.log.Warn("store is behind the newest raft snapshot; restoring the store from it",
		"store_applied", applied, "snapshot_index", metas[0].Index, "snapshot", metas[0].ID)
	return false, nil
}

// bootstrap writes a one-voter configuration of this member, unless Dir already has state.
func (c *Cluster) bootstrap(rc *raft.Config, logs raft.LogStore, stable raft.StableStore, snaps raft.SnapshotStore, trans raft.Transport) error {
	has, err := raft.HasExistingState(logs, stable, snaps)
	if err != nil {
		return fmt.Errorf("inspect raft state in %s: %w", c.cfg.Dir, err)
	}
	if has {
		return nil
	}
	conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter,
		ID: rc.LocalID, Address: raft.ServerAddress(c.cfg.Advertise)}}}
	if err := raft.BootstrapCluster(rc, logs, stable, snaps, trans, conf); err != nil {
		return fmt.Errorf("bootstrap group: %w", err)
	}
	return nil
}

func openLogStore(kind, dir string, hlog hclog.Logger) (raft.LogStore, raft.StableStore, io.Closer, error) {
	switch kind {
	case LogStoreWAL:
		wdir := filepath.Join(dir, "wal")
		if err := os.MkdirAll(wdir, 0o700); err != nil {
			return nil, nil, nil, fmt.Errorf("create raft wal directory: %w", err)
		}
		// raft-wal's Close leaves the bolt file of its metadata (segment list and stable
		// store) open, and with it the file lock: reopening the same directory in this
		// process would then block forever in bbolt.Open. Own the meta store, close it.
		meta := &metadb.BoltMetaDB{}
		w, err := raftwal.Open(wdir, raftwal.WithSegmentSize(walSegmentSize),
			raftwal.WithMetaStore(meta), raftwal.WithLogger(hlog.Named("wal")))
		if err != nil {
			_ = meta.Close()
			return nil, nil, nil, fmt.Errorf("open raft wal in %s: %w", dir, err)
		}
		wc := walCloser{w, meta}
		cached, err := raft.NewLogCache(1024, w)
		if err != nil {
			_ = wc.Close()
			return nil, nil, nil, fmt.Errorf("create raft log cache: %w", err)
		}
		return cached, w, wc, nil
	default:
		path := filepath.Join(dir, "raft.db")
		// A bbolt file cut short crashes bolt.Open with SIGBUS; refuse it with advice instead.
		if err := store.CheckBoltFile(path); err != nil {
			return nil, nil, nil, reason.Wrap(reason.Corrupt, fmt.Errorf("raft log %s is damaged: %w; move the raft directory %s aside and restart the member with --join HOST:PORT of a running member", path, err, dir))
		}
		b, err := openBoltLog(path)
		if err != nil {
			return nil, nil, nil, reason.Wrap(reason.Corrupt, fmt.Errorf("open raft log %s: %w; if it is damaged, move the raft directory %s aside and restart the member with --join HOST:PORT of a running member", path, err, dir))
		}
		cached, err := raft.NewLogCache(1024, b)
		if err != nil {
			b.Close()
			return nil, nil, nil, fmt.Errorf("create raft log cache: %w", err)
		}
		return cached, b, b, nil
	}
}

// logStoreFor picks the log store of the raft directory dir: the one its files show, which a
// requested one must match (starting on the other would look like a new member with an empty
// log), or the requested one, DefaultLogStore if none, for a new directory.
func logStoreFor(requested, dir string) (string, error) {
	existing := ""
	if _, err := os.Stat(filepath.Join(dir, "raft.db")); err == nil {
		existing = LogStoreBolt
	}
	if ents, err := os.ReadDir(filepath.Join(dir, "wal")); err == nil && len(ents) > 0 {
		if existing != "" {
			return "", fmt.Errorf("raft directory %s holds both a bolt log (raft.db) and a wal log (wal/): move aside the one the member was not started with", dir)
		}
		existing = LogStoreWAL
	}
	switch {
	case existing == "":
		return cmp.Or(requested, DefaultLogStore), nil
	case requested == "" || requested == existing:
		return existing, nil
	default:
		return "", fmt.Errorf("raft directory %s holds a %s log, not %s: start the member with --log-store %s or without --log-store (a member's log store cannot be switched in place)", dir, existing, requested, existing)
	}
}

// LogStore is the raft log store the member runs on.
func (c *Cluster) LogStore() string { return c.cfg.LogStore }

// walCloser closes a raft-wal log and then the meta store it leaves open.
type walCloser struct {
	w    *raftwal.WAL
	meta *metadb.BoltMetaDB
}

func (c walCloser) Close() error {
	return errors.Join(c.w.Close(), c.meta.Close())
}

// startBackground starts the role observer, the authoriser feed, the stall watcher and the
// join.
func (c *Cluster) startBackground() {
	ch := make(chan raft.Observation, 64)
	c.observer = raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.LeaderObservation, raft.RaftState:
			return true
		}
		return false
	})
	c.raft.RegisterObserver(c.observer)
	c.wg.Go(func() { c.rep.watchRole(ch) })
	c.wg.Go(c.mem.watchMembers)
	c.wg.Go(c.watchStall)
	c.wg.Go(c.pre.run)
	if len(c.cfg.Join) > 0 {
		c.wg.Go(c.mem.join)
	}
	c.markMembersDirty()
}

// Close shuts raft down, closes the member channel and every conn, and waits for the
// background work. Callers blocked in Apply, ReadIndex or an admin operation return with
// reason.Shutdown (or reason.Timeout for a forwarded write whose outcome is unknown). It is
// safe to call more than once, also concurrently; every call returns the first one's error.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() {
		c.life.end() // wakes every caller waiting on this member
		c.raft.DeregisterObserver(c.observer)
		var errs []error
		if err := c.raft.Shutdown().Error(); err != nil {
			errs = append(errs, fmt.Errorf("shut down raft: %w", err))
		}
		c.fsm.close() // raft no longer applies: commit what it handed over
		c.fwd.reads.close()
		c.rpc.close()
		if err := c.trans.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close raft transport: %w", err))
		}
		if err := c.mux.close(); err != nil {
			errs = append(errs, err)
		}
		c.wg.Wait()
		if err := c.logStore.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close raft log: %w", err))
		}
		_ = c.dirLock.Close()
		c.metrics.unregister()
		c.closeErr = errors.Join(errs...)
	})
	return c.closeErr
}

// selfMember is a member's own record, applied when it first leads a new group.
func selfMember(cfg Config) store.Member {
	return store.Member{Name: cfg.Name, MemberAddr: cfg.Advertise, ClientURL: cfg.ClientURL, DN: cfg.DN}
}

// isLeader reports whether this member is the raft leader right now.
func (c *Cluster) isLeader() bool { return c.raft.State() == raft.Leader }

// markMembersDirty has the membership part refresh the authoriser. The FSM calls it from
// the start of raft on, before the part exists, so it signals the channel the part reads.
func (c *Cluster) markMembersDirty() { signal(c.membersDirty) }

// onLeader commits the new primary's first entry: its own member record if the group has
// none yet (the bootstrap member), a no-op otherwise. Until then read index waits, and only
// then does the lease expiry start, each lease with a fresh TTL.
func (c *Cluster) onLeader() {
	term := c.raft.CurrentTerm()
	cmd := store.Command{Op: store.OpNoop}
	if _, err := memberNamed(c.st, c.cfg.Name); err != nil {
		cmd = store.Command{Op: store.OpSetMember, Member: selfMember(c.cfg)}
	}
	res, err := c.fwd.applyLocal(c.life.ctx, store.EncodeCommand(cmd))
	if err == nil {
		err = res.Err
	}
	if err != nil {
		c.log.Debug("commit first entry as primary", "err", err)
		return
	}
	c.fwd.readyTerm.Store(term)
	c.markMembersDirty()
	c.startLeases(term)
}

// openBoltLog opens the bolt raft log; bbolt panics on some damage instead of returning an
// error, and that becomes an error here.
func openBoltLog(path string) (_ *raftboltdb.BoltStore, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("bbolt: %v", r)
		}
	}()
	return raftboltdb.New(raftboltdb.Options{Path: path})
}

// Apply commits cmd through the primary and returns the store's result: directly on the
// primary, forwarded over the member channel elsewhere. A forward is retried once when the
// primary changed before the command was sent. An error coded reason.Timeout or
// reason.LeadershipLost leaves the outcome unknown.
func (c *Cluster) Apply(ctx context.Context, cmd store.Command) (store.Result, error) {
	return c.fwd.apply(ctx, cmd)
}

// ReadIndex returns once the local store reflects every write committed before the call, so
// a read that follows is linearizable. The primary confirms its leadership with one round of
// heartbeats shared by every read that arrives meanwhile; another member asks the primary
// for that index and waits until it has applied it. A member cut off from the majority gets
// an error, never a stale answer.
//
// A member whose store is stalled (a full disk) refuses at once: its store cannot catch up.
func (c *Cluster) ReadIndex(ctx context.Context) error { return c.fwd.readIndex(ctx) }

// Members returns the authorised members as this member's store has them.
func (c *Cluster) Members(ctx context.Context) ([]wire.Member, error) { return c.mem.list() }

// AddMember authorises m's DN on the primary, then adds it to raft as a non-voter; a
// failover member (not Async) becomes a voter once it has caught up, so that a slow or
// broken newcomer never counts towards the quorum. Like every admin operation it runs on
// the primary only: elsewhere it is refused with reason.NotPrimary, naming the primary.
func (c *Cluster) AddMember(ctx context.Context, m wire.Member) error { return c.mem.add(ctx, m) }

// Promote turns an async member into a failover member once it has caught up.
func (c *Cluster) Promote(ctx context.Context, name string) error { return c.mem.promote(ctx, name) }

// RemoveMember takes name out of raft and then withdraws its authorisation, so that every
// member's channel drops it. The primary does not remove itself: it hands the primary role
// to another failover member first, and that one removes it.
func (c *Cluster) RemoveMember(ctx context.Context, name string) error {
	return c.mem.remove(ctx, name)
}

// TransferLeadership hands the primary role to the voter named to, or to the most
// up-to-date voter when to is empty.
func (c *Cluster) TransferLeadership(ctx context.Context, to string) error {
	return c.mem.transfer(ctx, to)
}

// Prefer makes name the preferred primary, or withdraws the preference when name is empty.
// While the preferred member is a failover member in sync, the primary hands it the role
// after a hold-down; otherwise any failover member may lead. It runs on the primary only.
func (c *Cluster) Prefer(ctx context.Context, name string) error { return c.mem.prefer(ctx, name) }

// PrimaryURL is the client URL of the primary as this member knows it, or "".
func (c *Cluster) PrimaryURL() string { return c.mem.primaryURL() }

// Status is this member's view of the group. Every member is asked for its own view
// concurrently, under StatusTimeout; one that does not answer is UNSYNC, unreachable.
func (c *Cluster) Status(ctx context.Context) (wire.Status, error) { return c.rep.status(ctx) }
