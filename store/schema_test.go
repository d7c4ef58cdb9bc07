package store

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// The golden records in testdata/ were written once by the release whose schema they pin:
// raft log commands, member records as bbolt holds them, and a snapshot. Every member keeps
// them in its log, its file and the snapshots it sends, so the tests below decode them with
// today's code and check every field. A change that makes one of them fail would break the
// logs and snapshots of a running group: give the changed record a new version instead, keep
// decoding the old one, and add golden files for the new version next to the old ones.
var update = flag.Bool("update", false, "write the golden records in testdata/ that do not exist yet from the current encoders")

// golden returns the bytes of testdata/name. With -update it first writes gen's bytes there
// if the file does not exist: an existing golden record is never rewritten, since old logs
// and snapshots do not change either.
func golden(tb testing.TB, name string, gen func() []byte) []byte {
	tb.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if _, err := os.Stat(path); os.IsNotExist(err) {
			if err := os.MkdirAll("testdata", 0o755); err != nil {
				tb.Fatal(err)
			}
			if err := os.WriteFile(path, gen(), 0o644); err != nil {
				tb.Fatal(err)
			}
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("read golden record (go test -run TestSchema -update writes a missing one): %v", err)
	}
	return b
}

// The members of the golden records: one with every field set, and one with only the fields
// JSON writes even when empty.
var (
	goldenFull    = Member{Name: "m1", MemberAddr: "10.0.0.1:7001", ClientURL: "https://10.0.0.1:7443", DN: "CN=m1,O=mirrorkv", Async: true}
	goldenMinimal = Member{Name: "m2", MemberAddr: "10.0.0.2:7001", DN: "CN=m2"}
)

// goldenTxn has a compare of every target and relation and a write of every kind.
var goldenTxn = Txn{
	Compares: []Compare{
		{Key: "acct/a", Target: TargetRevision, Cmp: CmpEqual, Revision: 12},
		{Key: "acct/b", Target: TargetRevision, Cmp: CmpNotEqual, Revision: 3},
		{Key: "acct/c", Target: TargetRevision, Cmp: CmpLess, Revision: 100},
		{Key: "acct/d", Target: TargetRevision, Cmp: CmpGreater, Revision: -1},
		{Key: "flag", Target: TargetValue, Cmp: CmpEqual, Value: []byte("on\x00")},
		{Key: "flag2", Target: TargetValue, Cmp: CmpNotEqual},
		{Key: "lock", Target: TargetExists, Cmp: CmpNotEqual},
		{Key: "owner", Target: TargetExists, Cmp: CmpEqual},
	},
	Then: []TxnOp{{Op: OpPut, Key: "acct/a", Value: []byte("90")}, {Op: OpDelete, Key: "lock"}},
	Else: []TxnOp{{Op: OpPut, Key: "failed", Value: []byte("1")}},
}

// TestSchema_Command decodes a raft log command of every op written by commandVersion 1, and
// checks that today's encoder still writes the same bytes for it.
func TestSchema_Command(t *testing.T) {
	for _, tc := range []struct {
		name string
		cmd  Command
	}{
		{"put", Command{Op: OpPut, Key: "k/1", Value: []byte("v\x00\xff"), HasIf: true, IfRevision: 41}},
		{"put-unconditional", Command{Op: OpPut, Key: "k/2", Value: []byte("value")}},
		{"delete", Command{Op: OpDelete, Key: "k/1", HasIf: true, IfRevision: 7}},
		{"set-member", Command{Op: OpSetMember, Member: goldenFull}},
		{"set-member-minimal", Command{Op: OpSetMember, Member: goldenMinimal}},
		{"remove-member", Command{Op: OpRemoveMember, Member: Member{Name: "m2"}}},
		{"noop", Command{Op: OpNoop}},
		{"txn", Command{Op: OpTxn, Txn: &goldenTxn}},
		{"txn-empty", Command{Op: OpTxn, Txn: &Txn{}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := golden(t, "command-v1-"+tc.name+".bin", func() []byte { return EncodeCommand(tc.cmd) })
			got, err := DecodeCommand(b)
			if err != nil {
				t.Fatalf("DecodeCommand(%x) = %v", b, err)
			}
			if !reflect.DeepEqual(got, tc.cmd) {
				t.Errorf("DecodeCommand(%x) =\n %+v\nwant\n %+v", b, got, tc.cmd)
			}
			if enc := EncodeCommand(tc.cmd); !bytes.Equal(enc, b) {
				t.Errorf("EncodeCommand(%+v) =\n %x\nwant the bytes of version 1\n %x", tc.cmd, enc, b)
			}
		})
	}
}

