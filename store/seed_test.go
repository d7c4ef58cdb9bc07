package store

import (
	"bytes"
	"errors"
	"testing"
)

func TestSeed(t *testing.T) {
	src := openStore(t, Options{})
	mustApply(t, src, setMember("m0", "a:1"), put("a", "1"), put("b", "2"), put("a", "3"), del("b"), put("c", "4"),
		grant(60), putLease("e", "6", 7))
	var stream bytes.Buffer
	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := snap.WriteTo(&stream); err != nil {
		t.Fatal(err)
	}
	snap.Release()

	// A damaged stream leaves the new store empty.
	dst := openStore(t, Options{})
	bad := bytes.Clone(stream.Bytes())
	bad[len(bad)/2] ^= 0x40
	if err := dst.Seed(bytes.NewReader(bad)); !errors.Is(err, ErrBadSnapshot) {
		t.Fatalf("Seed(damaged) = %v, want ErrBadSnapshot", err)
	}
	if dst.Revision() != 0 {
		t.Fatalf("a refused seed left revision %d", dst.Revision())
	}

	if err := dst.Seed(bytes.NewReader(stream.Bytes())); err != nil {
		t.Fatal(err)
	}
	if dst.AppliedIndex() != 0 || dst.Revision() != src.Revision() {
		t.Fatalf("seeded: applied %d, revision %d; want 0 and %d", dst.AppliedIndex(), dst.Revision(), src.Revision())
	}
	for _, key := range []string{"a", "c"} {
		want, _ := src.Get(key)
		if got, err := dst.Get(key); err != nil || got.Revision != want.Revision || got.Created != want.Created || !bytes.Equal(got.Value, want.Value) {
			t.Errorf("seeded %s = %+v, %v; want %+v", key, got, err, want)
		}
	}
	if _, err := dst.Get("b"); !errors.Is(err, ErrNotFound) {
		t.Errorf("seeded b (deleted before the backup): %v", err)
	}
	if ms, err := dst.Members(); err != nil || len(ms) != 0 {
		t.Errorf("seeded members = %v, %v; want none: the old group's members are not this group's", ms, err)
	}
	// The new group's log starts at index 1, and revisions go on from the backup's.
	mustApply(t, dst, setMember("n0", "b:1"), put("d", "5"))
	if got, _ := dst.Get("d"); got.Revision != src.Revision()+1 {
		t.Errorf("first put after the seed has revision %d, want %d", got.Revision, src.Revision()+1)
	}
	// The lease granted at index 7 of the old group is kept; a grant at index 7 of the new
	// one takes another ID.
	mustApply(t, dst, put("f", "x"), put("g", "x"), put("h", "x"), put("i", "x"))
	if dst.AppliedIndex() != 6 {
		t.Fatalf("applied %d, want 6", dst.AppliedIndex())
	}
	res := dst.ApplyBatch(entries(7, grant(30)))
	if res[0].Err != nil || res[0].Lease == nil || res[0].Lease.ID == 7 {
		t.Fatalf("grant at index 7 after a seed holding lease 7 = %+v", res[0])
	}
	if r := dst.ApplyBatch(entries(8, putLease("e2", "x", 7), putLease("e3", "x", res[0].Lease.ID))); r[0].Err != nil || r[1].Err != nil {
		t.Fatalf("puts on the restored lease and the new one: %v, %v", r[0].Err, r[1].Err)
	}
	if err := dst.Seed(bytes.NewReader(stream.Bytes())); err == nil {
		t.Error("a store with state of its own was seeded over")
	}
}
