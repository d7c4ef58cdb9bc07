package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"path/filepath"
	"reflect"
	"testing"
)

func grant(ttl int64) Command { return Command{Op: OpLeaseGrant, LeaseTTL: ttl} }

func putLease(key, value string, id int64) Command {
	return Command{Op: OpPut, Key: key, Value: []byte(value), Lease: id}
}

func revoke(id int64) Command    { return Command{Op: OpLeaseRevoke, Lease: id} }
func keepAlive(id int64) Command { return Command{Op: OpLeaseKeepAlive, Lease: id} }

// applyOne applies c at the next index and returns its result.
func applyOne(tb testing.TB, s *Store, c Command) Result {
	tb.Helper()
	return s.Apply(s.AppliedIndex()+1, EncodeCommand(c))
}

// mustGrant grants a lease of ttl seconds and returns its ID.
func mustGrant(tb testing.TB, s *Store, ttl int64) int64 {
	tb.Helper()
	r := applyOne(tb, s, grant(ttl))
	if r.Err != nil || r.Lease == nil {
		tb.Fatalf("grant = %+v", r)
	}
	if r.Lease.ID != int64(s.AppliedIndex()) || r.Lease.TTL != ttl {
		tb.Fatalf("grant = %+v, want ID %d (the entry's index) and TTL %d", r.Lease, s.AppliedIndex(), ttl)
	}
	return r.Lease.ID
}

func leaseKeys(tb testing.TB, s *Store, id int64) []string {
	tb.Helper()
	l, err := s.Lease(id)
	if err != nil {
		tb.Fatalf("Lease(%d) = %v", id, err)
	}
	return l.Keys
}

func TestStore_Lease(t *testing.T) {
	for _, m := range storeModes {
		t.Run(m.name, func(t *testing.T) {
			s := openStore(t, m.opts)
			id := mustGrant(t, s, 10)
			other := mustGrant(t, s, 20)
			mustApply(t, s, putLease("a", "1", id), putLease("b", "1", id), putLease("c", "1", other), put("d", "1"))
			if got := leaseKeys(t, s, id); !reflect.DeepEqual(got, []string{"a", "b"}) {
				t.Fatalf("keys of lease %d = %q", id, got)
			}

			t.Run("unknown lease refused", func(t *testing.T) {
				r := applyOne(t, s, putLease("d", "2", 999))
				if !errors.Is(r.Err, ErrLeaseNotFound) {
					t.Fatalf("put with unknown lease = %+v, want ErrLeaseNotFound", r)
				}
				if kv, _ := s.Get("d"); string(kv.Value) != "1" {
					t.Fatalf("refused put changed d: %+v", kv)
				}
			})
			t.Run("keep-alive", func(t *testing.T) {
				r := applyOne(t, s, keepAlive(id))
				if r.Err != nil || r.Lease.TTL != 10 || r.Lease.Touched != int64(s.AppliedIndex()) {
					t.Fatalf("keep-alive = %+v", r)
				}
				if r := applyOne(t, s, keepAlive(999)); !errors.Is(r.Err, ErrLeaseNotFound) {
					t.Fatalf("keep-alive of unknown lease = %+v", r)
				}
			})
			t.Run("moves between leases", func(t *testing.T) {
				mustApply(t, s, putLease("c", "2", id))
				if got := leaseKeys(t, s, other); len(got) != 0 {
					t.Fatalf("lease %d still has %q", other, got)
				}
				mustApply(t, s, put("c", "3"), del("b"), putLease("e", "1", id), Command{Op: OpTxn, Txn: &Txn{Then: []TxnOp{txnPut("e", "2")}}})
				if got := leaseKeys(t, s, id); !reflect.DeepEqual(got, []string{"a"}) {
					t.Fatalf("after a put without lease, a delete and a txn put: keys %q, want [a]", got)
				}
			})
			t.Run("stale expiry refused", func(t *testing.T) {
				touched := s.Leases()[0].Touched
				r := applyOne(t, s, Command{Op: OpLeaseRevoke, Lease: id, HasIf: true, IfRevision: touched - 1})
				if _, ok := errors.AsType[*PreconditionError](r.Err); !ok {
					t.Fatalf("revoke on a stale touched index = %+v, want a PreconditionError", r)
				}
			})
			t.Run("revoke deletes its keys in one revision", func(t *testing.T) {
				mustApply(t, s, putLease("b", "x", id), putLease("z", "x", id))
				before := s.Revision()
				r := applyOne(t, s, Command{Op: OpLeaseRevoke, Lease: id, HasIf: true, IfRevision: s.Leases()[0].Touched})
				if r.Err != nil || r.Revision != before+1 {
					t.Fatalf("revoke = %+v, want revision %d", r, before+1)
				}
				if !reflect.DeepEqual(r.Lease.Keys, []string{"a", "b", "z"}) {
					t.Fatalf("revoke deleted %q", r.Lease.Keys)
				}
				for _, k := range []string{"a", "b", "z"} {
					if _, err := s.Get(k); !errors.Is(err, ErrNotFound) {
						t.Errorf("Get(%s) after revoke = %v", k, err)
					}
				}
				if kv, err := s.Get("c"); err != nil || string(kv.Value) != "3" {
					t.Errorf("Get(c) = %+v, %v: a detached key must stay", kv, err)
				}
				if ls := s.Leases(); len(ls) != 1 || ls[0].ID != other {
					t.Fatalf("Leases() = %+v, want only %d", ls, other)
				}
				if r := applyOne(t, s, revoke(id)); !errors.Is(r.Err, ErrLeaseNotFound) {
					t.Fatalf("second revoke = %+v", r)
				}
				if r := applyOne(t, s, revoke(other)); r.Err != nil || r.Revision != s.Revision() || r.Revision != before+1 {
					t.Fatalf("revoke of a lease without keys = %+v: it takes no revision", r)
				}
			})
		})
	}
}

