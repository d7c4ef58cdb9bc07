package store

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// The change log. Every put and delete, plain or in a transaction, is recorded in the bucket
// "changes" in the transaction that makes it, so that watchers can be served every change
// from any revision the log still holds, on every member (all apply the same entries), and
// after a restart. It is a member's own record, not replicated state: it is not in
// snapshots, and after a Restore it starts at the snapshot's revision. It keeps the last
// Options.ChangeRetention revisions; older ones are trimmed in the commit that passes the
// bound, and meta/changes_from records the oldest revision still kept.
//
//	changes key    revision(8) key;  the writes of one transaction share a revision
//	changes value  kind(1) created(8) crc(4) value;  crc of the changes key, kind, created, value
//
// kind is changePut or changeDelete; created is 0 for a delete.

const (
	bucketChanges   = "changes"
	metaChangesFrom = "changes_from"

	changePut    = 1
	changeDelete = 2
	changeHeader = 13 // kind, created, crc
)

// DefaultChangeRetention is how many revisions the change log keeps when
// Options.ChangeRetention is zero.
const DefaultChangeRetention = 100_000

// Change is one put or delete as the change log keeps it.
type Change struct {
	Key     string
	Value   []byte // nil for a delete
	Deleted bool
	// Revision is the store revision of the change, which is also the key's new revision
	// for a put. The writes of one transaction share it.
	Revision int64
	Created  int64 // revision at which the key was created; 0 for a delete
}

// CompactedError is the error of Changes for a revision the change log no longer holds.
type CompactedError struct {
	From   int64 // the revision asked for
	Oldest int64 // the oldest revision the log can give
}

func (e *CompactedError) Error() string {
	return fmt.Sprintf("changes from revision %d are no longer kept; the oldest kept is %d", e.From, e.Oldest)
}

// Changed returns a channel that is closed when the store's revision next moves (an apply or
// a restore). Take it before reading, then read, then wait on it: no change can fall between.
// It takes no lock, so that many watchers never hold up the apply path.
func (s *Store) Changed() <-chan struct{} { return *s.changed.Load() }

// notifyChanged wakes the readers waiting on Changed. The apply path calls it holding
// writeMu, so no two calls race to close one channel.
func (s *Store) notifyChanged() {
	next := make(chan struct{})
	close(*s.changed.Swap(&next))
}

// OldestChange is the oldest revision the change log can give: Changes from a lower
// revision returns a *CompactedError.
func (s *Store) OldestChange() int64 { return s.changesFrom.Load() }

// ChangeLimit bounds one call of Changes.
type ChangeLimit struct {
	Records int // changes scanned, matching the prefix or not; <= 0: 1024
	Bytes   int // keys and values returned; <= 0: 1 MiB
}

// Changes returns the changes at revision from and after whose keys start with prefix, in
// revision order, and next, the revision to ask for next: every change below next was
// scanned. A call stops at a revision boundary once it has scanned lim.Records changes or
// returned lim.Bytes, so the writes of one transaction always come together. From beyond the
// current revision returns nothing and next = from; from below OldestChange returns a
// *CompactedError.
func (s *Store) Changes(from int64, prefix string, lim ChangeLimit) (changes []Change, next int64, err error) {
	if from < 1 {
		from = 1
	}
	c := collector{prefix: prefix, next: from, maxRecords: lim.Records, maxBytes: lim.Bytes}
	if c.maxRecords <= 0 {
		c.maxRecords = 1024
	}
	if c.maxBytes <= 0 {
		c.maxBytes = 1 << 20
	}
	if from > s.revision.Load() {
		return nil, from, nil
	}
	if s.flushKick != nil && s.changesInMemory(from, &c) {
		return c.out, c.next, nil
	}
	var mem [][]Change
	err = s.viewWithMemory(func() { mem = s.memoryChanges() }, func(tx *bolt.Tx) error {
		oldest, err := changesFrom(tx)
		if err != nil {
			return err
		}
		if from < oldest {
			return &CompactedError{From: from, Oldest: oldest}
		}
		if err := c.scanFile(tx, from); err != nil {
			return err
		}
		c.fileLast = c.last
		for _, m := range mem {
			c.scanMemory(m, from)
		}
		return nil
	})
	if err != nil {
		if _, ok := errors.AsType[*CompactedError](err); ok {
			return nil, from, err
		}
		return nil, from, s.readErr(fmt.Errorf("read changes from revision %d: %w", from, err))
	}
	return c.out, c.next, nil
}

