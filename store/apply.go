package store

import (
	"errors"
	"fmt"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/mirrorkv/mirrorkv/reason"
)

// Backoff of ApplyBatch while the disk refuses its transaction.
const (
	retryFirst = 50 * time.Millisecond
	retryMax   = 2 * time.Second
)

// pending is an entry of a batch that ApplyBatch will apply: decoded once, applied on every
// attempt of the transaction.
type pending struct {
	at    int // position in the batch and its Result
	index uint64
	cmd   Command
	key   []byte // aliases the entry's data
	err   error  // a decode error, the entry's Result.Err
}

// Apply applies one raft entry; see ApplyBatch.
func (s *Store) Apply(index uint64, data []byte) Result {
	return s.ApplyBatch([]Entry{{Index: index, Data: data}})[0]
}

// ApplyBatch applies committed raft entries in one bbolt transaction and returns one Result
// per entry.
//
// Entries at or below AppliedIndex are skipped with a zero Result: raft replays its log from
// the last snapshot when a member restarts, while the store already holds everything up to
// its applied index. A command that does not decode still advances the applied index, with
// an error wrapping ErrBadCommand in its Result, so the same bad entry is refused the same
// way on every member.
//
// If the transaction fails (a full disk), ApplyBatch does not drop the batch: raft counts
// these entries as applied once it returns, and this member would differ from the group
// forever. It logs the error and retries the whole batch, backing off from 50ms to 2s, until
// the disk accepts it. If Close comes first, every entry that was to be applied gets an
// error wrapping ErrClosed instead, and none of them is applied.
//
// Under write-behind (Options.FlushInterval) ApplyBatch applies to memory and returns; the
// file catches up at the next flush, and a failing flush makes the following ApplyBatch wait
// in the same way.
func (s *Store) ApplyBatch(entries []Entry) []Result {
	if s.flushKick != nil {
		return s.applyBehind(entries)
	}
	out := make([]Result, len(entries))
	s.writeMu.Lock()
	defer s.writeMu.Unlock()

	work, arena := s.decodeBatch(entries)
	if len(work) == 0 {
		return out
	}
	wait := retryFirst
	defer s.stall.Store(nil)
	for {
		err := s.applyOnce(work, arena, out)
		if err == nil {
			if s.stall.Load() != nil {
				s.log.Info("store writes again; the member is applying", "index", work[0].index)
			}
			return out
		}
		if errors.Is(err, ErrClosed) {
			return s.closedResults(work, out)
		}
		err = stallError(fmt.Errorf("apply batch at index %d: %w", work[0].index, err))
		s.stall.Store(&err)
		var ok bool
		if wait, ok = s.backOff(err, wait); !ok {
			return s.closedResults(work, out)
		}
	}
}

// backOff logs the commit the disk refused and waits before the next attempt. It returns the
// wait for the attempt after that, and false if Close came first.
func (s *Store) backOff(err error, wait time.Duration) (time.Duration, bool) {
	s.log.Error("store cannot write: the member stops applying until the disk accepts writes",
		"err", err, "fix", "free space in "+dirOf(s.path), "retry_in", wait)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-s.closing:
		return wait, false
	case <-t.C:
	}
	return min(2*wait, retryMax), true
}

// Stalled returns the error of the transaction ApplyBatch is retrying, and nil when no
// ApplyBatch is waiting for the disk. The error carries reason.DiskFull when the disk is out
// of space (or quota), reason.StorageFail otherwise. While it is not nil the store applies
// nothing: the cluster uses it to hand the primary role over and to refuse what would wait
// for this store.
func (s *Store) Stalled() error {
	if p := s.stall.Load(); p != nil {
		return *p
	}
	return nil
}

// stallError codes the error of a failed apply transaction with its reason.
func stallError(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return reason.Wrap(reason.DiskFull, err)
	}
	return reason.Wrap(reason.StorageFail, err)
}

// decodeBatch picks the entries beyond the applied index and decodes them, and sizes one
// buffer for all the records the batch may write, so that a batch costs one allocation for
// its records rather than one per put.
func (s *Store) decodeBatch(entries []Entry) (work []pending, arena []byte) {
	last := s.applied.Load()
	size := 0
	for i, e := range entries {
		if e.Index <= last {
			continue
		}
		last = e.Index
		cmd, key, err := decodeCommand(e.Data, false)
		if err != nil {
			err = fmt.Errorf("entry %d: %w", e.Index, err)
		}
		if work == nil {
			work = make([]pending, 0, len(entries)-i)
		}
		work = append(work, pending{at: i, index: e.Index, cmd: cmd, key: key, err: err})
		if err == nil && cmd.Op == OpPut {
			size += recordHeader + len(cmd.Value)
		}
		if err == nil && cmd.Op == OpTxn {
			size += cmd.Txn.recordBytes()
		}
	}
	return work, make([]byte, 0, size)
}