func TestStore_Lease_Limit(t *testing.T) {
	s := openStore(t, Options{})
	limited := Command{Op: OpLeaseGrant, LeaseTTL: 5, MaxLeases: 2}
	mustApply(t, s, limited, limited)
	if r := applyOne(t, s, limited); !errors.Is(r.Err, ErrTooManyLeases) {
		t.Fatalf("third grant = %+v, want ErrTooManyLeases", r)
	}
	// In one batch, the count moves with the batch.
	rs := s.ApplyBatch(entries(s.AppliedIndex()+1, revoke(1), limited, limited))
	if rs[0].Err != nil || rs[1].Err != nil || !errors.Is(rs[2].Err, ErrTooManyLeases) {
		t.Fatalf("batch = %+v", rs)
	}
}

func TestStore_Lease_Reopen(t *testing.T) {
	for _, m := range storeModes {
		t.Run(m.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			m.opts.NoFsync = true
			s, err := Open(path, m.opts)
			if err != nil {
				t.Fatal(err)
			}
			id := mustGrant(t, s, 7)
			mustApply(t, s, putLease("k", "v", id))
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openAt(t, path, m.opts)
			if got := leaseKeys(t, s, id); !reflect.DeepEqual(got, []string{"k"}) {
				t.Fatalf("keys after reopen = %q", got)
			}
			if ls := s.Leases(); len(ls) != 1 || ls[0].TTL != 7 || ls[0].Refreshed.IsZero() {
				t.Fatalf("Leases() after reopen = %+v", ls)
			}
		})
	}
}

func TestSnapshot_Restore_Leases(t *testing.T) {
	for _, m := range storeModes {
		t.Run(m.name, func(t *testing.T) {
			src := openStore(t, m.opts)
			populate(t, src)
			id := mustGrant(t, src, 30)
			empty := mustGrant(t, src, 60)
			mustApply(t, src, putLease("l/1", "x", id), putLease("l/2", "y", id), keepAlive(id))
			data := snapshotBytes(t, src)

			dst := openStore(t, m.opts)
			stale := mustGrant(t, dst, 5)
			if err := dst.Restore(bytes.NewReader(data)); err != nil {
				t.Fatalf("Restore: %v", err)
			}
			got, want := dst.Leases(), src.Leases()
			if len(got) != 2 || got[0].ID != id || got[1].ID != empty || got[0].Touched != want[0].Touched || got[1].TTL != 60 {
				t.Fatalf("Leases() after restore = %+v, want %+v", got, want)
			}
			if stale != id && stale != empty {
				if _, err := dst.Lease(stale); !errors.Is(err, ErrLeaseNotFound) {
					t.Fatalf("a lease of the replaced state survived the restore: %v", err)
				}
			}
			if got := leaseKeys(t, dst, id); !reflect.DeepEqual(got, []string{"l/1", "l/2"}) {
				t.Fatalf("keys after restore = %q", got)
			}
			if again := snapshotBytes(t, dst); !bytes.Equal(again, data) {
				t.Fatal("the restored store's snapshot differs from the one it was restored from")
			}
			rev := dst.Revision()
			if r := applyOne(t, dst, revoke(id)); r.Err != nil || r.Revision != rev+1 {
				t.Fatalf("revoke after restore = %+v", r)
			}
			if _, err := dst.Get("l/2"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Get(l/2) after revoke = %v", err)
			}
		})
	}
}

