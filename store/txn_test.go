package store

import (
	"errors"
	"reflect"
	"testing"
)

func txnPut(key, value string) TxnOp { return TxnOp{Op: OpPut, Key: key, Value: []byte(value)} }
func txnDel(key string) TxnOp        { return TxnOp{Op: OpDelete, Key: key} }

func revIs(key string, cmp Cmp, rev int64) Compare {
	return Compare{Key: key, Target: TargetRevision, Cmp: cmp, Revision: rev}
}

// applyTxn applies t as the next entry of s and returns its result.
func applyTxn(tb testing.TB, s *Store, t Txn) Result {
	tb.Helper()
	r := s.Apply(s.AppliedIndex()+1, EncodeCommand(Command{Op: OpTxn, Txn: &t}))
	if r.Err != nil {
		tb.Fatalf("apply txn %+v: %v", t, r.Err)
	}
	if r.Txn == nil {
		tb.Fatalf("apply txn %+v: no TxnResult", t)
	}
	return r
}

func TestStore_Txn(t *testing.T) {
	for _, mode := range storeModes {
		t.Run(mode.name, func(t *testing.T) {
			s := openStore(t, mode.opts)
			mustApply(t, s, put("a", "1"), put("b", "2")) // a@1 b@2

			t.Run("then", func(t *testing.T) {
				r := applyTxn(t, s, Txn{
					Compares: []Compare{revIs("a", CmpEqual, 1), {Key: "b", Target: TargetValue, Cmp: CmpEqual, Value: []byte("2")}},
					Then:     []TxnOp{txnPut("a", "10"), txnPut("c", "30"), txnDel("b"), txnDel("nope")},
					Else:     []TxnOp{txnPut("else", "x")},
				})
				want := Result{Revision: 3, Txn: &TxnResult{Succeeded: true, Ops: []OpResult{{3}, {3}, {3}, {0}}}}
				if !reflect.DeepEqual(r, want) {
					t.Fatalf("txn = %+v %+v, want %+v %+v", r, r.Txn, want, want.Txn)
				}
				for key, rev := range map[string]int64{"a": 3, "c": 3} {
					kv, err := s.Get(key)
					if err != nil || kv.Revision != rev {
						t.Errorf("Get(%q) = %+v, %v; want revision %d", key, kv, err, rev)
					}
				}
				if kv, _ := s.Get("a"); kv.Created != 1 || string(kv.Value) != "10" {
					t.Errorf("a = %+v, want value 10 created at 1", kv)
				}
				if kv, _ := s.Get("c"); kv.Created != 3 {
					t.Errorf("c = %+v, want created at 3", kv)
				}
				if _, err := s.Get("b"); !errors.Is(err, ErrNotFound) {
					t.Errorf("Get(b) = %v, want ErrNotFound", err)
				}
			})
			t.Run("else", func(t *testing.T) {
				r := applyTxn(t, s, Txn{
					Compares: []Compare{revIs("a", CmpEqual, 3), revIs("c", CmpEqual, 1)},
					Then:     []TxnOp{txnPut("then", "x")},
					Else:     []TxnOp{txnPut("e", "5")},
				})
				want := Result{Revision: 4, Txn: &TxnResult{Succeeded: false, Ops: []OpResult{{4}}}}
				if !reflect.DeepEqual(r, want) {
					t.Fatalf("txn = %+v %+v, want %+v %+v", r, r.Txn, want, want.Txn)
				}
				if _, err := s.Get("then"); !errors.Is(err, ErrNotFound) {
					t.Errorf("the then branch wrote: Get(then) = %v", err)
				}
			})
			t.Run("no-change", func(t *testing.T) {
				// A branch that changes nothing takes no revision.
				r := applyTxn(t, s, Txn{Compares: []Compare{revIs("a", CmpLess, 0)}, Else: []TxnOp{txnDel("gone")}})
				want := Result{Revision: 4, Txn: &TxnResult{Ops: []OpResult{{0}}}}
				if !reflect.DeepEqual(r, want) || s.Revision() != 4 {
					t.Fatalf("txn = %+v %+v, store at %d; want %+v, store at 4", r, r.Txn, s.Revision(), want)
				}
			})
			t.Run("absent-keys", func(t *testing.T) {
				r := applyTxn(t, s, Txn{
					Compares: []Compare{
						{Key: "x", Target: TargetExists, Cmp: CmpNotEqual},
						revIs("y", CmpEqual, 0),
						{Key: "z", Target: TargetValue, Cmp: CmpNotEqual, Value: []byte("")},
					},
					Then: []TxnOp{txnPut("x", "1"), txnPut("y", "2")},
				})
				if !r.Txn.Succeeded || r.Revision != 5 {
					t.Fatalf("txn = %+v %+v, want then at revision 5", r, r.Txn)
				}
			})
		})
	}
}

