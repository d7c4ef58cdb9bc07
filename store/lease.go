package store

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Leases. A lease is granted with a TTL, keys are attached to it by puts that name it, and
// when it is revoked (by a client, or by the primary once its TTL passed without a
// keep-alive) every key attached to it is deleted in one store revision, through the same
// delete path a transaction takes. The store keeps the leases and which key belongs to which;
// it never decides that a lease expired: it has no clock that every member shares. The
// primary does (cluster/leases.go) and commits the revoke.
//
// The leases bucket holds two kinds of record:
//
//	"L" id(8, big-endian) -> crc(4) ttl(8) touched(8) key*(uvarint len, bytes), keys sorted
//	"K" key               -> crc(4) id(8)
//
// where crc is the CRC-32C of the bucket key and the rest of the value, and touched is the
// raft index of the lease's grant or last keep-alive.

// bucketLeases holds the lease records described above.
const bucketLeases = "leases"

// Limits of a lease.
const (
	// MaxLeaseTTL is the longest TTL a lease may have, in seconds: 30 days.
	MaxLeaseTTL = 30 * 24 * 3600
	// MaxLeaseKeys bounds the keys attached to one lease. A put that attaches a key rewrites
	// the lease's record, so the bound keeps that write small.
	MaxLeaseKeys = 10000
)

// Lease is a lease as the store holds it.
type Lease struct {
	ID  int64 // chosen by the group: the raft index of the grant, unless a lease restored from a backup (Seed) holds that number
	TTL int64 // seconds
	// Touched is the raft index of the grant or of the last keep-alive; a revoke for expiry
	// is conditional on it, so that a keep-alive that committed first wins.
	Touched int64
	// Refreshed is when this member applied the grant or the last keep-alive, by its own
	// monotonic clock; a restart or a restore sets it to that moment. It is not replicated.
	Refreshed time.Time
	Keys      []string // the attached keys, sorted; only Lease fills it
}

// ErrLeaseNotFound is the Result.Err of a put, keep-alive or revoke that names a lease the
// group does not hold (never granted, revoked, or expired), and the error of Lease.
var ErrLeaseNotFound = errors.New("lease not found")

// ErrTooManyLeases is the Result.Err of a grant when the group holds Command.MaxLeases
// leases already.
var ErrTooManyLeases = errors.New("too many leases")

// ErrLeaseFull is the Result.Err of a put that would attach more than MaxLeaseKeys keys to
// one lease.
var ErrLeaseFull = errors.New("lease has too many keys")

func leaseKey(id int64) []byte {
	return binary.BigEndian.AppendUint64([]byte{'L'}, uint64(id))
}

func keyLeaseKey(key []byte) []byte {
	return append([]byte{'K'}, key...)
}

// leaseRecord is the decoded "L" record.
type leaseRecord struct {
	ttl, touched int64
	keys         []string
}

func (r leaseRecord) encode(k []byte) []byte {
	b := make([]byte, 4, 20+len(r.keys)*16)
	b = binary.BigEndian.AppendUint64(b, uint64(r.ttl))
	b = binary.BigEndian.AppendUint64(b, uint64(r.touched))
	for _, key := range r.keys {
		b = appendField(b, key)
	}
	binary.BigEndian.PutUint32(b, leaseSum(k, b[4:]))
	return b
}

func leaseSum(k, rest []byte) uint32 {
	return crc32.Update(crc32.Update(0, castagnoli, k), castagnoli, rest)
}

// decodeLeaseRecord checks and decodes the "L" record of key k.
func decodeLeaseRecord(k, v []byte) (leaseRecord, error) {
	if len(v) < 20 || binary.BigEndian.Uint32(v) != leaseSum(k, v[4:]) {
		return leaseRecord{}, fmt.Errorf("lease record %x: checksum mismatch: %w", k, errDamaged)
	}
	r := leaseRecord{ttl: int64(binary.BigEndian.Uint64(v[4:])), touched: int64(binary.BigEndian.Uint64(v[12:]))}
	d := decoder{b: v[20:]}
	for len(d.b) > 0 && d.err == nil {
		r.keys = append(r.keys, string(d.field("lease key")))
	}
	if d.err != nil {
		return leaseRecord{}, fmt.Errorf("lease record %x: %w", k, errDamaged)
	}
	return r, nil
}

