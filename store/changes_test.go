package store

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
)

// changeLine renders a change compactly for comparisons.
func changeLine(c Change) string {
	if c.Deleted {
		return fmt.Sprintf("%d del %s", c.Revision, c.Key)
	}
	return fmt.Sprintf("%d put %s=%s (created %d)", c.Revision, c.Key, c.Value, c.Created)
}

func allChanges(tb testing.TB, s *Store, from int64, prefix string) []string {
	tb.Helper()
	var out []string
	for from <= s.Revision() {
		cs, next, err := s.Changes(from, prefix, ChangeLimit{Records: 2})
		if err != nil {
			tb.Fatalf("Changes(%d, %q) = %v", from, prefix, err)
		}
		if next <= from {
			tb.Fatalf("Changes(%d) did not move: next %d", from, next)
		}
		for _, c := range cs {
			out = append(out, changeLine(c))
		}
		from = next
	}
	return out
}

func TestStore_Changes(t *testing.T) {
	for _, mode := range storeModes {
		t.Run(mode.name, func(t *testing.T) {
			s := openStore(t, mode.opts)
			mustApply(t, s, put("a/1", "x"), put("b/1", "y"), put("a/1", "z"), del("b/1"))
			applyTxn(t, s, Txn{Then: []TxnOp{txnPut("a/2", "t"), txnDel("a/1"), txnPut("b/2", "u")}})
			want := []string{
				"1 put a/1=x (created 1)",
				"2 put b/1=y (created 2)",
				"3 put a/1=z (created 1)",
				"4 del b/1",
				"5 del a/1",
				"5 put a/2=t (created 5)",
				"5 put b/2=u (created 5)",
			}
			if got := allChanges(t, s, 1, ""); !reflect.DeepEqual(got, want) {
				t.Errorf("all changes:\n got %q\nwant %q", got, want)
			}
			t.Run("prefix", func(t *testing.T) {
				want := []string{"1 put a/1=x (created 1)", "3 put a/1=z (created 1)", "5 del a/1", "5 put a/2=t (created 5)"}
				if got := allChanges(t, s, 1, "a/"); !reflect.DeepEqual(got, want) {
					t.Errorf("changes of a/:\n got %q\nwant %q", got, want)
				}
			})
			t.Run("a transaction comes whole", func(t *testing.T) {
				cs, next, err := s.Changes(5, "", ChangeLimit{Records: 1})
				if err != nil || len(cs) != 3 || next != 6 {
					t.Errorf("Changes(5, limit 1) = %d changes, next %d, %v; want 3, 6, nil", len(cs), next, err)
				}
			})
			t.Run("beyond the head", func(t *testing.T) {
				cs, next, err := s.Changes(6, "", ChangeLimit{})
				if err != nil || len(cs) != 0 || next != 6 {
					t.Errorf("Changes(6) = %v, %d, %v; want nothing, 6, nil", cs, next, err)
				}
			})
		})
	}
}

func TestStore_Changes_Retention(t *testing.T) {
	for _, mode := range storeModes {
		t.Run(mode.name, func(t *testing.T) {
			opts := mode.opts
			opts.ChangeRetention = 3
			s := openStore(t, opts)
			for i := range 6 {
				mustApply(t, s, put("k", fmt.Sprint(i)))
			}
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
			if got := s.OldestChange(); got != 4 {
				t.Errorf("OldestChange() = %d, want 4", got)
			}
			_, _, err := s.Changes(3, "", ChangeLimit{})
			if ce, ok := errors.AsType[*CompactedError](err); !ok || ce.Oldest != 4 || ce.From != 3 {
				t.Errorf("Changes(3) = %v, want a CompactedError from 3, oldest 4", err)
			}
			if got := allChanges(t, s, 4, ""); len(got) != 3 {
				t.Errorf("changes from 4 = %q, want 3", got)
			}
		})
	}
}

func TestStore_Changes_Restart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path, Options{NoFsync: true, ChangeRetention: 2})
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, put("a", "1"), put("a", "2"), put("a", "3"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, path, Options{NoFsync: true, ChangeRetention: 2})
	if got := s.OldestChange(); got != 2 {
		t.Errorf("OldestChange() after reopening = %d, want 2", got)
	}
	want := []string{"2 put a=2 (created 1)", "3 put a=3 (created 1)"}
	if got := allChanges(t, s, 2, ""); !reflect.DeepEqual(got, want) {
		t.Errorf("changes after reopening = %q, want %q", got, want)
	}
}

func TestStore_Changes_Restore(t *testing.T) {
	for _, mode := range storeModes {
		t.Run(mode.name, func(t *testing.T) {
			src := openStore(t, Options{})
			mustApply(t, src, put("a", "1"), put("b", "2"))
			snap := snapshotBytes(t, src)

			s := openStore(t, mode.opts)
			mustApply(t, s, put("x", "1"))
			woke := s.Changed()
			if err := s.Restore(bytes.NewReader(snap)); err != nil {
				t.Fatal(err)
			}
			select {
			case <-woke:
			default:
				t.Error("Restore did not close the Changed channel")
			}
			if got := s.OldestChange(); got != 3 {
				t.Errorf("OldestChange() after restore = %d, want 3", got)
			}
			if _, _, err := s.Changes(1, "", ChangeLimit{}); err == nil {
				t.Error("Changes(1) after restore: want a CompactedError")
			}
			mustApply(t, s, put("c", "3"))
			if got, want := allChanges(t, s, 3, ""), []string{"3 put c=3 (created 3)"}; !reflect.DeepEqual(got, want) {
				t.Errorf("changes after restore = %q, want %q", got, want)
			}
		})
	}
}

func TestStore_Changed(t *testing.T) {
	for _, mode := range storeModes {
		t.Run(mode.name, func(t *testing.T) {
			s := openStore(t, mode.opts)
			ch := s.Changed()
			mustApply(t, s, setMember("m1", "127.0.0.1:1")) // no revision: no wake-up
			select {
			case <-ch:
				t.Fatal("Changed closed without a new revision")
			default:
			}
			mustApply(t, s, put("a", "1"))
			select {
			case <-ch:
			default:
				t.Fatal("Changed not closed after a put")
			}
		})
	}
}

// TestStore_Changes_LeaseRevoke checks that the keys a revoke (or an expiry, which revokes)
// deletes reach the change log, at the revoke's one revision.
func TestStore_Changes_LeaseRevoke(t *testing.T) {
	for _, mode := range storeModes {
		t.Run(mode.name, func(t *testing.T) {
			s := openStore(t, mode.opts)
			id := mustGrant(t, s, 10)
			mustApply(t, s, putLease("l/a", "1", id), putLease("l/b", "2", id), put("l/c", "3"))
			if r := applyOne(t, s, revoke(id)); r.Err != nil {
				t.Fatalf("revoke = %v", r.Err)
			}
			want := []string{"1 put l/a=1 (created 1)", "2 put l/b=2 (created 2)", "3 put l/c=3 (created 3)", "4 del l/a", "4 del l/b"}
			if got := allChanges(t, s, 1, "l/"); !reflect.DeepEqual(got, want) {
				t.Errorf("changes:\n got %q\nwant %q", got, want)
			}
		})
	}
}
