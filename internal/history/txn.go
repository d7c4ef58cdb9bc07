package history

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/mirrorkv/mirrorkv/store"
)

// Multi-key histories. Check's model is one register per key, checked key by key; a
// transaction spans keys, so CheckTxn checks the whole history against one model of the
// store: every key's value and revision, and the store revision that each write moves on.
// A transaction must be seen whole or not at all by every read, and of two transactions
// whose compares exclude each other only one may apply.
//
// The model counts every write to the store, so the history must hold all of them: the
// keys it covers must be written by nobody else while it is recorded.

// MaxTxnKeys bounds the keys a multi-key history may cover: the model keeps them in an
// array, so that a state is a comparable value.
const MaxTxnKeys = 8

// TxnOp is one operation of a multi-key history: a transaction (Txn set), or a snapshot
// read of every key the history covers (Txn nil), such as one listing of their prefix.
type TxnOp struct {
	Client       int
	Txn          *store.Txn
	Call, Return int64 // as Op's
	Out          TxnOutput
}

// TxnOutput is what the client observed of a TxnOp.
type TxnOutput struct {
	Unknown   bool // as Output.Unknown
	Succeeded bool // for a transaction: the compares held and Then ran
	// Revision is, for a transaction, the store's revision after it.
	Revision int64
	// Read is, for a read, the keys found with their values and revisions; a key the
	// history covers that is missing here was absent.
	Read map[string]KeyState
}

// KeyState is a key as a read saw it.
type KeyState struct {
	Value    string
	Revision int64
}

// cell is one key in the model; the zero cell is an absent key.
type cell struct {
	value   string
	rev     int64
	created bool
}

// txnState is the store as the model sees it: a comparable value, as state is.
type txnState struct {
	rev   int64
	cells [MaxTxnKeys]cell
}

// txnModel is the store's sequential specification over keys (sorted, one cell each),
// starting from the state init.
type txnModel struct {
	keys []string
	init txnState
}

func (m *txnModel) index(key string) int {
	i, _ := slices.BinarySearch(m.keys, key)
	return i
}

func (m *txnModel) porcupine() porcupine.Model {
	return porcupine.Model{
		Init:              func() any { return m.init },
		Step:              m.step,
		DescribeOperation: m.describeOperation,
		DescribeState:     m.describeState,
	}
}

// step applies one operation. A transaction's compares are evaluated as the store evaluates
// them (store.Compare.Holds); the branch they choose writes every key it names at one new
// revision, and a known outcome must name that branch and that revision.
func (m *txnModel) step(st, in, out any) (bool, any) {
	s, op, o := st.(txnState), in.(*TxnOp), out.(TxnOutput)
	if op.Txn == nil {
		return o.Unknown || m.readMatches(s, o.Read), s
	}
	ok := true
	for _, c := range op.Txn.Compares {
		cl := s.cells[m.index(c.Key)]
		if !c.Holds(cl.rev, []byte(cl.value)) {
			ok = false
			break
		}
	}
	writes := op.Txn.Then
	if !ok {
		writes = op.Txn.Else
	}
	next := s
	rev := s.rev + 1
	wrote := false
	for _, w := range writes {
		c := &next.cells[m.index(w.Key)]
		switch {
		case w.Op == store.OpPut:
			*c = cell{value: string(w.Value), rev: rev, created: true}
		case c.created:
			*c = cell{}
		default:
			continue
		}
		wrote = true
	}
	if wrote {
		next.rev = rev
	}
	if o.Unknown {
		return true, next
	}
	return o.Succeeded == ok && o.Revision == next.rev, next
}

func (m *txnModel) readMatches(s txnState, read map[string]KeyState) bool {
	for i, k := range m.keys {
		got, found := read[k]
		c := s.cells[i]
		if found != c.created || (found && (got.Value != c.value || got.Revision != c.rev)) {
			return false
		}
	}
	return true
}

func (m *txnModel) describeState(st any) string {
	s := st.(txnState)
	var b strings.Builder
	fmt.Fprintf(&b, "rev %d:", s.rev)
	for i, k := range m.keys {
		if c := s.cells[i]; c.created {
			fmt.Fprintf(&b, " %s=%q@%d", k, c.value, c.rev)
		}
	}
	return b.String()
}

func (m *txnModel) describeOperation(in, out any) string {
	op, o := in.(*TxnOp), out.(TxnOutput)
	var call, result string
	if op.Txn == nil {
		call = "read"
		var parts []string
		for _, k := range m.keys {
			if v, ok := o.Read[k]; ok {
				parts = append(parts, fmt.Sprintf("%s=%q@%d", k, v.Value, v.Revision))
			}
		}
		result = strings.Join(parts, " ")
	} else {
		call = describeTxn(op.Txn)
		result = fmt.Sprintf("then at %d", o.Revision)
		if !o.Succeeded {
			result = fmt.Sprintf("else at %d", o.Revision)
		}
	}
	if o.Unknown {
		result = "unknown"
	}
	return call + " -> " + result
}