func keyLeaseRecord(k []byte, id int64) []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 4, 12), uint64(id))
	binary.BigEndian.PutUint32(b, leaseSum(k, b[4:]))
	return b
}

func decodeKeyLease(k, v []byte) (int64, error) {
	if len(v) != 12 || binary.BigEndian.Uint32(v) != leaseSum(k, v[4:]) {
		return 0, fmt.Errorf("key lease record %q: checksum mismatch: %w", k, errDamaged)
	}
	return int64(binary.BigEndian.Uint64(v[4:])), nil
}

// verifyLeaseRecords checks every record of the leases bucket, for Open.
func verifyLeaseRecords(tx *bolt.Tx) error {
	return tx.Bucket([]byte(bucketLeases)).ForEach(func(k, v []byte) error {
		var err error
		switch {
		case len(k) == 9 && k[0] == 'L':
			_, err = decodeLeaseRecord(k, v)
		case len(k) > 1 && k[0] == 'K':
			_, err = decodeKeyLease(k, v)
		default:
			err = fmt.Errorf("unknown lease record %x: %w", k, errDamaged)
		}
		return err
	})
}

// leaseChange is what a batch did to a lease, for the in-memory table once it commits.
type leaseChange struct {
	id, ttl, touched int64
	gone             bool
}

// leaseMem is a lease in the in-memory table.
type leaseMem struct {
	ttl, touched int64
	refreshed    time.Time
}

// lease reads the record of lease id, or ErrLeaseNotFound.
func (b *batch) lease(id int64) (leaseRecord, error) {
	k := leaseKey(id)
	v := b.leases.Get(k)
	if v == nil {
		return leaseRecord{}, fmt.Errorf("lease %d: %w", id, ErrLeaseNotFound)
	}
	return decodeLeaseRecord(k, v)
}

func (b *batch) putLease(id int64, r leaseRecord) error {
	k := leaseKey(id)
	if err := b.leases.Put(k, r.encode(k)); err != nil {
		return fmt.Errorf("write lease %d: %w", id, err)
	}
	return nil
}

// applyLeaseGrant grants a lease whose ID is the raft index of its command.
func (b *batch) applyLeaseGrant(c Command, index uint64) Result {
	if c.MaxLeases > 0 && int64(b.leaseCount) >= c.MaxLeases {
		return Result{Revision: b.rev, Err: fmt.Errorf("grant lease: the group holds %d leases, the most allowed: %w", b.leaseCount, ErrTooManyLeases)}
	}
	id := int64(index)
	// A group seeded from a backup (Seed) holds leases numbered by the old group's raft log,
	// which the new log's indexes run into: a grant never takes an ID in use. Every member
	// holds the same leases, so every member picks the same ID.
	for b.leases.Get(leaseKey(id)) != nil {
		id += 1 << 40
	}
	r := leaseRecord{ttl: c.LeaseTTL, touched: int64(index)}
	if err := b.putLease(id, r); err != nil {
		return Result{Revision: b.rev, Err: err}
	}
	b.leaseCount++
	b.leaseLog = append(b.leaseLog, leaseChange{id: id, ttl: r.ttl, touched: r.touched})
	return Result{Revision: b.rev, Lease: &Lease{ID: id, TTL: r.ttl, Touched: r.touched}}
}

// applyLeaseKeepAlive renews lease c.Lease: its touched index becomes this command's.
func (b *batch) applyLeaseKeepAlive(c Command, index uint64) Result {
	r, err := b.lease(c.Lease)
	if err != nil {
		return Result{Revision: b.rev, Err: err}
	}
	r.touched = int64(index)
	if err := b.putLease(c.Lease, r); err != nil {
		return Result{Revision: b.rev, Err: err}
	}
	b.leaseLog = append(b.leaseLog, leaseChange{id: c.Lease, ttl: r.ttl, touched: r.touched})
	return Result{Revision: b.rev, Lease: &Lease{ID: c.Lease, TTL: r.ttl, Touched: r.touched}}
}

