package store

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Write-behind. With Options.FlushInterval set, ApplyBatch applies to memory and returns;
// the flusher commits what accumulated to the file in one transaction at most FlushInterval
// later. The file's meta/applied moves in the same transaction as the changes it covers, so
// the file is always some consistent earlier state, and a member that crashes replays the
// rest from its raft log (ApplyBatch skips what the file already holds). The caller must
// keep every entry beyond the file's applied index in that log; Snapshot commits everything
// first, so a raft log compacted up to a snapshot's index never loses one.
//
// Changes live in two layers: active, which ApplyBatch writes, and flushing, the layer a
// flush is committing (it stays until a commit succeeds). Reads look in active, then
// flushing, then the file.

// Bounds of the changes held in memory.
const (
	// flushSoonBytes and flushSoonEntries wake the flusher before its interval is up.
	flushSoonBytes   = 4 << 20
	flushSoonEntries = 8192
	// maxPendingBytes and maxPendingEntries make ApplyBatch wait for a flush, so a disk
	// that is slower than the writes (or refuses them) bounds the memory used.
	maxPendingBytes   = 64 << 20
	maxPendingEntries = 65536
)

// overlay is a layer of applied changes not yet in the file.
type overlay struct {
	kv       map[string][]byte // key -> record; nil: deleted
	members  map[string][]byte // member name -> JSON; nil: removed
	crls     map[string][]byte // PORT/ISSUER -> CRL record
	leases   map[string][]byte // lease records (lease.go)
	changes  []Change          // the change log's new records, in revision order (changes.go)
	applied  uint64
	revision int64
	dirty    bool // something was applied, if only the index moved
	bytes    int  // keys and records held, for the flush triggers
	entries  int
}

func newOverlay() *overlay {
	return &overlay{kv: map[string][]byte{}, members: map[string][]byte{}, crls: map[string][]byte{}, leases: map[string][]byte{}}
}

// table is the map of o that holds bucket's changes.
func (o *overlay) table(bucket string) map[string][]byte {
	switch bucket {
	case bucketMembers:
		return o.members
	case bucketCRLs:
		return o.crls
	case bucketLeases:
		return o.leases
	}
	return o.kv
}

// layers returns the layers a read looks in, newest first. ovMu must be held.
func (s *Store) layers() [2]*overlay { return [2]*overlay{s.active, s.flushing} }

// pendingRecord looks key of bucket up in memory: rec is the record (nil when the key was
// deleted) and ok reports whether memory knows the key at all.
func (s *Store) pendingRecord(key, bucket string) (rec []byte, ok bool) {
	s.ovMu.RLock()
	defer s.ovMu.RUnlock()
	for _, o := range s.layers() {
		if o == nil {
			continue
		}
		if rec, ok := o.table(bucket)[key]; ok {
			return rec, true
		}
	}
	return nil, false
}

// pendingRange returns the changes in memory to keys that start with prefix and are at or
// after seek, newest layer winning, in key order. ovMu must be held.
func (s *Store) pendingRange(prefix, seek string) []pendingKV {
	seen := map[string]bool{}
	var out []pendingKV
	for _, o := range s.layers() {
		if o == nil {
			continue
		}
		for k, rec := range o.kv {
			if k >= seek && strings.HasPrefix(k, prefix) && !seen[k] {
				seen[k] = true
				out = append(out, pendingKV{key: k, rec: rec})
			}
		}
	}
	slices.SortFunc(out, func(a, b pendingKV) int { return strings.Compare(a.key, b.key) })
	return out
}

type pendingKV struct {
	key string
	rec []byte // nil: deleted
}

// pendingTable returns the changes in memory to bucket (members or CRLs), newest layer
// winning. ovMu must be held.
func (s *Store) pendingTable(bucket string) map[string][]byte {
	out := map[string][]byte{}
	for _, o := range s.layers() {
		if o == nil {
			continue
		}
		for name, v := range o.table(bucket) {
			if _, ok := out[name]; !ok {
				out[name] = v
			}
		}
	}
	return out
}