// changesInMemory serves Changes from the layers of write-behind alone when they reach back
// to from, which spares the file a transaction for a watcher that keeps up. It takes the
// layers from memChanges and no lock: with many watchers, readers holding ovMu (and being
// descheduled while they did) held up the apply path.
func (s *Store) changesInMemory(from int64, c *collector) bool {
	p := s.memChanges.Load()
	if p == nil || len(*p) == 0 || (*p)[0][0].Revision > from {
		return false
	}
	for _, m := range *p {
		c.scanMemory(m, from)
	}
	return true
}

// memoryChanges returns the changes of the write-behind layers not yet in the file, oldest
// first, leaving out empty ones. ovMu must be held. The slices only ever grow, so what a
// reader got stays valid.
func (s *Store) memoryChanges() [][]Change {
	var out [][]Change
	for _, o := range []*overlay{s.flushing, s.active} {
		if o != nil && len(o.changes) > 0 {
			out = append(out, o.changes[:len(o.changes):len(o.changes)])
		}
	}
	return out
}

// publishChanges makes the layers' changes as they are now what changesInMemory reads.
// ovMu must be held for writing.
func (s *Store) publishChanges() {
	mem := s.memoryChanges()
	s.memChanges.Store(&mem)
}

// collector gathers what one call of Changes returns.
type collector struct {
	prefix     string
	maxRecords int
	maxBytes   int
	out        []Change
	records    int
	bytes      int
	last       int64 // revision of the last change scanned
	fileLast   int64 // revision of the last change scanned in the file
	next       int64
	done       bool
}

// take scans one change; it returns false once the call is full and rev starts a new
// revision, which is then left for the next call.
func (c *collector) take(rev int64, key string, value func() []byte, deleted bool, created int64) bool {
	if c.done {
		return false
	}
	if rev != c.last && (c.records >= c.maxRecords || c.bytes >= c.maxBytes) {
		c.done = true
		return false
	}
	c.last, c.next = rev, rev+1
	c.records++
	if !strings.HasPrefix(key, c.prefix) {
		return true
	}
	ch := Change{Key: key, Deleted: deleted, Revision: rev, Created: created}
	if !deleted {
		ch.Value = value()
	}
	c.bytes += len(key) + len(ch.Value)
	c.out = append(c.out, ch)
	return true
}

func (c *collector) scanFile(tx *bolt.Tx, from int64) error {
	cur := tx.Bucket([]byte(bucketChanges)).Cursor()
	for k, v := cur.Seek(u64(uint64(from))); k != nil; k, v = cur.Next() {
		rev, key, kind, created, value, err := splitChange(k, v)
		if err != nil {
			return err
		}
		if !c.take(rev, key, func() []byte { return bytes.Clone(value) }, kind == changeDelete, created) {
			return nil
		}
	}
	return nil
}

func (c *collector) scanMemory(m []Change, from int64) {
	i, _ := slices.BinarySearchFunc(m, from, func(ch Change, rev int64) int { return cmp.Compare(ch.Revision, rev) })
	for _, ch := range m[i:] {
		if ch.Revision <= c.fileLast {
			continue // a layer whose commit ended after the file's transaction began
		}
		if !c.take(ch.Revision, ch.Key, func() []byte { return ch.Value }, ch.Deleted, ch.Created) {
			return
		}
	}
}

// logChange records a put (value) or a delete (deleted) of key at rev in the batch. value
// must stay unchanged until the batch is committed.
func (b *batch) logChange(key []byte, rev, created int64, value []byte, deleted bool) {
	ch := Change{Key: string(key), Revision: rev, Deleted: deleted}
	if !deleted {
		ch.Value, ch.Created = value, created
		if ch.Value == nil {
			ch.Value = []byte{}
		}
	}
	b.changes = append(b.changes, ch)
}