// TestSchema_MemberRecord plants member records as bbolt held them in a store file, opens
// it (which verifies every record) and reads them back; and checks that applying the same
// member today stores the same bytes.
func TestSchema_MemberRecord(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    Member
	}{
		{"full", goldenFull},
		{"minimal", goldenMinimal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := golden(t, "member-record-"+tc.name+".bin", func() []byte { return storedMember(t, tc.m) })
			path := filepath.Join(t.TempDir(), "state.db")
			s, err := Open(path, Options{NoFsync: true})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			plant(t, path, bucketMembers, tc.m.Name, b)
			s = openAt(t, path, Options{NoFsync: true})
			got, err := s.Members()
			if err != nil {
				t.Fatalf("Members() = %v", err)
			}
			if want := []Member{tc.m}; !reflect.DeepEqual(got, want) {
				t.Errorf("Members() =\n %+v\nwant\n %+v", got, want)
			}
			if rec := storedMember(t, tc.m); !bytes.Equal(rec, b) {
				t.Errorf("stored member record =\n %x\nwant the golden bytes\n %x", rec, b)
			}
		})
	}
}

// storedMember applies m to a new store and returns its record as bbolt holds it.
func storedMember(tb testing.TB, m Member) []byte {
	tb.Helper()
	s := openStore(tb, Options{})
	mustApply(tb, s, Command{Op: OpSetMember, Member: m})
	var rec []byte
	err := s.view(func(tx *bolt.Tx) error {
		rec = bytes.Clone(tx.Bucket([]byte(bucketMembers)).Get([]byte(m.Name)))
		return nil
	})
	if err != nil || rec == nil {
		tb.Fatalf("read member record %q: %v, %d bytes", m.Name, err, len(rec))
	}
	return rec
}

// plant writes value under key in bucket of the closed store file at path.
func plant(tb testing.TB, path, bucket, key string, value []byte) {
	tb.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		tb.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucket)).Put([]byte(key), value)
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		tb.Fatalf("plant %s/%s: %v", bucket, key, err)
	}
}

// TestSchema_Snapshot restores a snapshot written by the current release and checks every
// key, revision and member, then that a snapshot of the restored store is the same bytes.
func TestSchema_Snapshot(t *testing.T) {
	b := golden(t, "snapshot-v1.bin", func() []byte {
		s := openStore(t, Options{})
		mustApply(t, s,
			put("a", "1"), put("bin\x00\xff", "\x00\x01"), put("gone", "x"), put("a", "2"),
			del("gone"), put("empty", ""),
			Command{Op: OpSetMember, Member: goldenMinimal},
			Command{Op: OpSetMember, Member: goldenFull},
		)
		return snapshotBytes(t, s)
	})
	s := openStore(t, Options{})
	if err := s.Restore(bytes.NewReader(b)); err != nil {
		t.Fatalf("Restore(golden snapshot) = %v", err)
	}
	want := state{
		Applied:  8,
		Revision: 6,
		KVs: []KV{
			{Key: "a", Value: []byte("2"), Revision: 4, Created: 1},
			{Key: "bin\x00\xff", Value: []byte("\x00\x01"), Revision: 2, Created: 2},
			{Key: "empty", Value: nil, Revision: 6, Created: 6},
		},
		Members: []Member{goldenFull, goldenMinimal},
	}
	assertState(t, dump(t, s), want)
	if again := snapshotBytes(t, s); !bytes.Equal(again, b) {
		t.Errorf("snapshot of the restored store =\n %x\nwant the golden bytes\n %x", again, b)
	}
}