// viewWithMemory runs fn in a read transaction of the file that begins while mem reads
// memory (holding ovMu), so that the two make one state: no layer can be swapped, committed
// and dropped in between, which would let a read of many keys mix an older memory with a
// newer file. mem must not take ovMu itself.
func (s *Store) viewWithMemory(mem func(), fn func(tx *bolt.Tx) error) error {
	s.dbMu.RLock() // before ovMu, as Restore's swap takes them
	defer s.dbMu.RUnlock()
	if s.db == nil {
		return ErrClosed
	}
	s.ovMu.RLock()
	tx, err := s.db.Begin(false)
	if err == nil {
		mem()
	}
	s.ovMu.RUnlock()
	if err != nil {
		return fmt.Errorf("begin read transaction: %w", err)
	}
	defer func() { _ = tx.Rollback() }() // a read transaction has nothing to roll back
	return fn(tx)
}

// memTable is a batch's view of one bucket under write-behind: reads look in the batch's
// own changes, then in memory, then in the file; writes are staged and join the active layer
// when the batch ends, so that readers see whole batches as they would see transactions.
// Only ApplyBatch uses it, holding writeMu, so the layers cannot be swapped under it.
type memTable struct {
	s      *Store
	bucket string
	staged map[string][]byte
}

func newMemTable(s *Store, bucket string) *memTable {
	return &memTable{s: s, bucket: bucket, staged: map[string][]byte{}}
}

func (t *memTable) Get(key []byte) []byte {
	if rec, ok := t.staged[string(key)]; ok {
		return rec
	}
	if rec, ok := t.s.pendingRecord(string(key), t.bucket); ok {
		return rec
	}
	// Not in memory, so a flush running now does not touch it: the file has its value.
	// The transaction starts after the lookup above, so it sees any flush that ended since.
	var rec []byte
	_ = t.s.view(func(tx *bolt.Tx) error {
		if v := tx.Bucket([]byte(t.bucket)).Get(key); v != nil {
			rec = bytes.Clone(v)
		}
		return nil
	})
	return rec
}

func (t *memTable) Put(key, value []byte) error {
	t.staged[string(key)] = value
	return nil
}

func (t *memTable) Delete(key []byte) error {
	t.staged[string(key)] = nil
	return nil
}

// publish moves the staged changes into the active layer. ovMu must be held.
func (t *memTable) publish(a *overlay) {
	m := a.table(t.bucket)
	for k, v := range t.staged {
		m[k] = v
		a.bytes += len(k) + len(v)
		a.entries++
	}
}

