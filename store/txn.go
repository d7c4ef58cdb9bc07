package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// Txn is the body of an OpTxn command: compares on several keys, and the writes to apply
// when all of them hold (Then) or when one does not (Else). The store evaluates and applies
// it in one step of its state machine, so no other command falls between the compares and
// the writes, and all the writes of the branch that runs share one new store revision.
type Txn struct {
	Compares []Compare
	Then     []TxnOp
	Else     []TxnOp
}

// Target is what a Compare looks at.
type Target uint8

// Targets of a compare. The numbers are written to the raft log: never reuse one.
const (
	TargetRevision Target = 1 // the key's revision; 0 when the key does not exist
	TargetValue    Target = 2 // the key's value; a missing key equals no value
	TargetExists   Target = 3 // whether the key exists: Cmp Equal holds when it does
)

// Cmp is how a Compare relates the key's current state to what it holds.
type Cmp uint8

// Relations of a compare. The numbers are written to the raft log: never reuse one.
const (
	CmpEqual    Cmp = 1
	CmpNotEqual Cmp = 2
	CmpLess     Cmp = 3 // TargetRevision only
	CmpGreater  Cmp = 4 // TargetRevision only
)

// Compare is one condition of a Txn on the current state of Key.
type Compare struct {
	Key      string
	Target   Target
	Cmp      Cmp
	Revision int64  // TargetRevision: the revision compared with
	Value    []byte // TargetValue: the value compared with
}

// TxnOp is a write of a Txn's branch: OpPut or OpDelete of Key.
type TxnOp struct {
	Op    Op
	Key   string
	Value []byte
	// Lease is the lease a put attaches Key to; 0 detaches it, as a plain put does.
	Lease int64
}

// txnOpLease marks, in the op byte of an encoded write, a put with a lease: the lease ID
// follows the value. A member from before it refuses the write as an unknown op.
const txnOpLease = 0x80

// TxnResult is what a Txn did, in Result.Txn.
type TxnResult struct {
	Succeeded bool       // every compare held, and Then ran; otherwise Else ran
	Ops       []OpResult // one per write of the branch that ran, in its order
}

// OpResult is the outcome of one write of a Txn.
type OpResult struct {
	// Revision is the revision the write brought its key to, shared by every write of the
	// transaction; 0 for a delete of a key that did not exist.
	Revision int64
}

// MaxTxnOps bounds the compares of a Txn, and the writes of each branch, at decode time; the
// API enforces its own, lower limit (--max-txn-ops) before a txn gets here.
const MaxTxnOps = 4096

// encodeTxn encodes t for the value field of an OpTxn command:
//
//	count(uvarint) then per compare: target(1) cmp(1) key(field) revision(varint) value(field)
//	count(uvarint) then per Then write: op(1) key(field) value(field) [lease(uvarint)]
//	count(uvarint) then per Else write: the same
//
// where the lease is there when the op byte has txnOpLease set.
func encodeTxn(t *Txn) []byte {
	var b []byte
	b = binary.AppendUvarint(b, uint64(len(t.Compares)))
	for _, c := range t.Compares {
		b = append(b, byte(c.Target), byte(c.Cmp))
		b = appendField(b, c.Key)
		b = binary.AppendVarint(b, c.Revision)
		b = appendField(b, c.Value)
	}
	for _, ops := range [2][]TxnOp{t.Then, t.Else} {
		b = binary.AppendUvarint(b, uint64(len(ops)))
		for _, o := range ops {
			op := byte(o.Op)
			if o.Lease != 0 {
				op |= txnOpLease
			}
			b = append(b, op)
			b = appendField(b, o.Key)
			b = appendField(b, o.Value)
			if o.Lease != 0 {
				b = binary.AppendUvarint(b, uint64(o.Lease))
			}
		}
	}
	return b
}

// decodeTxn decodes and validates the value field of an OpTxn command. The result does not
// alias b.
func decodeTxn(b []byte) (*Txn, error) {
	d := decoder{b: b}
	t := &Txn{}
	n := d.count("compares", 4) // target, cmp, key length and revision: a byte each at least
	for range n {
		c := Compare{Target: Target(d.byte("compare target")), Cmp: Cmp(d.byte("compare relation"))}
		c.Key = string(d.field("compare key"))
		c.Revision = d.varint("compare revision")
		if v := d.field("compare value"); len(v) > 0 {
			c.Value = bytes.Clone(v)
		}
		t.Compares = append(t.Compares, c)
	}
	t.Then = d.txnOps("then")
	t.Else = d.txnOps("else")
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, badCommand("txn: %d trailing bytes", len(d.b))
	}
	if err := t.validate(); err != nil {
		return nil, err
	}
	return t, nil
}