// TestStore_Txn_Atomic checks that no read sees part of a transaction: each writes all keys
// at once, and every read of a key agrees with the revision the store reports.
func TestStore_Txn_AtomicRevision(t *testing.T) {
	s := openStore(t, Options{})
	keys := []string{"k1", "k2", "k3"}
	for i := range 20 {
		var ops []TxnOp
		for _, k := range keys {
			ops = append(ops, txnPut(k, string(rune('a'+i))))
		}
		r := applyTxn(t, s, Txn{Then: ops})
		for _, k := range keys {
			kv, err := s.Get(k)
			if err != nil || kv.Revision != r.Revision {
				t.Fatalf("after txn %d: Get(%s) = %+v, %v; want revision %d", i, k, kv, err, r.Revision)
			}
		}
		if r.Revision != int64(i+1) {
			t.Fatalf("txn %d at revision %d, want %d: one revision per transaction", i, r.Revision, i+1)
		}
	}
}

func TestCompare_Holds(t *testing.T) {
	for _, tc := range []struct {
		name  string
		c     Compare
		rev   int64
		value string
		want  bool
	}{
		{"rev-equal", revIs("k", CmpEqual, 3), 3, "v", true},
		{"rev-equal-miss", revIs("k", CmpEqual, 3), 4, "v", false},
		{"rev-not-equal", revIs("k", CmpNotEqual, 3), 4, "v", true},
		{"rev-less", revIs("k", CmpLess, 3), 2, "v", true},
		{"rev-less-equal", revIs("k", CmpLess, 3), 3, "v", false},
		{"rev-greater", revIs("k", CmpGreater, 3), 4, "v", true},
		{"rev-greater-absent", revIs("k", CmpGreater, 0), 0, "", false},
		{"rev-zero-absent", revIs("k", CmpEqual, 0), 0, "", true},
		{"value-equal", Compare{Target: TargetValue, Cmp: CmpEqual, Value: []byte("v")}, 2, "v", true},
		{"value-differs", Compare{Target: TargetValue, Cmp: CmpEqual, Value: []byte("v")}, 2, "w", false},
		{"value-empty-absent", Compare{Target: TargetValue, Cmp: CmpEqual}, 0, "", false},
		{"value-empty-present", Compare{Target: TargetValue, Cmp: CmpEqual}, 2, "", true},
		{"value-not-equal-absent", Compare{Target: TargetValue, Cmp: CmpNotEqual, Value: []byte("v")}, 0, "", true},
		{"exists", Compare{Target: TargetExists, Cmp: CmpEqual}, 1, "", true},
		{"exists-absent", Compare{Target: TargetExists, Cmp: CmpEqual}, 0, "", false},
		{"absent", Compare{Target: TargetExists, Cmp: CmpNotEqual}, 0, "", true},
		{"absent-present", Compare{Target: TargetExists, Cmp: CmpNotEqual}, 5, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.c.Holds(tc.rev, []byte(tc.value)); got != tc.want {
				t.Errorf("%+v holds for revision %d value %q = %v, want %v", tc.c, tc.rev, tc.value, got, tc.want)
			}
		})
	}
}

func TestDecodeCommand_BadTxn(t *testing.T) {
	long := string(make([]byte, maxKeyBytes+1))
	for _, tc := range []struct {
		name string
		txn  Txn
	}{
		{"empty-compare-key", Txn{Compares: []Compare{revIs("", CmpEqual, 1)}}},
		{"long-key", Txn{Then: []TxnOp{txnPut(long, "v")}}},
		{"unknown-target", Txn{Compares: []Compare{{Key: "k", Target: 9, Cmp: CmpEqual}}}},
		{"less-on-value", Txn{Compares: []Compare{{Key: "k", Target: TargetValue, Cmp: CmpLess}}}},
		{"revision-on-exists", Txn{Compares: []Compare{{Key: "k", Target: TargetExists, Cmp: CmpEqual, Revision: 2}}}},
		{"noop-write", Txn{Then: []TxnOp{{Op: OpNoop, Key: "k"}}}},
		{"delete-with-value", Txn{Else: []TxnOp{{Op: OpDelete, Key: "k", Value: []byte("v")}}}},
		{"key-twice", Txn{Then: []TxnOp{txnPut("k", "1"), txnDel("k")}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := EncodeCommand(Command{Op: OpTxn, Txn: &tc.txn})
			if _, err := DecodeCommand(b); !errors.Is(err, ErrBadCommand) {
				t.Errorf("DecodeCommand(%+v) = %v, want ErrBadCommand", tc.txn, err)
			}
		})
	}
	// A hostile count must be refused before anything is allocated for it.
	b := append([]byte{commandVersion, byte(OpTxn), 0, 11}, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0, 0, 0, 0)
	b = append(b, 0, 0, 0, 0, 0, 0, 0)
	if _, err := DecodeCommand(b); !errors.Is(err, ErrBadCommand) {
		t.Errorf("DecodeCommand(huge count) = %v, want ErrBadCommand", err)
	}
}
