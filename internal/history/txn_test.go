package history_test

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/mirrorkv/mirrorkv/internal/history"
	kv "github.com/mirrorkv/mirrorkv/store"
)

// transfer is a bank transfer between a and b, conditioned on the revisions read.
func transfer(a string, ra int64, va string, b string, rb int64, vb string) *kv.Txn {
	return &kv.Txn{
		Compares: []kv.Compare{
			{Key: a, Target: kv.TargetRevision, Cmp: kv.CmpEqual, Revision: ra},
			{Key: b, Target: kv.TargetRevision, Cmp: kv.CmpEqual, Revision: rb},
		},
		Then: []kv.TxnOp{{Op: kv.OpPut, Key: a, Value: []byte(va)}, {Op: kv.OpPut, Key: b, Value: []byte(vb)}},
	}
}

func txnOp(client int, t *kv.Txn, ok bool, rev, call, ret int64) history.TxnOp {
	return history.TxnOp{Client: client, Txn: t, Call: call, Return: ret, Out: history.TxnOutput{Succeeded: ok, Revision: rev}}
}

func read(client int, call, ret int64, kv map[string]history.KeyState) history.TxnOp {
	return history.TxnOp{Client: client, Call: call, Return: ret, Out: history.TxnOutput{Read: kv}}
}

// open creates a=100 and b=0 at revision 1 from a store at revision 0.
var open = &kv.Txn{
	Compares: []kv.Compare{{Key: "a", Target: kv.TargetExists, Cmp: kv.CmpNotEqual}, {Key: "b", Target: kv.TargetExists, Cmp: kv.CmpNotEqual}},
	Then:     []kv.TxnOp{{Op: kv.OpPut, Key: "a", Value: []byte("100")}, {Op: kv.OpPut, Key: "b", Value: []byte("0")}},
}

func TestCheckTxn(t *testing.T) {
	for _, tc := range []struct {
		name string
		ops  []history.TxnOp
		want bool
	}{
		{"sequential", []history.TxnOp{
			txnOp(0, open, true, 1, 0, 1),
			txnOp(0, transfer("a", 1, "70", "b", 1, "30"), true, 2, 2, 3),
			read(1, 4, 5, map[string]history.KeyState{"a": {"70", 2}, "b": {"30", 2}}),
		}, true},
		{"conflict, one applies", []history.TxnOp{
			txnOp(0, open, true, 1, 0, 1),
			txnOp(0, transfer("a", 1, "70", "b", 1, "30"), true, 2, 2, 10),
			txnOp(1, transfer("a", 1, "90", "b", 1, "10"), false, 2, 3, 9),
			read(2, 11, 12, map[string]history.KeyState{"a": {"70", 2}, "b": {"30", 2}}),
		}, true},
		{"conflict, both apply", []history.TxnOp{
			txnOp(0, open, true, 1, 0, 1),
			txnOp(0, transfer("a", 1, "70", "b", 1, "30"), true, 2, 2, 10),
			txnOp(1, transfer("a", 1, "90", "b", 1, "10"), true, 3, 3, 9),
		}, false},
		{"seen partially", []history.TxnOp{
			txnOp(0, open, true, 1, 0, 1),
			txnOp(0, transfer("a", 1, "70", "b", 1, "30"), true, 2, 2, 3),
			read(1, 4, 5, map[string]history.KeyState{"a": {"70", 2}, "b": {"0", 1}}),
		}, false},
		{"seen partially while it runs", []history.TxnOp{
			txnOp(0, open, true, 1, 0, 1),
			txnOp(0, transfer("a", 1, "70", "b", 1, "30"), true, 2, 2, 10),
			read(1, 4, 5, map[string]history.KeyState{"a": {"100", 1}, "b": {"30", 2}}),
		}, false},
		{"revisions split", []history.TxnOp{
			txnOp(0, open, true, 1, 0, 1),
			txnOp(0, transfer("a", 1, "70", "b", 1, "30"), true, 3, 2, 3),
		}, false},
		{"unknown applied", []history.TxnOp{
			txnOp(0, open, true, 1, 0, 1),
			{Client: 0, Txn: transfer("a", 1, "70", "b", 1, "30"), Call: 2, Return: 3, Out: history.TxnOutput{Unknown: true}},
			read(1, 4, 5, map[string]history.KeyState{"a": {"70", 2}, "b": {"30", 2}}),
			txnOp(1, transfer("a", 2, "60", "b", 2, "40"), true, 3, 6, 7),
		}, true},
		{"unknown never applied", []history.TxnOp{
			txnOp(0, open, true, 1, 0, 1),
			{Client: 0, Txn: transfer("a", 1, "70", "b", 1, "30"), Call: 2, Return: 3, Out: history.TxnOutput{Unknown: true}},
			read(1, 4, 5, map[string]history.KeyState{"a": {"100", 1}, "b": {"0", 1}}),
		}, true},
		{"else branch wrongly claimed", []history.TxnOp{
			txnOp(0, open, true, 1, 0, 1),
			txnOp(0, transfer("a", 1, "70", "b", 1, "30"), false, 1, 2, 3),
		}, false},
		{"stale read", []history.TxnOp{
			txnOp(0, open, true, 1, 0, 1),
			txnOp(0, transfer("a", 1, "70", "b", 1, "30"), true, 2, 2, 3),
			read(1, 4, 5, map[string]history.KeyState{"a": {"100", 1}, "b": {"0", 1}}),
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := history.CheckTxn(tc.ops, 0, checkTimeout)
			if err != nil {
				t.Fatal(err)
			}
			if res.Unknown || res.Linearizable != tc.want {
				t.Fatalf("CheckTxn = %+v, want linearizable %v", res, tc.want)
			}
			if !tc.want {
				if err := res.WriteHTML(filepath.Join(t.TempDir(), "report.html")); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestCheckTxn_Invalid(t *testing.T) {
	var keys []kv.TxnOp
	for _, k := range []string{"a", "b", "c", "d", "e", "f", "g", "h", "i"} {
		keys = append(keys, kv.TxnOp{Op: kv.OpPut, Key: k})
	}
	for name, ops := range map[string][]history.TxnOp{
		"too many keys":   {txnOp(0, &kv.Txn{Then: keys}, true, 1, 0, 1)},
		"returns early":   {txnOp(0, open, true, 1, 5, 1)},
		"negative client": {txnOp(-1, open, true, 1, 0, 1)},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := history.CheckTxn(ops, 0, checkTimeout); !errors.Is(err, history.ErrInvalidOp) {
				t.Fatalf("CheckTxn = %v, want ErrInvalidOp", err)
			}
		})
	}
}

func TestTxnRecorder(t *testing.T) {
	r := history.NewTxnRecorder()
	p := r.Begin(0, open)
	p.End(history.TxnOutput{Succeeded: true, Revision: 1})
	p.End(history.TxnOutput{Unknown: true}) // ignored
	r.Begin(1, nil)
	ops := r.Ops()
	if len(ops) != 2 || ops[0].Out.Unknown || !ops[0].Out.Succeeded || !ops[1].Out.Unknown {
		t.Fatalf("Ops = %+v", ops)
	}
	if res, err := history.CheckTxn(ops, 0, checkTimeout); err != nil || !res.Linearizable {
		t.Fatalf("CheckTxn(recorded) = %+v, %v", res, err)
	}
}
