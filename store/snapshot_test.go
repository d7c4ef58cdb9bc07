package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// populate gives s keys of several sizes, history (overwrites, deletes) and members.
func populate(tb testing.TB, s *Store) {
	tb.Helper()
	mustApply(tb, s,
		put("a", "1"), put("b", ""), put("bin\x00\xff", "\x00\x01"), put("a", "2"), del("b"),
		Command{Op: OpPut, Key: "big", Value: bytes.Repeat([]byte("x"), 100<<10)},
		setMember("m2", "10.0.0.2:7000"),
		Command{Op: OpSetMember, Member: Member{Name: "m1", MemberAddr: "10.0.0.1:7000", ClientURL: "https://m1", DN: "CN=m1", Async: true}},
	)
	for i := range 50 {
		mustApply(tb, s, put(fmt.Sprintf("many/%03d", i), strings.Repeat("v", i)))
	}
}

func TestSnapshot_Restore(t *testing.T) {
	for _, m := range storeModes {
		t.Run(m.name, func(t *testing.T) {
			src := openStore(t, m.opts)
			populate(t, src)
			data := snapshotBytes(t, src)

			dst := openStore(t, m.opts)
			mustApply(t, dst, put("only-in-dst", "1"), setMember("m9", "x:1"), put("a", "other"))
			if err := dst.Restore(bytes.NewReader(data)); err != nil {
				t.Fatalf("Restore: %v", err)
			}
			assertState(t, dump(t, dst), dump(t, src))
			if got := snapshotBytes(t, dst); !bytes.Equal(got, data) {
				t.Fatal("the restored store's snapshot differs from the one it was restored from")
			}
			// The restored store carries on from the snapshot's index and revision.
			r := dst.Apply(dst.AppliedIndex()+1, EncodeCommand(put("a", "3")))
			if r.Err != nil || r.Revision != src.Revision()+1 {
				t.Fatalf("apply after restore = %+v, want revision %d", r, src.Revision()+1)
			}
			if kv, _ := dst.Get("a"); kv.Created != 1 {
				t.Fatalf("Get(a) after restore = %+v, want created 1", kv)
			}
		})
	}
}

func TestSnapshot_Restore_SmallReads(t *testing.T) {
	for _, m := range storeModes {
		t.Run(m.name, func(t *testing.T) {
			src := openStore(t, m.opts)
			populate(t, src)
			data := snapshotBytes(t, src)
			dst := openStore(t, m.opts)
			if err := dst.Restore(iotest.OneByteReader(bytes.NewReader(data))); err != nil {
				t.Fatalf("Restore: %v", err)
			}
			assertState(t, dump(t, dst), dump(t, src))
		})
	}
}

func TestSnapshot_Restore_Persists(t *testing.T) {
	src := openStore(t, Options{})
	populate(t, src)
	dir := t.TempDir()
	path := dir + "/state.db"
	dst, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := dst.Restore(bytes.NewReader(snapshotBytes(t, src))); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	assertState(t, dump(t, openAt(t, path, Options{})), dump(t, src))
}

func TestSnapshot_PointInTime(t *testing.T) {
	for _, m := range storeModes {
		t.Run(m.name, func(t *testing.T) {
			s := openStore(t, m.opts)
			mustApply(t, s, put("a", "1"))
			snap, err := s.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			want := dump(t, s)
			mustApply(t, s, put("a", "2"), put("b", "1"), setMember("m1", "x:1"))
			var buf bytes.Buffer
			if _, err := snap.WriteTo(&buf); err != nil {
				t.Fatal(err)
			}
			snap.Release()
			snap.Release()
			if _, err := snap.WriteTo(io.Discard); err == nil {
				t.Fatal("WriteTo after Release succeeded")
			}
			dst := openStore(t, m.opts)
			if err := dst.Restore(&buf); err != nil {
				t.Fatal(err)
			}
			assertState(t, dump(t, dst), want)
		})
	}
}

func TestSnapshot_WriteError(t *testing.T) {
	s := openStore(t, Options{})
	populate(t, s)
	snap, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	boom := errors.New("connection reset")
	if _, err := snap.WriteTo(errWriter{boom}); !errors.Is(err, boom) {
		t.Fatalf("WriteTo = %v, want %v", err, boom)
	}
}

type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }

// snapshotOf builds a snapshot stream from records, with a correct end record, to test the
// checks that a checksum cannot catch.
func snapshotOf(records ...[]byte) []byte {
	b := []byte(snapshotMagic)
	for _, r := range records {
		b = append(b, r...)
	}
	sum := crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))
	return binary.BigEndian.AppendUint32(append(b, recEnd), sum)
}