func describeTxn(t *store.Txn) string {
	var b strings.Builder
	b.WriteString("txn(")
	for _, c := range t.Compares {
		fmt.Fprintf(&b, "%s:%d:%d:%d ", c.Key, c.Target, c.Cmp, c.Revision)
	}
	for _, w := range t.Then {
		fmt.Fprintf(&b, "then %d %s=%q ", w.Op, w.Key, w.Value)
	}
	for _, w := range t.Else {
		fmt.Fprintf(&b, "else %d %s=%q ", w.Op, w.Key, w.Value)
	}
	return strings.TrimSpace(b.String()) + ")"
}

// CheckTxn reports whether ops are linearizable against the store, starting from the
// store's revision rev with every key the history names absent. The keys are those its
// transactions name, at most MaxTxnKeys. A timeout of zero means no limit. As in Check, a
// read with an Unknown outcome is left out and a transaction with one stays pending to the
// end of the history.
func CheckTxn(ops []TxnOp, rev int64, timeout time.Duration) (Result, error) {
	m := &txnModel{init: txnState{rev: rev}}
	for _, op := range ops {
		if op.Txn == nil {
			continue
		}
		for _, c := range op.Txn.Compares {
			m.keys = append(m.keys, c.Key)
		}
		for _, w := range slices.Concat(op.Txn.Then, op.Txn.Else) {
			m.keys = append(m.keys, w.Key)
		}
	}
	slices.Sort(m.keys)
	m.keys = slices.Compact(m.keys)
	if len(m.keys) > MaxTxnKeys {
		return Result{}, fmt.Errorf("check txn history: %d keys, more than %d: %w", len(m.keys), MaxTxnKeys, ErrInvalidOp)
	}
	history := make([]porcupine.Operation, 0, len(ops))
	for n := range ops {
		op := &ops[n]
		if op.Client < 0 || op.Call < 0 || (!op.Out.Unknown && op.Return < op.Call) {
			return Result{}, fmt.Errorf("check txn history: op %d by client %d at %d-%d: %w", n, op.Client, op.Call, op.Return, ErrInvalidOp)
		}
		if op.Txn == nil && op.Out.Unknown {
			continue
		}
		ret := op.Return
		if op.Out.Unknown {
			ret = math.MaxInt64
		}
		history = append(history, porcupine.Operation{ClientId: op.Client, Input: op, Call: op.Call, Output: op.Out, Return: ret})
	}
	verdict, info := porcupine.CheckOperationsVerbose(m.porcupine(), history, timeout)
	return Result{
		Linearizable: verdict == porcupine.Ok,
		Unknown:      verdict == porcupine.Unknown,
		Ops:          len(history),
		Dropped:      len(ops) - len(history),
		Keys:         len(m.keys),
		info:         info,
		model:        m.porcupine(),
	}, nil
}

// TxnRecorder collects the operations of a multi-key history from concurrent clients. It
// is safe for concurrent use.
type TxnRecorder struct {
	start time.Time

	mu   sync.Mutex
	ops  []TxnOp
	done []bool
}

// TxnPending is a TxnOp that has been called and not yet returned.
type TxnPending struct {
	r *TxnRecorder
	i int
}

// NewTxnRecorder returns a recorder whose clock starts now.
func NewTxnRecorder() *TxnRecorder { return &TxnRecorder{start: time.Now()} }

// Begin records the call of a transaction, or of a read when t is nil. Call it immediately
// before sending the request.
func (r *TxnRecorder) Begin(client int, t *store.Txn) *TxnPending {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops = append(r.ops, TxnOp{Client: client, Txn: t, Call: int64(time.Since(r.start))})
	r.done = append(r.done, false)
	return &TxnPending{r: r, i: len(r.ops) - 1}
}

// End records the return of the operation with what the client observed; only the first
// End counts.
func (p *TxnPending) End(out TxnOutput) {
	r := p.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done[p.i] {
		return
	}
	r.done[p.i] = true
	r.ops[p.i].Return = int64(time.Since(r.start))
	r.ops[p.i].Out = out
}

// Ops returns a copy of the history so far; operations not yet ended are Unknown.
func (r *TxnRecorder) Ops() []TxnOp {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := slices.Clone(r.ops)
	for i := range out {
		if !r.done[i] {
			out[i].Return = math.MaxInt64
			out[i].Out = TxnOutput{Unknown: true}
		}
	}
	return out
}