func (s *Store) closedResults(work []pending, out []Result) []Result {
	for _, p := range work {
		out[p.at] = Result{Err: fmt.Errorf("apply entry %d: %w", p.index, ErrClosed)}
	}
	return out
}

// applyOnce runs one attempt of the batch's transaction. The caches move only once the
// commit succeeded, so a failed attempt leaves nothing behind and the next one starts over.
func (s *Store) applyOnce(work []pending, arena []byte, out []Result) error {
	var rev, oldest int64
	var crlChanged bool
	var leaseLog []leaseChange
	applied := work[len(work)-1].index
	err := s.commitTx(func(tx *bolt.Tx) error {
		b := batch{
			kv:      tx.Bucket([]byte(bucketKV)),
			members: tx.Bucket([]byte(bucketMembers)),
			crls:    tx.Bucket([]byte(bucketCRLs)),
			rev:     s.revision.Load(),
			arena:   arena[:0],

			leases: tx.Bucket([]byte(bucketLeases)), leaseCount: s.leaseCount(),
		}
		for _, p := range work {
			out[p.at] = b.apply(p)
		}
		rev, crlChanged, leaseLog = b.rev, b.crlChanged, b.leaseLog
		var err error
		if oldest, err = writeChanges(tx, b.changes, b.rev, s.changeRetention); err != nil {
			return err
		}
		return writeMeta(tx, applied, b.rev)
	})
	if err != nil {
		return err
	}
	s.applied.Store(applied)
	s.changesFrom.Store(oldest)
	moved := s.revision.Swap(rev) != rev
	s.noteLeases(leaseLog)
	if crlChanged {
		s.notifyCRL()
	}
	if moved {
		s.notifyChanged()
	}
	return nil
}