func metaRec(applied, rev uint64) []byte {
	return binary.AppendUvarint(binary.AppendUvarint([]byte{recMeta}, applied), rev)
}

func kvRec(key string, rev, created uint64, value string) []byte {
	b := appendField([]byte{recKV}, key)
	b = binary.AppendUvarint(b, rev)
	b = binary.AppendUvarint(b, created)
	return appendField(b, value)
}

func memberRec(json string) []byte { return appendField([]byte{recMember}, json) }

func TestRestore_Bad(t *testing.T) {
	src := openStore(t, Options{})
	populate(t, src)
	good := snapshotBytes(t, src)
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 0x10
		return b
	}
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "truncated in magic"},
		{"magic only", []byte(snapshotMagic), "truncated in meta record"},
		{"wrong magic", append([]byte("MKVSNAP2"), good[8:]...), "not a mirrorkv snapshot"},
		{"truncated in a value", good[:len(good)/2], "truncated"},
		{"truncated before the checksum", good[:len(good)-4], "truncated in checksum"},
		{"no end record", good[:len(good)-5], "truncated in record type"},
		{"flipped byte in a value", flip(len(good) / 2), "checksum"},
		{"flipped checksum", flip(len(good) - 1), "checksum"},
		{"trailing data", append(bytes.Clone(good), 0), "data after the end record"},
		{"no meta", snapshotOf(kvRec("a", 1, 1, "")), "not the meta record"},
		{"unknown record", snapshotOf(metaRec(1, 1), []byte{'Z'}), "unknown record type 0x5a"},
		{"keys out of order", snapshotOf(metaRec(2, 2), kvRec("b", 1, 1, ""), kvRec("a", 2, 2, "")), `"a" is not after "b"`},
		{"duplicate key", snapshotOf(metaRec(2, 2), kvRec("a", 1, 1, ""), kvRec("a", 2, 2, "")), "is not after"},
		{"empty key", snapshotOf(metaRec(1, 1), kvRec("", 1, 1, "")), "empty key"},
		{"key revision above the store's", snapshotOf(metaRec(1, 1), kvRec("a", 2, 1, "")), "key revision is 2, above the limit of 1"},
		{"created after revision", snapshotOf(metaRec(5, 5), kvRec("a", 2, 3, "")), "creation revision is 3"},
		{"created at 0", snapshotOf(metaRec(5, 5), kvRec("a", 2, 0, "")), "created at revision 0"},
		{"kv after members", snapshotOf(metaRec(1, 1), memberRec(`{"name":"m"}`), kvRec("a", 1, 1, "")), "kv record after the member or CRL records"},
		{"member not JSON", snapshotOf(metaRec(1, 1), memberRec(`{`)), "member record"},
		{"member without name", snapshotOf(metaRec(1, 1), memberRec(`{"dn":"CN=x"}`)), "member without a name"},
		{"members out of order", snapshotOf(metaRec(1, 1), memberRec(`{"name":"b"}`), memberRec(`{"name":"a"}`)), `"a" is not after "b"`},
		{"non-minimal varint", snapshotOf([]byte{recMeta, 0x81, 0x00, 0}), "applied index is not a minimal uvarint"},
		{"varint overflow", snapshotOf(append([]byte{recMeta}, bytes.Repeat([]byte{0xff}, 11)...)), "overflows"},
		{"revision beyond int64", snapshotOf(binary.AppendUvarint([]byte{recMeta, 1}, 1<<63)), "revision is"},
		{"value longer than the stream", snapshotOf(metaRec(1, 1), append(appendField([]byte{recKV}, "a"), 1, 1, 0xff, 0xff, 0xff, 0x3f)), "truncated in value"},
		{"value above bbolt's limit", snapshotOf(metaRec(1, 1), append(appendField([]byte{recKV}, "a"), 1, 1, 0xff, 0xff, 0xff, 0xff, 0x07)), "value length is 2147483647, above the limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t, Options{})
			mustApply(t, s, put("keep", "me"), setMember("m1", "x:1"))
			before := dump(t, s)
			err := s.Restore(bytes.NewReader(tc.in))
			if !errors.Is(err, ErrBadSnapshot) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Restore = %v, want ErrBadSnapshot mentioning %q", err, tc.want)
			}
			assertState(t, dump(t, s), before)
			if _, err := os.Stat(s.path + restoreSuffix); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("restore file left behind: %v", err)
			}
		})
	}
	t.Run("reader fails", func(t *testing.T) {
		s := openStore(t, Options{})
		boom := errors.New("connection reset")
		err := s.Restore(io.MultiReader(bytes.NewReader(good[:100]), iotest.ErrReader(boom)))
		if !errors.Is(err, ErrBadSnapshot) || !errors.Is(err, boom) {
			t.Fatalf("Restore = %v, want ErrBadSnapshot and %v", err, boom)
		}
	})
	t.Run("valid hand-built", func(t *testing.T) {
		s := openStore(t, Options{})
		in := snapshotOf(metaRec(9, 4), kvRec("a", 4, 2, "v"), memberRec(`{"name":"m","memberAddr":"x:1","dn":"CN=m"}`))
		if err := s.Restore(bytes.NewReader(in)); err != nil {
			t.Fatal(err)
		}
		assertState(t, dump(t, s), state{Applied: 9, Revision: 4,
			KVs:     []KV{{Key: "a", Value: []byte("v"), Revision: 4, Created: 2}},
			Members: []Member{{Name: "m", MemberAddr: "x:1", DN: "CN=m"}}})
	})
}

