// Package history records concurrent client operations against the KV store and checks them
// for linearizability with porcupine.
//
// A Recorder timestamps each operation's call and return; Check partitions the history by
// key and searches for a sequential order, consistent with real time, in which every key
// behaves like a single register that may be absent. Transactions span keys: a
// TxnRecorder and CheckTxn check them against one model of the whole store (txn.go).
//
// Outcomes must be recorded honestly for the check to mean anything:
//   - A write the server acknowledged has OK set.
//   - A write whose fate is unknown (timeout, lost connection, 504) has Unknown set; Check
//     lets it take effect at any moment after its call, or never.
//   - A definite answer that is not the modelled one (a 400, a 403) is best recorded as
//     Unknown too: that is always sound, only weaker.
//
// CAS compares values, not revisions. The two agree only while no value is written twice to
// the same key, so harnesses must write unique values; "" is reserved for "absent" in
// Op.Expect and should not be written either.
package history

import "strconv"

// Kind is the operation a client invoked.
type Kind int

// Kinds. The zero Kind is invalid, so that an Op left unset is rejected by Check instead of
// being read as a Put.
const (
	Put    Kind = iota + 1 // put
	Get                    // get
	CAS                    // cas
	Delete                 // delete
)

// String returns the line comment of the constant, in the style of stringer -linecomment.
func (k Kind) String() string {
	switch k {
	case Put:
		return "put"
	case Get:
		return "get"
	case CAS:
		return "cas"
	case Delete:
		return "delete"
	default:
		return "Kind(" + strconv.Itoa(int(k)) + ")"
	}
}

// Op is one completed (or abandoned) client operation.
type Op struct {
	Client int // zero-based client number; porcupine draws one lane per client
	Kind   Kind
	Key    string
	Value  string // the value written by Put and CAS
	// Expect is, for CAS, the value the caller saw: the write applies only if the key still
	// holds it. "" means the key must be absent.
	Expect string
	// Call and Return are nanoseconds on the monotonic clock since the recorder started.
	// For an Unknown outcome Return is when the client gave up; Check ignores it.
	Call, Return int64
	Out          Output
}

// Output is what the client observed.
type Output struct {
	Value string // for Get: the value read
	Found bool   // for Get: the key existed
	// OK is, for Put and CAS, that the write applied; for Delete, that the key existed and
	// was removed (false: it was already absent).
	OK bool
	// Unknown means the outcome is unknown: the operation timed out or lost its connection
	// and may or may not have taken effect.
	Unknown bool
}