func TestRestore_BadLeases(t *testing.T) {
	lease := func(id, ttl, touched uint64, keys ...string) []byte {
		b := []byte{recLease}
		for _, v := range []uint64{id, ttl, touched, uint64(len(keys))} {
			b = binary.AppendUvarint(b, v)
		}
		for _, k := range keys {
			b = appendField(b, k)
		}
		return b
	}
	ok := snapshotOf(metaRec(3, 1), kvRec("a", 1, 1, "x"), lease(2, 5, 2, "a"))
	s := openStore(t, Options{})
	if err := s.Restore(bytes.NewReader(ok)); err != nil {
		t.Fatalf("Restore(good) = %v", err)
	}
	for name, data := range map[string][]byte{
		"ids out of order":  snapshotOf(metaRec(3, 1), lease(2, 5, 2), lease(2, 5, 2)),
		"zero id":           snapshotOf(metaRec(3, 1), lease(0, 5, 2)),
		"zero ttl":          snapshotOf(metaRec(3, 1), lease(2, 0, 2)),
		"ttl too long":      snapshotOf(metaRec(3, 1), lease(2, MaxLeaseTTL+1, 2)),
		"keys out of order": snapshotOf(metaRec(3, 1), lease(2, 5, 2, "b", "a")),
		"key in two":        snapshotOf(metaRec(3, 1), lease(2, 5, 2, "a"), lease(3, 5, 3, "a")),
		"kv after lease":    snapshotOf(metaRec(3, 1), lease(2, 5, 2), kvRec("a", 1, 1, "x")),
		"empty key":         snapshotOf(metaRec(3, 1), lease(2, 5, 2, "")),
	} {
		t.Run(name, func(t *testing.T) {
			if err := s.Restore(bytes.NewReader(data)); !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("Restore = %v, want ErrBadSnapshot", err)
			}
		})
	}
}

func TestDecodeCommand_BadLease(t *testing.T) {
	for name, c := range map[string]Command{
		"grant with id":          {Op: OpLeaseGrant, Lease: 3, LeaseTTL: 5},
		"grant without ttl":      {Op: OpLeaseGrant},
		"grant ttl too long":     {Op: OpLeaseGrant, LeaseTTL: MaxLeaseTTL + 1},
		"grant with key":         {Op: OpLeaseGrant, LeaseTTL: 5, Key: "a"},
		"conditional grant":      {Op: OpLeaseGrant, LeaseTTL: 5, HasIf: true},
		"revoke without id":      {Op: OpLeaseRevoke},
		"keep-alive with ttl":    {Op: OpLeaseKeepAlive, Lease: 1, LeaseTTL: 5},
		"conditional keep-alive": {Op: OpLeaseKeepAlive, Lease: 1, HasIf: true, IfRevision: 1},
		"put with ttl":           {Op: OpPut, Key: "a", LeaseTTL: 5},
		"delete with lease":      {Op: OpDelete, Key: "a", Lease: 1},
		"noop with limit":        {Op: OpNoop, MaxLeases: 1},
		"txn delete with lease":  {Op: OpTxn, Txn: &Txn{Then: []TxnOp{{Op: OpDelete, Key: "a", Lease: 1}}}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := DecodeCommand(EncodeCommand(c)); !errors.Is(err, ErrBadCommand) {
				t.Fatalf("DecodeCommand(%+v) = %v, want ErrBadCommand", c, err)
			}
		})
	}
	// A command without lease fields encodes as it did before leases: no flag, no bytes.
	if b := EncodeCommand(put("a", "1")); len(b) != 13 {
		t.Fatalf("a put without a lease encodes to %x, not 13 bytes", b)
	}
}

func TestStore_Lease_Txn(t *testing.T) {
	for _, m := range storeModes {
		t.Run(m.name, func(t *testing.T) {
			s := openStore(t, m.opts)
			id := mustGrant(t, s, 10)
			mustApply(t, s, put("plain", "1"))
			r := applyOne(t, s, Command{Op: OpTxn, Txn: &Txn{Then: []TxnOp{
				{Op: OpPut, Key: "t/a", Value: []byte("1"), Lease: id}, {Op: OpPut, Key: "t/b", Lease: id}, txnPut("plain", "2")}}})
			if r.Err != nil {
				t.Fatalf("txn with lease puts = %+v", r)
			}
			if got := leaseKeys(t, s, id); !reflect.DeepEqual(got, []string{"t/a", "t/b"}) {
				t.Fatalf("keys after the txn = %q", got)
			}
			before := dump(t, s)
			r = applyOne(t, s, Command{Op: OpTxn, Txn: &Txn{Then: []TxnOp{txnPut("plain", "3"), {Op: OpPut, Key: "t/c", Lease: 999}}}})
			if !errors.Is(r.Err, ErrLeaseNotFound) {
				t.Fatalf("txn with an unknown lease = %+v, want ErrLeaseNotFound", r)
			}
			after := dump(t, s)
			after.Applied = before.Applied
			assertState(t, after, before)
			if r := applyOne(t, s, revoke(id)); r.Err != nil || !reflect.DeepEqual(r.Lease.Keys, []string{"t/a", "t/b"}) {
				t.Fatalf("revoke = %+v", r)
			}
		})
	}
}