// applyLeaseRevoke deletes every key attached to lease c.Lease at one new revision, through
// the transaction path, then the lease. With HasIf (a revoke for expiry) it applies only
// while the lease's touched index is IfRevision: a keep-alive committed in between wins.
func (b *batch) applyLeaseRevoke(c Command) Result {
	r, err := b.lease(c.Lease)
	if err != nil {
		return Result{Revision: b.rev, Err: err}
	}
	if c.HasIf && r.touched != c.IfRevision {
		return Result{Revision: b.rev, Err: &PreconditionError{Key: fmt.Sprintf("lease/%d", c.Lease), Want: c.IfRevision, Current: r.touched}}
	}
	t := &Txn{Then: make([]TxnOp, len(r.keys))}
	for i, k := range r.keys {
		t.Then[i] = TxnOp{Op: OpDelete, Key: k}
	}
	b.revoking = true // the keys' own records go below, all at once
	res := b.applyTxn(t)
	b.revoking = false
	if res.Err != nil {
		return res
	}
	for _, k := range r.keys {
		if err := b.leases.Delete(keyLeaseKey([]byte(k))); err != nil {
			return Result{Revision: b.rev, Err: fmt.Errorf("detach key %q: %w", k, err)}
		}
	}
	if err := b.leases.Delete(leaseKey(c.Lease)); err != nil {
		return Result{Revision: b.rev, Err: fmt.Errorf("delete lease %d: %w", c.Lease, err)}
	}
	b.leaseCount--
	b.leaseLog = append(b.leaseLog, leaseChange{id: c.Lease, gone: true})
	return Result{Revision: b.rev, Lease: &Lease{ID: c.Lease, TTL: r.ttl, Touched: r.touched, Keys: r.keys}}
}

// checkAttach refuses, before anything is written, a put that names a lease the group does
// not hold or one that holds MaxLeaseKeys keys already.
func (b *batch) checkAttach(key []byte, id int64) error {
	if id == 0 {
		return nil
	}
	r, err := b.lease(id)
	if err != nil {
		return err
	}
	if len(r.keys) >= MaxLeaseKeys {
		if _, found := slices.BinarySearch(r.keys, string(key)); !found {
			return fmt.Errorf("lease %d holds %d keys: %w", id, len(r.keys), ErrLeaseFull)
		}
	}
	return nil
}

// attach makes key belong to lease id, detaching it from the lease it had; id 0 only
// detaches it, as a put without a lease does.
func (b *batch) attach(key []byte, id int64) error {
	if b.revoking {
		return nil
	}
	kk := keyLeaseKey(key)
	var old int64
	if v := b.leases.Get(kk); v != nil {
		var err error
		if old, err = decodeKeyLease(kk, v); err != nil {
			return err
		}
	}
	if old == id {
		return nil
	}
	if old != 0 {
		if err := b.editLeaseKeys(old, string(key), false); err != nil {
			return err
		}
	}
	if id == 0 {
		if err := b.leases.Delete(kk); err != nil {
			return fmt.Errorf("detach key %q: %w", key, err)
		}
		return nil
	}
	if err := b.editLeaseKeys(id, string(key), true); err != nil {
		return err
	}
	if err := b.leases.Put(kk, keyLeaseRecord(kk, id)); err != nil {
		return fmt.Errorf("attach key %q: %w", key, err)
	}
	return nil
}

// detach is attach to no lease: a deleted key leaves its lease.
func (b *batch) detach(key []byte) error { return b.attach(key, 0) }

func (b *batch) editLeaseKeys(id int64, key string, add bool) error {
	r, err := b.lease(id)
	if err != nil {
		return err
	}
	i, found := slices.BinarySearch(r.keys, key)
	switch {
	case add && !found:
		r.keys = slices.Insert(r.keys, i, key)
	case !add && found:
		r.keys = slices.Delete(r.keys, i, i+1)
	default:
		return nil
	}
	return b.putLease(id, r)
}