// applyBehind is ApplyBatch under write-behind.
func (s *Store) applyBehind(entries []Entry) []Result {
	out := make([]Result, len(entries))
	// Wait for room before taking writeMu: the flush that makes room needs it to swap layers.
	if err := s.waitForRoom(); err != nil {
		s.writeMu.Lock()
		defer s.writeMu.Unlock()
		work, _ := s.decodeBatch(entries)
		return s.closedResults(work, out)
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	work, arena := s.decodeBatch(entries)
	if len(work) == 0 {
		return out
	}
	if s.closed() {
		return s.closedResults(work, out)
	}
	kv, members, crls := newMemTable(s, bucketKV), newMemTable(s, bucketMembers), newMemTable(s, bucketCRLs)
	leases := newMemTable(s, bucketLeases)
	b := batch{kv: kv, members: members, crls: crls, rev: s.revision.Load(), arena: arena,
		leases: leases, leaseCount: s.leaseCount()}
	for _, p := range work {
		out[p.at] = b.apply(p)
	}
	applied := work[len(work)-1].index
	s.ovMu.Lock()
	a := s.active
	kv.publish(a)
	members.publish(a)
	crls.publish(a)
	leases.publish(a)
	sortChanges(b.changes)
	a.changes = append(a.changes, b.changes...)
	s.publishChanges()
	a.applied, a.revision, a.dirty = applied, b.rev, true
	soon := a.bytes >= flushSoonBytes || a.entries >= flushSoonEntries
	s.ovMu.Unlock()
	s.applied.Store(applied)
	moved := s.revision.Swap(b.rev) != b.rev
	s.noteLeases(b.leaseLog)
	if b.crlChanged {
		s.notifyCRL()
	}
	if moved {
		s.notifyChanged()
	}
	if soon {
		s.kickFlush()
	}
	return out
}

// waitForRoom returns once the active layer is under its bounds and no flush is failing, or
// ErrClosed once Close has begun.
func (s *Store) waitForRoom() error {
	for {
		s.ovMu.RLock()
		full := s.active.bytes >= maxPendingBytes || s.active.entries >= maxPendingEntries
		flushed := s.flushed
		s.ovMu.RUnlock()
		if !full && s.stall.Load() == nil {
			return nil
		}
		s.kickFlush()
		select {
		case <-flushed:
		case <-s.closing:
			return ErrClosed
		}
	}
}

func (s *Store) kickFlush() {
	select {
	case s.flushKick <- struct{}{}:
	default:
	}
}

// flusher commits the active layer every FlushInterval, or sooner when kicked, until Close.
// A failed commit is retried with the same backoff as a write-through ApplyBatch, and
// Stalled reports it meanwhile.
func (s *Store) flusher(every time.Duration) {
	defer close(s.flusherDone)
	tick := time.NewTicker(every)
	defer tick.Stop()
	wait := retryFirst
	for {
		select {
		case <-s.closing:
			return
		case <-tick.C:
		case <-s.flushKick:
		}
		err := s.Flush()
		if err == nil {
			wait = retryFirst
			continue
		}
		if errors.Is(err, ErrClosed) {
			return
		}
		var ok bool
		if wait, ok = s.backOff(err, wait); !ok {
			return
		}
	}
}

// Flush commits every change applied so far to the file. Without write-behind it does
// nothing: ApplyBatch has committed already.
func (s *Store) Flush() error {
	if s.flushKick == nil {
		return nil
	}
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	for range 2 { // a layer left by a failed commit, then the active one
		done, err := s.flushOnce()
		if err != nil || done {
			return err
		}
	}
	return nil
}

// flushOnce commits one layer: the one a failed commit left, or else the active one. done
// reports that nothing was left to commit. flushMu must be held, and writeMu must not.
func (s *Store) flushOnce() (done bool, err error) {
	if s.flushing == nil {
		s.writeMu.Lock()
		s.swapLayers()
		s.writeMu.Unlock()
		if s.flushing == nil {
			return true, nil
		}
	}
	return false, s.commitFlushing()
}

// flushHeld commits everything, holding flushMu and writeMu, so that nothing is applied
// meanwhile.
func (s *Store) flushHeld() error {
	if s.flushing != nil {
		if err := s.commitFlushing(); err != nil {
			return err
		}
	}
	s.swapLayers()
	if s.flushing == nil {
		return nil
	}
	return s.commitFlushing()
}

// swapLayers makes a dirty active layer the flushing one. flushMu and writeMu must be held
// and flushing must be nil.
func (s *Store) swapLayers() {
	s.ovMu.Lock()
	defer s.ovMu.Unlock()
	if s.active.dirty {
		s.flushing, s.active = s.active, newOverlay()
		s.publishChanges()
	}
}

// commitFlushing commits the flushing layer and drops it from memory; on failure it stays,
// and Stalled reports the error. flushMu must be held.
func (s *Store) commitFlushing() error {
	if err := s.commitLayer(s.flushing); err != nil {
		if !errors.Is(err, ErrClosed) {
			err = stallError(fmt.Errorf("flush applied entries up to index %d: %w", s.flushing.applied, err))
			s.stall.Store(&err)
		}
		return err
	}
	s.ovMu.Lock()
	s.flushing = nil
	s.publishChanges()
	if s.stall.Swap(nil) != nil {
		s.log.Info("store writes again; the member is applying", "applied", s.applied.Load())
	}
	close(s.flushed)
	s.flushed = make(chan struct{})
	s.ovMu.Unlock()
	return nil
}

// commitLayer writes one layer to the file in one transaction, keys in order.
func (s *Store) commitLayer(o *overlay) error {
	var oldest int64
	err := s.commitTx(func(tx *bolt.Tx) error {
		for _, bm := range []struct {
			bucket string
			m      map[string][]byte
		}{{bucketKV, o.kv}, {bucketMembers, o.members}, {bucketCRLs, o.crls}, {bucketLeases, o.leases}} {
			b := tx.Bucket([]byte(bm.bucket))
			for _, k := range slices.Sorted(maps.Keys(bm.m)) {
				var err error
				if v := bm.m[k]; v == nil {
					err = b.Delete([]byte(k))
				} else {
					err = b.Put([]byte(k), v)
				}
				if err != nil {
					return fmt.Errorf("write %s %q: %w", bm.bucket, k, err)
				}
			}
		}
		var err error
		if oldest, err = writeChanges(tx, o.changes, o.revision, s.changeRetention); err != nil {
			return err
		}
		return writeMeta(tx, o.applied, o.revision)
	})
	if err == nil {
		s.changesFrom.Store(oldest)
	}
	return err
}