// count reads a uvarint count of items of at least minBytes each, refusing one that the
// bytes left cannot hold or that passes MaxTxnOps, so that a hostile count allocates nothing.
func (d *decoder) count(what string, minBytes int) int {
	if d.err != nil {
		return 0
	}
	n, l := binary.Uvarint(d.b)
	if l <= 0 {
		d.err = badCommand("txn: bad count of %s", what)
		return 0
	}
	d.b = d.b[l:]
	if n > MaxTxnOps || n*uint64(minBytes) > uint64(len(d.b)) {
		d.err = badCommand("txn: %d %s in %d bytes (at most %d)", n, what, len(d.b), MaxTxnOps)
		return 0
	}
	return int(n)
}

func (d *decoder) txnOps(what string) []TxnOp {
	n := d.count(what+" writes", 3) // op, key length, value length
	var ops []TxnOp
	for range n {
		op := d.byte(what + " op")
		o := TxnOp{Op: Op(op &^ txnOpLease)}
		o.Key = string(d.field(what + " key"))
		if v := d.field(what + " value"); len(v) > 0 {
			o.Value = bytes.Clone(v)
		}
		if op&txnOpLease != 0 {
			if o.Lease = d.positive(what + " lease"); o.Lease == 0 && d.err == nil {
				d.err = badCommand("txn %s write with lease 0", what)
			}
		}
		ops = append(ops, o)
	}
	return ops
}

// validate checks what the apply relies on: keys bbolt takes, known targets and relations,
// writes that are puts or deletes, and no key written twice in a branch, which would leave
// two records at the one revision of the transaction.
func (t *Txn) validate() error {
	for i, c := range t.Compares {
		if err := checkKey(c.Key); err != nil {
			return badCommand("txn compare %d: %s", i, err)
		}
		if err := c.check(); err != nil {
			return badCommand("txn compare %d on key %q: %s", i, c.Key, err)
		}
	}
	for _, br := range []struct {
		name string
		ops  []TxnOp
	}{{"then", t.Then}, {"else", t.Else}} {
		seen := make(map[string]bool, len(br.ops))
		for i, o := range br.ops {
			if err := checkKey(o.Key); err != nil {
				return badCommand("txn %s write %d: %s", br.name, i, err)
			}
			switch {
			case o.Op != OpPut && o.Op != OpDelete:
				return badCommand("txn %s write %d: op %d is neither put nor delete", br.name, i, o.Op)
			case o.Op == OpDelete && len(o.Value) > 0:
				return badCommand("txn %s write %d: a delete with a value", br.name, i)
			case o.Op == OpDelete && o.Lease != 0:
				return badCommand("txn %s write %d: a delete with a lease", br.name, i)
			case o.Lease != 0 && len(o.Key) >= maxKeyBytes:
				return badCommand("txn %s write %d: key of %d bytes is too long to attach to a lease", br.name, i, len(o.Key))
			case len(o.Value) > maxValueBytes:
				return badCommand("txn %s write %d: value of %d bytes exceeds %d", br.name, i, len(o.Value), maxValueBytes)
			case seen[o.Key]:
				return badCommand("txn %s writes key %q twice", br.name, o.Key)
			}
			seen[o.Key] = true
		}
	}
	return nil
}

func (c Compare) check() error {
	switch c.Target {
	case TargetRevision:
		if c.Cmp < CmpEqual || c.Cmp > CmpGreater {
			return fmt.Errorf("unknown relation %d", c.Cmp)
		}
	case TargetValue, TargetExists:
		if c.Cmp != CmpEqual && c.Cmp != CmpNotEqual {
			return fmt.Errorf("relation %d on target %d: want equal or not equal", c.Cmp, c.Target)
		}
	default:
		return fmt.Errorf("unknown target %d", c.Target)
	}
	if c.Target != TargetRevision && c.Revision != 0 {
		return fmt.Errorf("a revision on target %d", c.Target)
	}
	if c.Target != TargetValue && len(c.Value) > 0 {
		return fmt.Errorf("a value on target %d", c.Target)
	}
	return nil
}

func checkKey(k string) error {
	if k == "" {
		return fmt.Errorf("empty key")
	}
	if len(k) > maxKeyBytes {
		return fmt.Errorf("key of %d bytes exceeds %d", len(k), maxKeyBytes)
	}
	return nil
}