// sortChanges puts the changes of a batch in the order the file keeps them: by revision,
// then key, so that a reader sees the writes of a transaction in one order wherever it reads
// them from.
func sortChanges(cs []Change) {
	slices.SortFunc(cs, func(a, b Change) int {
		return cmp.Or(cmp.Compare(a.Revision, b.Revision), strings.Compare(a.Key, b.Key))
	})
}

// writeChanges appends changes to the log in tx, trims it to keep revisions up to rev, and
// returns the oldest revision it then keeps.
func writeChanges(tx *bolt.Tx, changes []Change, rev, keep int64) (int64, error) {
	b := tx.Bucket([]byte(bucketChanges))
	oldest, err := changesFrom(tx)
	if err != nil {
		return 0, err
	}
	var buf []byte
	for _, ch := range changes {
		k := append(u64(uint64(ch.Revision)), ch.Key...)
		buf = appendChange(buf[:0], k, ch)
		if err := b.Put(k, bytes.Clone(buf)); err != nil {
			return 0, fmt.Errorf("log change of key %q: %w", ch.Key, err)
		}
	}
	if cut := rev - keep + 1; cut > oldest {
		// Keys first, deletes after: re-seeking the first key after each delete walks over
		// the emptied pages every time, quadratic in the records trimmed by one commit.
		var old [][]byte
		c := b.Cursor()
		for k, _ := c.First(); k != nil && int64(binary.BigEndian.Uint64(k)) < cut; k, _ = c.Next() {
			old = append(old, bytes.Clone(k))
		}
		for _, k := range old {
			if err := b.Delete(k); err != nil {
				return 0, fmt.Errorf("trim change log: %w", err)
			}
		}
		oldest = cut
	}
	if err := tx.Bucket([]byte(bucketMeta)).Put([]byte(metaChangesFrom), u64(uint64(oldest))); err != nil {
		return 0, fmt.Errorf("write oldest change: %w", err)
	}
	return oldest, nil
}

// changesFrom reads the oldest revision the log of tx keeps. A file without it (a new store,
// a restored snapshot, or one written before the log existed) keeps nothing before its next
// revision.
func changesFrom(tx *bolt.Tx) (int64, error) {
	meta := tx.Bucket([]byte(bucketMeta))
	v, err := metaUint(meta, metaChangesFrom)
	if err != nil {
		return 0, err
	}
	if v != 0 {
		return int64(v), nil
	}
	rev, err := metaUint(meta, metaRevision)
	return int64(rev) + 1, err
}

func appendChange(b, k []byte, ch Change) []byte {
	start := len(b)
	kind := byte(changePut)
	if ch.Deleted {
		kind = changeDelete
	}
	b = append(b, kind)
	b = binary.BigEndian.AppendUint64(b, uint64(ch.Created))
	sum := changeSum(k, b[start:start+9], ch.Value)
	b = binary.BigEndian.AppendUint32(b, sum)
	return append(b, ch.Value...)
}

func changeSum(k, head, value []byte) uint32 {
	c := crc32.Update(0, castagnoli, k)
	c = crc32.Update(c, castagnoli, head)
	return crc32.Update(c, castagnoli, value)
}

// splitChange checks a change record and splits it without copying the value.
func splitChange(k, v []byte) (rev int64, key string, kind byte, created int64, value []byte, err error) {
	if len(k) < 8 || len(v) < changeHeader {
		return 0, "", 0, 0, nil, fmt.Errorf("change record of %d and %d bytes: %w", len(k), len(v), errDamaged)
	}
	value = v[changeHeader:]
	if binary.BigEndian.Uint32(v[9:]) != changeSum(k, v[:9], value) {
		return 0, "", 0, 0, nil, fmt.Errorf("change record checksum mismatch: %w", errDamaged)
	}
	kind = v[0]
	if kind != changePut && kind != changeDelete {
		return 0, "", 0, 0, nil, fmt.Errorf("change record of kind %d: %w", kind, errDamaged)
	}
	return int64(binary.BigEndian.Uint64(k)), string(k[8:]), kind, int64(binary.BigEndian.Uint64(v[1:])), value, nil
}
