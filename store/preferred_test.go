package store

import (
	"bytes"
	"errors"
	"testing"
)

// TestStore_SetPreferred: a set-preferred command moves the preference from one member to
// another at the command's index, a member record update keeps it, a name that is not a
// member fails the command and changes nothing, and a snapshot carries it to another store.
func TestStore_SetPreferred(t *testing.T) {
	for _, mode := range storeModes {
		t.Run(mode.name, func(t *testing.T) {
			s := openStore(t, mode.opts)
			mustApply(t, s, setMember("m1", "a:1"), setMember("m2", "a:2"), setMember("m3", "a:3"))
			preferred := func() string {
				t.Helper()
				ms, err := s.Members()
				if err != nil {
					t.Fatal(err)
				}
				m, ok := Preferred(ms)
				if !ok {
					return ""
				}
				return m.Name
			}
			if got := preferred(); got != "" {
				t.Fatalf("preferred of a new group = %q, want none", got)
			}
			mustApply(t, s, Command{Op: OpSetPreferred, Member: Member{Name: "m2"}})
			if got := preferred(); got != "m2" {
				t.Fatalf("preferred = %q, want m2", got)
			}
			mustApply(t, s, setMember("m2", "a:22")) // an address change keeps the preference
			if got := preferred(); got != "m2" {
				t.Fatalf("preferred after a record update = %q, want m2", got)
			}
			mustApply(t, s, Command{Op: OpSetPreferred, Key: "m2", Member: Member{Name: "m3"}})
			ms, _ := s.Members()
			if ms[1].PreferredIndex != 0 || ms[2].PreferredIndex != s.AppliedIndex() {
				t.Fatalf("after moving the preference to m3: %+v", ms)
			}
			res := s.Apply(s.AppliedIndex()+1, EncodeCommand(Command{Op: OpSetPreferred, Key: "m3", Member: Member{Name: "nobody"}}))
			if !errors.Is(res.Err, ErrNotFound) || preferred() != "m3" {
				t.Fatalf("prefer a non-member = %v, preferred %q; want ErrNotFound and m3 kept", res.Err, preferred())
			}
			mustApply(t, s, Command{Op: OpSetPreferred, Key: "m3"})
			if got := preferred(); got != "" {
				t.Fatalf("preferred after clearing = %q, want none", got)
			}
			mustApply(t, s, Command{Op: OpSetPreferred, Member: Member{Name: "m1"}})
			other := openStore(t, Options{})
			if err := other.Restore(bytes.NewReader(snapshotBytes(t, s))); err != nil {
				t.Fatalf("Restore: %v", err)
			}
			assertState(t, dump(t, other), dump(t, s))
		})
	}
}

func TestPreferred(t *testing.T) {
	ms := []Member{{Name: "a", PreferredIndex: 7}, {Name: "b"}, {Name: "c", PreferredIndex: 9}}
	if m, ok := Preferred(ms); !ok || m.Name != "c" {
		t.Fatalf("Preferred = %+v, %v; want c, the most recent", m, ok)
	}
	if _, ok := Preferred(ms[1:2]); ok {
		t.Fatal("Preferred of no preferred member reports one")
	}
}