// commitTx runs fn in a read-write transaction of the store file and commits it; an error
// from fn or from the commit leaves the file as it was.
func (s *Store) commitTx(fn func(tx *bolt.Tx) error) error {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.db == nil {
		return ErrClosed
	}
	tx, err := s.db.Begin(true)
	if err != nil {
		if errors.Is(err, berrors.ErrDatabaseNotOpen) {
			return ErrClosed
		}
		return fmt.Errorf("begin transaction: %w", err)
	}
	defer func() { _ = tx.Rollback() }() // after a commit it only reports ErrTxClosed
	if err := fn(tx); err != nil {
		return err
	}
	if s.failCommit != nil {
		if err := s.failCommit(); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// writeMeta records, in the transaction that holds the changes, what they bring the file to.
func writeMeta(tx *bolt.Tx, applied uint64, revision int64) error {
	meta := tx.Bucket([]byte(bucketMeta))
	if err := meta.Put([]byte(metaApplied), u64(applied)); err != nil {
		return fmt.Errorf("write applied index: %w", err)
	}
	if err := meta.Put([]byte(metaRevision), u64(uint64(revision))); err != nil {
		return fmt.Errorf("write revision: %w", err)
	}
	if err := meta.Put([]byte(metaSumKey), metaSum(applied, revision)); err != nil {
		return fmt.Errorf("write meta checksum: %w", err)
	}
	return nil
}

// table is a bucket as a batch sees it: a *bolt.Bucket when writing through, a memTable
// under write-behind.
type table interface {
	Get(key []byte) []byte
	Put(key, value []byte) error
	Delete(key []byte) error
}

// batch is the state of one apply transaction.
type batch struct {
	kv, members, crls table
	rev               int64    // store revision so far
	arena             []byte   // backing store of the records written; kept until they are committed
	crlChanged        bool     // a set-crl command applied: Options.OnCRL is due
	changes           []Change // the puts and deletes applied, for the change log (changes.go)

	leases     table         // lease.go
	leaseCount int           // leases held so far
	leaseLog   []leaseChange // what the batch did to leases, for the in-memory table
	revoking   bool          // a revoke deletes its keys: they leave their lease with it
}

// apply applies one command. Its outcome depends only on the command and the state, so every
// member reaches the same Result; an error here fails the command, never the transaction.
func (b *batch) apply(p pending) Result {
	if p.err != nil {
		return Result{Revision: b.rev, Err: p.err}
	}
	c := p.cmd
	switch c.Op {
	case OpPut, OpDelete:
		return b.applyKV(c, p.key)
	case OpSetMember:
		c.Member.PreferredIndex = b.preferredIndex(c.Member.Name) // a record update keeps the preference
		js, err := encodeMember(c.Member)
		if err == nil {
			err = b.members.Put([]byte(c.Member.Name), memberRecord(c.Member.Name, js))
		}
		if err != nil {
			return Result{Revision: b.rev, Err: fmt.Errorf("set member %q: %w", c.Member.Name, err)}
		}
	case OpRemoveMember:
		if err := b.members.Delete([]byte(c.Member.Name)); err != nil {
			return Result{Revision: b.rev, Err: fmt.Errorf("remove member %q: %w", c.Member.Name, err)}
		}
	case OpSetCRL:
		return b.applyCRL(string(p.key), c.Value)
	case OpTxn:
		return b.applyTxn(c.Txn)
	case OpLeaseGrant:
		return b.applyLeaseGrant(c, p.index)
	case OpLeaseKeepAlive:
		return b.applyLeaseKeepAlive(c, p.index)
	case OpLeaseRevoke:
		return b.applyLeaseRevoke(c)
	case OpSetPreferred:
		return b.applyPreferred(string(p.key), c.Member.Name, p.index)
	}
	return Result{Revision: b.rev}
}

func (b *batch) applyKV(c Command, key []byte) Result {
	var cur, created int64
	if old := b.kv.Get(key); old != nil {
		var err error
		if cur, created, _, err = splitRecord(key, old); err != nil {
			return Result{Revision: b.rev, Err: fmt.Errorf("apply to key %q: %w", key, err)}
		}
	}
	if c.HasIf && cur != c.IfRevision {
		return Result{Revision: b.rev, Err: &PreconditionError{Key: string(key), Want: c.IfRevision, Current: cur}}
	}
	if err := b.checkAttach(key, c.Lease); err != nil {
		return Result{Revision: b.rev, Err: err}
	}
	if c.Op == OpDelete {
		if cur == 0 {
			return Result{Revision: b.rev, Err: ErrNotFound}
		}
		if err := b.kv.Delete(key); err != nil {
			return Result{Revision: b.rev, Err: fmt.Errorf("delete key %q: %w", key, err)}
		}
		if err := b.detach(key); err != nil {
			return Result{Revision: b.rev, Err: err}
		}
		b.rev++
		b.logChange(key, b.rev, 0, nil, true)
		return Result{Revision: b.rev}
	}
	rev := b.rev + 1
	if cur == 0 {
		created = rev
	}
	start := len(b.arena)
	b.arena = appendRecord(b.arena, key, rev, created, c.Value)
	if err := b.kv.Put(key, b.arena[start:len(b.arena):len(b.arena)]); err != nil {
		return Result{Revision: b.rev, Err: fmt.Errorf("put key %q: %w", key, err)}
	}
	if err := b.attach(key, c.Lease); err != nil {
		return Result{Revision: b.rev, Err: err}
	}
	b.rev = rev
	b.logChange(key, rev, created, b.arena[start+recordHeader:len(b.arena):len(b.arena)], false)
	return Result{Revision: rev}
}

// applyPreferred withdraws the preference of the member named old, if it is a member, and
// gives it to the member named name, at the command's raft index. A name that is not a
// member fails the command with ErrNotFound and changes nothing.
func (b *batch) applyPreferred(old, name string, index uint64) Result {
	if name != "" && b.members.Get([]byte(name)) == nil {
		return Result{Revision: b.rev, Err: fmt.Errorf("prefer member %q: %w", name, ErrNotFound)}
	}
	for _, set := range []struct {
		name  string
		index uint64
	}{{old, 0}, {name, index}} {
		if set.name == "" || b.members.Get([]byte(set.name)) == nil {
			continue
		}
		if err := b.setPreferredIndex(set.name, set.index); err != nil {
			return Result{Revision: b.rev, Err: fmt.Errorf("prefer member %q: %w", name, err)}
		}
	}
	return Result{Revision: b.rev}
}

func (b *batch) setPreferredIndex(name string, index uint64) error {
	m, err := b.member(name)
	if err != nil {
		return err
	}
	m.PreferredIndex = index
	js, err := encodeMember(m)
	if err != nil {
		return err
	}
	return b.members.Put([]byte(name), memberRecord(name, js))
}

// member reads name's record as this batch sees it.
func (b *batch) member(name string) (Member, error) {
	rec := b.members.Get([]byte(name))
	js, err := memberJSON([]byte(name), rec)
	if err != nil {
		return Member{}, err
	}
	return decodeMember(js)
}

// preferredIndex is the PreferredIndex of name's record, 0 when it has none or is unreadable.
func (b *batch) preferredIndex(name string) uint64 {
	if b.members.Get([]byte(name)) == nil {
		return 0
	}
	m, err := b.member(name)
	if err != nil {
		return 0
	}
	return m.PreferredIndex
}