func FuzzRestore(f *testing.F) {
	// Small seeds: the fuzzer mutates and minimises whole inputs, and crawls on the 100 KiB
	// value populate writes.
	src := openStore(f, Options{})
	mustApply(f, src, put("a", "1"), put("b", ""), put("a", "2"), put("c\x00", "xyz"), del("b"),
		setMember("m1", "10.0.0.1:7000"), setMember("m2", "10.0.0.2:7000"),
		setCRL(CRLPortMember, newTestCA(f, "fuzz CA").crl(f, 2, 5)),
		grant(30), putLease("c\x00", "l", 9), grant(5))
	good := snapshotBytes(f, src)
	f.Add(good)
	f.Add(good[:len(good)/3])
	f.Add([]byte{})
	f.Add([]byte(snapshotMagic))
	f.Add(snapshotOf(metaRec(0, 0)))
	f.Add(snapshotOf(metaRec(3, 2), kvRec("a", 1, 1, "x"), kvRec("b", 2, 2, ""), memberRec(`{"name":"m"}`)))
	f.Add(snapshotOf(metaRec(1, 1), kvRec("b", 1, 1, ""), kvRec("a", 1, 1, "")))
	f.Add(snapshotOf(metaRec(1, 1), memberRec(`{"name":"m"}`), appendField([]byte{recCRL}, `{"port":"client","issuer":"i","number":"1","der":"AA=="}`)))

	s := openStore(f, Options{})
	mustApply(f, s, put("keep", "me"))
	f.Fuzz(func(t *testing.T, data []byte) {
		before := snapshotBytes(t, s)
		err := s.Restore(bytes.NewReader(data))
		if _, serr := os.Stat(s.path + restoreSuffix); !errors.Is(serr, os.ErrNotExist) {
			t.Fatalf("restore file left behind: %v", serr)
		}
		after := snapshotBytes(t, s)
		if err != nil {
			if !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("Restore = %v, does not wrap ErrBadSnapshot", err)
			}
			if !bytes.Equal(before, after) {
				t.Fatal("a failed restore changed the store")
			}
			return
		}
		// Accepted: the state must be whole, so it snapshots and restores to itself.
		if err := s.Restore(bytes.NewReader(after)); err != nil {
			t.Fatalf("restoring the store's own snapshot: %v", err)
		}
		if again := snapshotBytes(t, s); !bytes.Equal(again, after) {
			t.Fatal("snapshot → restore → snapshot is not stable")
		}
	})
}

// Restore must not wait for snapshots still being streamed: raft's snapshot thread can hold
// one while it waits for raft's main loop, which waits for this restore.
func TestRestore_WhileSnapshotOpen(t *testing.T) {
	for _, m := range storeModes {
		t.Run(m.name, func(t *testing.T) {
			src := openStore(t, m.opts)
			mustApply(t, src, put("new", "state"))
			var stream bytes.Buffer
			sn, err := src.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := sn.WriteTo(&stream); err != nil {
				t.Fatal(err)
			}
			sn.Release()

			dst := openStore(t, m.opts)
			mustApply(t, dst, put("old", "state"))
			held, err := dst.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- dst.Restore(bytes.NewReader(stream.Bytes())) }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("Restore: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Restore waited for a snapshot that was still open")
			}
			if kv, err := dst.Get("new"); err != nil || string(kv.Value) != "state" {
				t.Fatalf("after restore Get(new) = %q, %v", kv.Value, err)
			}
			var old bytes.Buffer
			if _, err := held.WriteTo(&old); err != nil {
				t.Fatalf("the snapshot taken before the restore can no longer be streamed: %v", err)
			}
			held.Release()
			restored := openStore(t, m.opts)
			if err := restored.Restore(&old); err != nil {
				t.Fatal(err)
			}
			if _, err := restored.Get("old"); err != nil {
				t.Fatalf("the snapshot taken before the restore does not hold the old state: %v", err)
			}
		})
	}
}