// Holds evaluates c against a key's current revision (0: absent) and value.
func (c Compare) Holds(rev int64, value []byte) bool {
	switch c.Target {
	case TargetExists:
		return (rev != 0) == (c.Cmp == CmpEqual)
	case TargetValue:
		eq := rev != 0 && bytes.Equal(value, c.Value)
		return eq == (c.Cmp == CmpEqual)
	}
	switch c.Cmp {
	case CmpEqual:
		return rev == c.Revision
	case CmpNotEqual:
		return rev != c.Revision
	case CmpLess:
		return rev < c.Revision
	default:
		return rev > c.Revision
	}
}

// applyTxn evaluates t's compares and applies the branch they choose. Every write of the
// branch is at one new revision, b.rev+1, taken only when the branch changes something.
func (b *batch) applyTxn(t *Txn) Result {
	ok := true
	for _, c := range t.Compares {
		rev, value, err := b.current([]byte(c.Key))
		if err != nil {
			return Result{Revision: b.rev, Err: fmt.Errorf("txn compare on key %q: %w", c.Key, err)}
		}
		if !c.Holds(rev, value) {
			ok = false
			break
		}
	}
	ops := t.Then
	if !ok {
		ops = t.Else
	}
	// Read every key before writing any, so that a damaged record fails the transaction
	// before it has changed anything.
	type state struct{ cur, created int64 }
	states := make([]state, len(ops))
	for i, o := range ops {
		cur, created, err := b.revisions([]byte(o.Key))
		if err == nil {
			err = b.checkAttach([]byte(o.Key), o.Lease)
		}
		if err != nil {
			return Result{Revision: b.rev, Err: fmt.Errorf("txn write of key %q: %w", o.Key, err)}
		}
		states[i] = state{cur, created}
	}
	res := &TxnResult{Succeeded: ok, Ops: make([]OpResult, len(ops))}
	rev := b.rev + 1
	wrote := false
	for i, o := range ops {
		if err := b.txnWrite(o, rev, states[i].cur, states[i].created); err != nil {
			return Result{Revision: b.rev, Err: err}
		}
		if o.Op == OpPut || states[i].cur != 0 {
			res.Ops[i].Revision = rev
			wrote = true
		}
	}
	if wrote {
		b.rev = rev
	}
	return Result{Revision: b.rev, Txn: res}
}

// txnWrite applies one write of a transaction at rev to a key now at cur, created at created.
// Keys and values were checked at decode time, so bbolt takes them.
func (b *batch) txnWrite(o TxnOp, rev, cur, created int64) error {
	key := []byte(o.Key)
	if o.Op == OpDelete {
		if cur == 0 {
			return nil
		}
		// Logged first, as a put is: bbolt refuses a write only in a read-only transaction
		// or to a nested bucket, neither of which can happen here.
		b.logChange(key, rev, 0, nil, true)
		if err := b.kv.Delete(key); err != nil {
			return fmt.Errorf("txn delete key %q: %w", key, err)
		}
		return b.detach(key)
	}
	if cur == 0 {
		created = rev
	}
	start := len(b.arena)
	b.arena = appendRecord(b.arena, key, rev, created, o.Value)
	b.logChange(key, rev, created, b.arena[start+recordHeader:len(b.arena):len(b.arena)], false)
	if err := b.kv.Put(key, b.arena[start:len(b.arena):len(b.arena)]); err != nil {
		return fmt.Errorf("txn put key %q: %w", key, err)
	}
	return b.attach(key, o.Lease) // 0: a put without a lease detaches the key, as in etcd
}

// current returns key's revision (0: absent) and value.
func (b *batch) current(key []byte) (int64, []byte, error) {
	rec := b.kv.Get(key)
	if rec == nil {
		return 0, nil, nil
	}
	rev, _, value, err := splitRecord(key, rec)
	return rev, value, err
}

// revisions returns key's revision and the revision that created it; zeros when absent.
func (b *batch) revisions(key []byte) (rev, created int64, err error) {
	rec := b.kv.Get(key)
	if rec == nil {
		return 0, 0, nil
	}
	rev, created, _, err = splitRecord(key, rec)
	return rev, created, err
}

// recordBytes bounds the bytes of the records t may write, whichever branch runs.
func (t *Txn) recordBytes() int {
	then, els := 0, 0
	for _, o := range t.Then {
		then += recordHeader + len(o.Key) + len(o.Value)
	}
	for _, o := range t.Else {
		els += recordHeader + len(o.Key) + len(o.Value)
	}
	return max(then, els)
}
