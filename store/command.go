package store

import (
	"errors"
	"fmt"
	"io"
)

// Op is the kind of a replicated command.
type Op uint8

// Operations a command may carry. The numbers are written to the raft log: never reuse one.
const (
	OpPut          Op = 1 // set Key to Value
	OpDelete       Op = 2 // remove Key
	OpSetMember    Op = 3 // authorise or update Member
	OpRemoveMember Op = 4 // withdraw the authorisation of Member.Name
	OpNoop         Op = 5 // changes nothing; a barrier
	OpSetCRL       Op = 6 // put the CRL in Value (DER) in force for the port named by Key
	OpTxn          Op = 7 // apply Txn: compares, then one of two lists of writes
	// Leases (lease.go).
	OpLeaseGrant     Op = 8  // grant a lease of LeaseTTL seconds; its ID is the entry's raft index
	OpLeaseRevoke    Op = 9  // delete every key attached to Lease in one revision, then Lease
	OpLeaseKeepAlive Op = 10 // renew Lease
	// OpSetPreferred makes Member.Name the preferred primary and Key's member (the one
	// preferred until now, as the primary saw it) no longer preferred; either may be empty.
	OpSetPreferred Op = 12
)

// Command is one replicated change, encoded into one raft log entry by EncodeCommand.
type Command struct {
	Op    Op
	Key   string
	Value []byte
	// HasIf makes the command conditional: it applies only when the key's current revision
	// equals IfRevision, where 0 means "the key does not exist".
	HasIf      bool
	IfRevision int64
	// Member is the record of OpSetMember and OpRemoveMember.
	Member Member
	// Txn is the body of OpTxn, carried in the value field of the encoding.
	Txn *Txn
	// Lease is the lease of OpLeaseRevoke and OpLeaseKeepAlive, and the lease an OpPut
	// attaches Key to (0: none, which detaches it). A revoke with HasIf applies only while
	// the lease's Touched index is IfRevision.
	Lease int64
	// LeaseTTL is the TTL of OpLeaseGrant in seconds, 1 to MaxLeaseTTL.
	LeaseTTL int64
	// MaxLeases, when positive, makes an OpLeaseGrant fail with ErrTooManyLeases while the
	// group holds that many leases.
	MaxLeases int64
}

// The ports a CRL of OpSetCRL may be for: Key names the port whose CA bundle signs it.
const (
	CRLPortMember = "member"
	CRLPortClient = "client"
)

// Entry is a committed raft log entry handed to ApplyBatch.
type Entry struct {
	Index uint64
	Data  []byte
}

// Result is the outcome of applying one command.
type Result struct {
	// Revision is the store's revision after the command: for a put, the key's new revision.
	Revision int64
	// Err is nil, ErrNotFound (delete of a missing key), a *PreconditionError (a failed
	// compare-and-set), or an error wrapping ErrBadCommand.
	Err error
	// Txn is what an OpTxn did; nil for every other op, and when Err is set.
	Txn *TxnResult
	// Lease is the lease a grant, keep-alive or revoke acted on (a revoke's with the keys it
	// deleted); nil for every other op, and when Err is set.
	Lease *Lease
}

// KV is a stored key with its value and revisions.
type KV struct {
	Key      string
	Value    []byte
	Revision int64 // revision of the last change to this key
	Created  int64 // revision at which the key was created
}

// Snapshot is a consistent point-in-time copy of the store, written by a raft snapshot.
type Snapshot interface {
	io.WriterTo
	// Release frees what the snapshot holds open; call it once WriteTo is done.
	Release()
}

// ErrNotFound is returned by Get and in Result.Err when the key does not exist.
var ErrNotFound = errors.New("key not found")

// ErrBadCommand wraps every failure to decode a command.
var ErrBadCommand = errors.New("malformed command")

// PreconditionError is the Result.Err of a compare-and-set whose condition did not hold.
type PreconditionError struct {
	Key     string
	Want    int64 // the revision the command required (0: must not exist)
	Current int64 // the key's revision now (0: it does not exist)
}

func (e *PreconditionError) Error() string {
	return fmt.Sprintf("key %q is at revision %d, not %d", e.Key, e.Current, e.Want)
}