// loadLeases fills the in-memory lease table from the file, each lease refreshed now.
func (s *Store) loadLeases(db *bolt.DB) error {
	m := map[int64]leaseMem{}
	now := time.Now()
	err := db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket([]byte(bucketLeases)).Cursor()
		for k, v := c.Seek([]byte{'L'}); k != nil && k[0] == 'L'; k, v = c.Next() {
			r, err := decodeLeaseRecord(k, v)
			if err != nil {
				return err
			}
			m[int64(binary.BigEndian.Uint64(k[1:]))] = leaseMem{ttl: r.ttl, touched: r.touched, refreshed: now}
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.leaseMu.Lock()
	s.leases = m
	s.leaseMu.Unlock()
	return nil
}

// noteLeases moves what a committed batch did to leases into the in-memory table.
func (s *Store) noteLeases(changes []leaseChange) {
	if len(changes) == 0 {
		return
	}
	now := time.Now()
	s.leaseMu.Lock()
	defer s.leaseMu.Unlock()
	for _, c := range changes {
		if c.gone {
			delete(s.leases, c.id)
		} else {
			s.leases[c.id] = leaseMem{ttl: c.ttl, touched: c.touched, refreshed: now}
		}
	}
}

// leaseCount is the number of leases the group holds as of the last commit.
func (s *Store) leaseCount() int {
	s.leaseMu.Lock()
	defer s.leaseMu.Unlock()
	return len(s.leases)
}

// Leases returns every lease the store holds, by ID, without their keys. It reads memory
// only, so the primary can check them for expiry often.
func (s *Store) Leases() []Lease {
	s.leaseMu.Lock()
	out := make([]Lease, 0, len(s.leases))
	for id, l := range s.leases {
		out = append(out, Lease{ID: id, TTL: l.ttl, Touched: l.touched, Refreshed: l.refreshed})
	}
	s.leaseMu.Unlock()
	slices.SortFunc(out, func(a, b Lease) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Lease returns lease id with its keys, or an error wrapping ErrLeaseNotFound.
func (s *Store) Lease(id int64) (Lease, error) {
	s.leaseMu.Lock()
	m, ok := s.leases[id]
	s.leaseMu.Unlock()
	if !ok {
		return Lease{}, fmt.Errorf("lease %d: %w", id, ErrLeaseNotFound)
	}
	k := leaseKey(id)
	var r leaseRecord
	var err error
	if rec, ok := s.pendingRecord(string(k), bucketLeases); ok {
		if rec == nil {
			return Lease{}, fmt.Errorf("lease %d: %w", id, ErrLeaseNotFound)
		}
		r, err = decodeLeaseRecord(k, rec)
	} else {
		err = s.view(func(tx *bolt.Tx) error {
			v := tx.Bucket([]byte(bucketLeases)).Get(k)
			if v == nil {
				return fmt.Errorf("lease %d: %w", id, ErrLeaseNotFound)
			}
			r, err = decodeLeaseRecord(k, bytes.Clone(v))
			return err
		})
	}
	if err != nil {
		return Lease{}, s.readErr(err)
	}
	return Lease{ID: id, TTL: r.ttl, Touched: r.touched, Refreshed: m.refreshed, Keys: r.keys}, nil
}

// validateLease checks the lease fields of a command: only a put, a grant, a revoke and a
// keep-alive carry them, each the ones it needs.
func validateLease(c Command, key []byte) error {
	hasLease := c.Lease != 0 || c.LeaseTTL != 0 || c.MaxLeases != 0
	switch c.Op {
	case OpPut:
		if c.LeaseTTL != 0 || c.MaxLeases != 0 {
			return badCommand("put with a lease TTL or limit")
		}
		if c.Lease != 0 && len(key) >= maxKeyBytes {
			return badCommand("key of %d bytes is too long to attach to a lease", len(key))
		}
		return nil
	case OpLeaseGrant:
		if c.Lease != 0 {
			return badCommand("grant with lease ID %d: the group chooses it", c.Lease)
		}
		if c.LeaseTTL < 1 || c.LeaseTTL > MaxLeaseTTL {
			return badCommand("lease TTL %d: want 1 to %d seconds", c.LeaseTTL, MaxLeaseTTL)
		}
	case OpLeaseRevoke, OpLeaseKeepAlive:
		if c.Lease == 0 || c.LeaseTTL != 0 || c.MaxLeases != 0 {
			return badCommand("op %d wants a lease ID and nothing else of a lease", c.Op)
		}
	default:
		if hasLease {
			return badCommand("op %d with lease fields", c.Op)
		}
		return nil
	}
	if c.HasIf && c.Op != OpLeaseRevoke {
		return badCommand("conditional op %d", c.Op)
	}
	if len(key) != 0 || len(c.Value) != 0 || c.Member != (Member{}) {
		return badCommand("lease op %d with a key, value or member", c.Op)
	}
	return nil
}

// writeLeaseRecords writes the snapshot's lease records, by ID.
func writeLeaseRecords(tx *bolt.Tx, bw *bufio.Writer) error {
	c := tx.Bucket([]byte(bucketLeases)).Cursor()
	var rec []byte
	for k, v := c.Seek([]byte{'L'}); k != nil && k[0] == 'L'; k, v = c.Next() {
		r, err := decodeLeaseRecord(k, v)
		if err != nil {
			return err
		}
		rec = append(rec[:0], recLease)
		rec = binary.AppendUvarint(rec, binary.BigEndian.Uint64(k[1:]))
		rec = binary.AppendUvarint(rec, uint64(r.ttl))
		rec = binary.AppendUvarint(rec, uint64(r.touched))
		rec = binary.AppendUvarint(rec, uint64(len(r.keys)))
		for _, key := range r.keys {
			rec = appendField(rec, key)
		}
		if _, err := bw.Write(rec); err != nil {
			return err
		}
	}
	return nil
}

// leaseReader reads the lease records of a snapshot.
type leaseReader struct {
	seen   bool
	lastID uint64
	keys   map[string]bool // every key attached so far: a key belongs to one lease
}

func (l *leaseReader) read(d *snapReader, w *restoreWriter) error {
	id, err := d.uvarint("lease ID", 1<<63-1)
	if err != nil {
		return err
	}
	if id == 0 || (l.seen && id <= l.lastID) {
		return d.bad("lease %d is not after %d", id, l.lastID)
	}
	l.seen, l.lastID = true, id
	ttl, err := d.uvarint("lease TTL", MaxLeaseTTL)
	if err != nil {
		return err
	}
	if ttl == 0 {
		return d.bad("lease %d with TTL 0", id)
	}
	touched, err := d.uvarint("lease touched index", 1<<63-1)
	if err != nil {
		return err
	}
	n, err := d.uvarint("lease key count", MaxLeaseKeys)
	if err != nil {
		return err
	}
	if l.keys == nil {
		l.keys = map[string]bool{}
	}
	r := leaseRecord{ttl: int64(ttl), touched: int64(touched)}
	for range n {
		key, err := d.field("lease key", maxKeyBytes-1, 0)
		if err != nil {
			return err
		}
		switch {
		case len(key) == 0:
			return d.bad("lease %d attaches an empty key", id)
		case len(r.keys) > 0 && string(key) <= r.keys[len(r.keys)-1]:
			return d.bad("lease %d: key %q is not after %q", id, key, r.keys[len(r.keys)-1])
		case l.keys[string(key)]:
			return d.bad("key %q is attached to two leases", key)
		}
		l.keys[string(key)] = true
		r.keys = append(r.keys, string(key))
		kk := keyLeaseKey(key)
		if err := w.put(bucketLeases, kk, keyLeaseRecord(kk, int64(id))); err != nil {
			return err
		}
	}
	k := leaseKey(int64(id))
	return w.put(bucketLeases, k, r.encode(k))
}
