package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mirrorkv/mirrorkv/reason"
)

func TestOpen(t *testing.T) {
	t.Run("reopen keeps everything", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "state.db")
		s, err := Open(path, Options{NoFsync: true})
		if err != nil {
			t.Fatal(err)
		}
		mustApply(t, s, put("a", "1"), put("b", "2"), setMember("m1", "10.0.0.1:7000"), del("b"))
		before := dump(t, s)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("second Close() = %v, want nil", err)
		}
		s = openAt(t, path, Options{})
		assertState(t, dump(t, s), before)
		if before.Applied != 4 || before.Revision != 3 {
			t.Fatalf("applied %d revision %d, want 4 and 3", before.Applied, before.Revision)
		}
	})
	t.Run("locked by another process", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "state.db")
		openAt(t, path, Options{NoFsync: true})
		// The holder may be building a restore file; the loser must not touch it.
		if err := os.WriteFile(path+restoreSuffix, []byte("in progress"), 0o600); err != nil {
			t.Fatal(err)
		}
		// bbolt's flock is per open file, so a second Open in this process contends like
		// another process would.
		_, err := Open(path, Options{})
		if err == nil || !strings.Contains(err.Error(), "locked by another process") {
			t.Fatalf("second Open = %v, want a locked-file error", err)
		}
		if _, err := os.Stat(path + restoreSuffix); err != nil {
			t.Fatalf("the losing Open removed the holder's restore file: %v", err)
		}
	})
	t.Run("damaged file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "state.db")
		if err := os.WriteFile(path, bytes.Repeat([]byte{0xab}, 16<<10), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Open(path, Options{})
		if err == nil || !strings.Contains(err.Error(), "is damaged") || !strings.Contains(err.Error(), "--join") {
			t.Fatalf("Open(garbage) = %v, want a damaged-file error", err)
		}
	})
	t.Run("truncated file", func(t *testing.T) {
		// bbolt itself would crash the process with SIGBUS on this file.
		path := filepath.Join(t.TempDir(), "state.db")
		s, err := Open(path, Options{NoFsync: true})
		if err != nil {
			t.Fatal(err)
		}
		populate(t, s)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		for _, size := range []int64{40000, 16384, 8192, 4096} {
			if err := os.Truncate(path, size); err != nil {
				t.Fatal(err)
			}
			_, err := Open(path, Options{})
			if err == nil || !strings.Contains(err.Error(), "is damaged") || !strings.Contains(err.Error(), "cut short") {
				t.Fatalf("Open(file cut to %d bytes) = %v, want a damaged-file error", size, err)
			}
		}
	})
	t.Run("damaged meta", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "state.db")
		writeBolt(t, path, bucketMeta, metaApplied, []byte{1, 2, 3})
		_, err := Open(path, Options{})
		if err == nil || !strings.Contains(err.Error(), "is damaged") {
			t.Fatalf("Open = %v, want a damaged-file error", err)
		}
	})
	t.Run("newer format", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "state.db")
		writeBolt(t, path, bucketMeta, metaFormat, u64(3))
		_, err := Open(path, Options{})
		if err == nil || !strings.Contains(err.Error(), "file format 3") {
			t.Fatalf("Open = %v, want a format error", err)
		}
	})
	t.Run("format without checksums", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "state.db")
		writeBolt(t, path, bucketMeta, metaFormat, u64(1))
		_, err := Open(path, Options{})
		if err == nil || !strings.Contains(err.Error(), "file format 1") || !strings.Contains(err.Error(), "--join") {
			t.Fatalf("Open = %v, want the format 1 error with what to do", err)
		}
	})
	t.Run("removes a leftover restore file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "state.db")
		if err := os.WriteFile(path+restoreSuffix, []byte("half a restore"), 0o600); err != nil {
			t.Fatal(err)
		}
		openAt(t, path, Options{NoFsync: true})
		if _, err := os.Stat(path + restoreSuffix); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("restore file still there: %v", err)
		}
	})
}

// writeBolt creates a bbolt file holding one key, to fake files mirrorkv did not write.
func writeBolt(t *testing.T, path, bucket, key string, value []byte) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(bucket))
		if err != nil {
			return err
		}
		return b.Put([]byte(key), value)
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
}

// errIs and errPrecondition match a Result.Err in the tables below.
type errCheck func(error) bool

func errIs(target error) errCheck { return func(err error) bool { return errors.Is(err, target) } }

func errPrecondition(key string, want, current int64) errCheck {
	return func(err error) bool {
		pe, ok := errors.AsType[*PreconditionError](err)
		return ok && *pe == PreconditionError{Key: key, Want: want, Current: current}
	}
}

func TestStore_Apply(t *testing.T) {
	for _, m := range storeModes {
		t.Run(m.name, func(t *testing.T) {
			type step struct {
				cmd     Command
				wantRev int64
				wantErr errCheck // nil: no error
			}
			tests := []struct {
				name  string
				steps []step
				want  []KV // the whole kv bucket afterwards
			}{
				{
					name:  "put creates",
					steps: []step{{put("a", "1"), 1, nil}},
					want:  []KV{{Key: "a", Value: []byte("1"), Revision: 1, Created: 1}},
				},
				{
					name:  "overwrite keeps created",
					steps: []step{{put("a", "1"), 1, nil}, {put("b", "x"), 2, nil}, {put("a", "2"), 3, nil}},
					want: []KV{
						{Key: "a", Value: []byte("2"), Revision: 3, Created: 1},
						{Key: "b", Value: []byte("x"), Revision: 2, Created: 2},
					},
				},
				{
					name:  "empty value",
					steps: []step{{Command{Op: OpPut, Key: "a"}, 1, nil}},
					want:  []KV{{Key: "a", Revision: 1, Created: 1}},
				},
				{
					name:  "put if absent",
					steps: []step{{putIf("a", "1", 0), 1, nil}, {putIf("a", "2", 0), 1, errPrecondition("a", 0, 1)}},
					want:  []KV{{Key: "a", Value: []byte("1"), Revision: 1, Created: 1}},
				},
				{
					name: "compare and set",
					steps: []step{
						{put("a", "1"), 1, nil},
						{putIf("a", "2", 1), 2, nil},
						{putIf("a", "3", 1), 2, errPrecondition("a", 1, 2)},
						{putIf("b", "1", 5), 2, errPrecondition("b", 5, 0)},
					},
					want: []KV{{Key: "a", Value: []byte("2"), Revision: 2, Created: 1}},
				},
				{
					name:  "delete",
					steps: []step{{put("a", "1"), 1, nil}, {del("a"), 2, nil}, {del("a"), 2, errIs(ErrNotFound)}},
					want:  []KV{},
				},
				{
					name:  "delete missing",
					steps: []step{{del("nope"), 0, errIs(ErrNotFound)}},
					want:  []KV{},
				},
				{
					name: "delete if",
					steps: []step{
						{put("a", "1"), 1, nil},
						{delIf("a", 7), 1, errPrecondition("a", 7, 1)},
						{delIf("a", 1), 2, nil},
						{delIf("a", 0), 2, errIs(ErrNotFound)},
					},
					want: []KV{},
				},
				{
					name:  "recreate after delete",
					steps: []step{{put("a", "1"), 1, nil}, {del("a"), 2, nil}, {put("a", "2"), 3, nil}},
					want:  []KV{{Key: "a", Value: []byte("2"), Revision: 3, Created: 3}},
				},
				{
					name: "member ops and noop leave the revision",
					steps: []step{
						{put("a", "1"), 1, nil},
						{setMember("m1", "x:1"), 1, nil},
						{Command{Op: OpRemoveMember, Member: Member{Name: "m9"}}, 1, nil},
						{Command{Op: OpNoop}, 1, nil},
					},
					want: []KV{{Key: "a", Value: []byte("1"), Revision: 1, Created: 1}},
				},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					for _, batched := range []bool{false, true} {
						s := openStore(t, m.opts)
						cmds := make([]Command, len(tc.steps))
						for i, st := range tc.steps {
							cmds[i] = st.cmd
						}
						var results []Result
						if batched {
							results = s.ApplyBatch(entries(1, cmds...))
						} else {
							for i, c := range cmds {
								results = append(results, s.Apply(uint64(i+1), EncodeCommand(c)))
							}
						}
						for i, st := range tc.steps {
							r := results[i]
							if r.Revision != st.wantRev || (st.wantErr == nil) != (r.Err == nil) || (st.wantErr != nil && !st.wantErr(r.Err)) {
								t.Fatalf("batched=%v step %d (%+v) = %+v, want revision %d", batched, i, st.cmd, r, st.wantRev)
							}
						}
						got, _, err := s.List(Range{})
						if err != nil {
							t.Fatal(err)
						}
						if !reflect.DeepEqual(got, tc.want) {
							t.Fatalf("batched=%v kvs = %+v, want %+v", batched, got, tc.want)
						}
						if s.AppliedIndex() != uint64(len(cmds)) {
							t.Fatalf("AppliedIndex() = %d, want %d", s.AppliedIndex(), len(cmds))
						}
						if rev := results[len(results)-1].Revision; s.Revision() != rev {
							t.Fatalf("Revision() = %d, last result says %d", s.Revision(), rev)
						}
					}
				})
			}
		})
	}
}

func TestStore_Get(t *testing.T) {
	for _, m := range storeModes {
		t.Run(m.name, func(t *testing.T) {
			s := openStore(t, m.opts)
			mustApply(t, s, put("a", "1"), put("a", "2"))
			kv, err := s.Get("a")
			if err != nil || !reflect.DeepEqual(kv, KV{Key: "a", Value: []byte("2"), Revision: 2, Created: 1}) {
				t.Fatalf("Get(a) = %+v, %v", kv, err)
			}
			// The value is a copy: changing it must not reach the store (or bbolt's read-only map,
			// where a write would crash).
			kv.Value[0] = 'x'
			if again, _ := s.Get("a"); string(again.Value) != "2" {
				t.Fatalf("value changed through a returned copy: %q", again.Value)
			}
			for _, key := range []string{"b", ""} {
				if _, err := s.Get(key); !errors.Is(err, ErrNotFound) {
					t.Fatalf("Get(%q) = %v, want ErrNotFound", key, err)
				}
			}
		})
	}
}

func TestStore_List(t *testing.T) {
	for _, m := range storeModes {
		t.Run(m.name, func(t *testing.T) {
			s := openStore(t, m.opts)
			mustApply(t, s, put("a", "0"), put("app/1", "1"), put("app/2", "2"), put("app/3", "3"), put("apq", "x"), put("b", "y"))
			tests := []struct {
				prefix, start string
				limit         int
				want          []string
				more          bool
			}{
				{"", "", 0, []string{"a", "app/1", "app/2", "app/3", "apq", "b"}, false},
				{"app/", "", 0, []string{"app/1", "app/2", "app/3"}, false},
				{"app/", "", 2, []string{"app/1", "app/2"}, true},
				{"app/", "", 3, []string{"app/1", "app/2", "app/3"}, false},
				{"app/", "app/2", 0, []string{"app/2", "app/3"}, false},
				{"app/", "app/2", 1, []string{"app/2"}, true},
				{"app/", "app/1\x00", 1, []string{"app/2"}, true},
				{"app/", "a", 0, []string{"app/1", "app/2", "app/3"}, false},
				{"app/", "app/9", 0, []string{}, false},
				{"app/", "b", 0, []string{}, false},
				{"zzz", "", 0, []string{}, false},
				{"", "apq", -1, []string{"apq", "b"}, false},
			}
			for _, tc := range tests {
				kvs, more, err := s.List(Range{Prefix: tc.prefix, Start: tc.start, Limit: tc.limit})
				if err != nil {
					t.Fatal(err)
				}
				got := []string{}
				for _, kv := range kvs {
					got = append(got, kv.Key)
				}
				if !reflect.DeepEqual(got, tc.want) || more != tc.more {
					t.Errorf("List(%q, %q, %d) = %q more %v, want %q more %v", tc.prefix, tc.start, tc.limit, got, more, tc.want, tc.more)
				}
			}
			kvs, _, _ := s.List(Range{Prefix: "app/2"})
			if len(kvs) != 1 || string(kvs[0].Value) != "2" || kvs[0].Revision != 3 || kvs[0].Created != 3 {
				t.Fatalf("List(app/2) = %+v", kvs)
			}
		})
	}
}

// TestStore_ListMaxBytes checks the byte bound, with keys in the file and in memory (a
// flush between the writes, then a delete and a larger value in memory).
func TestStore_ListMaxBytes(t *testing.T) {
	for _, m := range storeModes {
		t.Run(m.name, func(t *testing.T) {
			s := openStore(t, m.opts)
			v := strings.Repeat("v", 97) // 3-byte keys: 100 bytes a key
			mustApply(t, s, put("k/0", v), put("k/1", v), put("k/2", v), put("k/3", v))
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
			mustApply(t, s, put("k/4", v), put("k/5", v), del("k/2"), put("k/3", v+v), put("j", "outside"))
			// k/0 100, k/1 100, k/3 197, k/4 100, k/5 100: 597 bytes in all.
			tests := []struct {
				name     string
				start    string
				limit    int
				maxBytes int
				want     string
				more     bool
			}{
				{"no bound", "", 0, 0, "k/0 k/1 k/3 k/4 k/5", false},
				{"exactly all", "", 0, 597, "k/0 k/1 k/3 k/4 k/5", false},
				{"one byte short", "", 0, 596, "k/0 k/1 k/3 k/4", true},
				{"stops before a large value", "", 0, 299, "k/0 k/1", true},
				{"always one key", "", 0, 1, "k/0", true},
				{"one large key", "k/2", 0, 1, "k/3", true},
				{"limit first", "", 2, 1000, "k/0 k/1", true},
				{"bound first", "", 4, 250, "k/0 k/1", true},
				{"from start", "k/1\x00", 0, 300, "k/3 k/4", true},
				{"last key", "k/5", 0, 1, "k/5", false},
			}
			for _, tc := range tests {
				kvs, more, err := s.List(Range{Prefix: "k/", Start: tc.start, Limit: tc.limit, MaxBytes: tc.maxBytes})
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, kv := range kvs {
					got = append(got, kv.Key)
				}
				if strings.Join(got, " ") != tc.want || more != tc.more {
					t.Errorf("%s: List = %q more %v, want %q more %v", tc.name, got, more, tc.want, tc.more)
				}
			}
			// Paging with a small bound visits every key once.
			var all []string
			for start := ""; ; {
				kvs, more, err := s.List(Range{Prefix: "k/", Start: start, MaxBytes: 150})
				if err != nil {
					t.Fatal(err)
				}
				for _, kv := range kvs {
					all = append(all, kv.Key)
				}
				if !more {
					break
				}
				start = kvs[len(kvs)-1].Key + "\x00"
			}
			if got := strings.Join(all, " "); got != "k/0 k/1 k/3 k/4 k/5" {
				t.Errorf("paged by 150 bytes: %q", got)
			}
		})
	}
}

func TestStore_Members(t *testing.T) {
	for _, m := range storeModes {
		t.Run(m.name, func(t *testing.T) {
			s := openStore(t, m.opts)
			if ms, err := s.Members(); err != nil || len(ms) != 0 {
				t.Fatalf("Members() on a new store = %v, %v", ms, err)
			}
			full := Member{Name: "m2", MemberAddr: "10.0.0.2:7000", ClientURL: "https://10.0.0.2", DN: "CN=m2", Async: true}
			mustApply(t, s,
				setMember("m3", "10.0.0.3:7000"),
				Command{Op: OpSetMember, Member: full},
				setMember("m1", "10.0.0.1:7000"),
				setMember("m3", "10.0.0.33:7000"), // overwrite
				Command{Op: OpRemoveMember, Member: Member{Name: "m1"}},
				Command{Op: OpRemoveMember, Member: Member{Name: "m1"}}, // already gone: no error
			)
			ms, err := s.Members()
			want := []Member{full, {Name: "m3", MemberAddr: "10.0.0.33:7000", DN: "CN=m3"}}
			if err != nil || !reflect.DeepEqual(ms, want) {
				t.Fatalf("Members() = %+v, %v; want %+v", ms, err, want)
			}
			if s.Revision() != 0 {
				t.Fatalf("member ops moved the revision to %d", s.Revision())
			}
		})
	}
}

func TestStore_ApplyBatch_Replay(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path, Options{NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	log := entries(1, put("a", "1"), put("a", "2"), del("a"), put("b", "1"))
	first := s.ApplyBatch(log[:3])
	if first[2].Err != nil || s.AppliedIndex() != 3 || s.Revision() != 3 {
		t.Fatalf("first batch: %+v, applied %d revision %d", first, s.AppliedIndex(), s.Revision())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A restarted member: raft hands it its log again from the start.
	s = openAt(t, path, Options{NoFsync: true})
	results := s.ApplyBatch(log)
	for i, r := range results[:3] {
		if r != (Result{}) {
			t.Fatalf("replayed entry %d = %+v, want a zero Result", i+1, r)
		}
	}
	if results[3] != (Result{Revision: 4}) {
		t.Fatalf("new entry = %+v, want revision 4", results[3])
	}
	if again := s.ApplyBatch(log); !reflect.DeepEqual(again, make([]Result, 4)) {
		t.Fatalf("replaying everything = %+v, want zero Results", again)
	}
	if _, err := s.Get("a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(a) = %v: a replayed put came back", err)
	}
	if s.AppliedIndex() != 4 || s.Revision() != 4 {
		t.Fatalf("applied %d revision %d, want 4 and 4", s.AppliedIndex(), s.Revision())
	}
	// Indexes that go backwards inside one batch are skipped too.
	out := s.ApplyBatch([]Entry{{Index: 6, Data: EncodeCommand(put("c", "1"))}, {Index: 5, Data: EncodeCommand(put("d", "1"))}})
	if out[0].Revision != 5 || out[1] != (Result{}) || s.AppliedIndex() != 6 {
		t.Fatalf("out-of-order batch = %+v, applied %d", out, s.AppliedIndex())
	}
}

func TestStore_ApplyBatch_BadCommand(t *testing.T) {
	for _, m := range storeModes {
		t.Run(m.name, func(t *testing.T) {
			s := openStore(t, m.opts)
			batch := []Entry{
				{Index: 1, Data: EncodeCommand(put("a", "1"))},
				{Index: 2, Data: []byte{9, 9, 9}},
				{Index: 3, Data: nil},
				{Index: 4, Data: EncodeCommand(put("b", "1"))},
			}
			out := s.ApplyBatch(batch)
			for _, i := range []int{1, 2} {
				if !errors.Is(out[i].Err, ErrBadCommand) || out[i].Revision != 1 {
					t.Fatalf("entry %d = %+v, want ErrBadCommand at revision 1", i+1, out[i])
				}
			}
			if out[0] != (Result{Revision: 1}) || out[3] != (Result{Revision: 2}) {
				t.Fatalf("good entries = %+v, %+v", out[0], out[3])
			}
			if s.AppliedIndex() != 4 {
				t.Fatalf("AppliedIndex() = %d, want 4: bad entries still count as applied", s.AppliedIndex())
			}
			if r := s.Apply(5, []byte{1}); !errors.Is(r.Err, ErrBadCommand) || s.AppliedIndex() != 5 {
				t.Fatalf("Apply(bad) = %+v, applied %d", r, s.AppliedIndex())
			}
		})
	}
}

func TestStore_Closed(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "state.db"), Options{NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, put("a", "1"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("a"); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close = %v", err)
	}
	if _, _, err := s.List(Range{}); !errors.Is(err, ErrClosed) {
		t.Errorf("List after Close = %v", err)
	}
	if _, err := s.Members(); !errors.Is(err, ErrClosed) {
		t.Errorf("Members after Close = %v", err)
	}
	if _, err := s.Snapshot(); !errors.Is(err, ErrClosed) {
		t.Errorf("Snapshot after Close = %v", err)
	}
	if err := s.Restore(bytes.NewReader(nil)); !errors.Is(err, ErrClosed) {
		t.Errorf("Restore after Close = %v", err)
	}
	if r := s.Apply(2, EncodeCommand(put("b", "1"))); !errors.Is(r.Err, ErrClosed) {
		t.Errorf("Apply after Close = %+v", r)
	}
	if r := s.Apply(1, EncodeCommand(put("b", "1"))); r != (Result{}) {
		t.Errorf("Apply of an applied index after Close = %+v, want a zero Result", r)
	}
}

// TestStore_Layout pins the record layout docs/storage.md describes.
func TestStore_Layout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path, Options{NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, put("k", "v1"), put("k", "v2"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		rec := tx.Bucket([]byte(bucketKV)).Get([]byte("k"))
		head := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, 2), 1)
		sum := crc32.Checksum(append(append([]byte("k"), head...), "v2"...), crc32.MakeTable(crc32.Castagnoli))
		if want := append(binary.BigEndian.AppendUint32(head, sum), "v2"...); !bytes.Equal(rec, want) {
			t.Errorf("kv/k = %x, want %x", rec, want)
		}
		meta := tx.Bucket([]byte(bucketMeta))
		for key, want := range map[string]uint64{metaFormat: 2, metaApplied: 2, metaRevision: 2} {
			if got := meta.Get([]byte(key)); !bytes.Equal(got, u64(want)) {
				t.Errorf("meta/%s = %x, want %d", key, got, want)
			}
		}
		msum := crc32.Checksum(append(u64(2), u64(2)...), crc32.MakeTable(crc32.Castagnoli))
		if got := meta.Get([]byte(metaSumKey)); !bytes.Equal(got, binary.BigEndian.AppendUint32(nil, msum)) {
			t.Errorf("meta/%s = %x, want CRC-32C %08x of applied and revision", metaSumKey, got, msum)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestOpen_FlippedData flips bytes inside live records, which bbolt itself never notices
// (it checksums only its meta pages): Open must refuse the file with advice rather than
// serve a different value or revision.
func TestOpen_FlippedData(t *testing.T) {
	for _, tc := range []struct{ name, marker string }{
		{"kv value", "value-marker-0123456789"},
		{"member", "CN=member-marker"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			s, err := Open(path, Options{NoFsync: true})
			if err != nil {
				t.Fatal(err)
			}
			mustApply(t, s, put("a", "1"), put("k", "value-marker-0123456789"), put("z", "2"),
				Command{Op: OpSetMember, Member: Member{Name: "m9", MemberAddr: "127.0.0.9:1", DN: "CN=member-marker"}})
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			n := bytes.Count(data, []byte(tc.marker))
			if n == 0 {
				t.Fatalf("marker %q not in the file", tc.marker)
			}
			// One flipped bit in every copy, live or freed, so the live one is hit.
			for i := 0; ; {
				j := bytes.Index(data[i:], []byte(tc.marker))
				if j < 0 {
					break
				}
				data[i+j+len(tc.marker)-1] ^= 0x01
				i += j + len(tc.marker)
			}
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err = Open(path, Options{})
			if err == nil || !strings.Contains(err.Error(), "is damaged") || !strings.Contains(err.Error(), "checksum mismatch") || !strings.Contains(err.Error(), "--join") {
				t.Fatalf("Open(a file with a flipped bit in %d copies of the %s) = %v, want a damaged-file error naming the checksum", n, tc.name, err)
			}
		})
	}
}

// TestStore_DamagedRead: a record that fails its checksum on a read (damage after Open
// checked the file) is reported as a damaged store, reason 302 with what to do, not as a
// bare internal error.
func TestStore_DamagedRead(t *testing.T) {
	s := openStore(t, Options{FlushInterval: time.Hour})
	mustApply(t, s, put("k", "v"))
	s.ovMu.Lock()
	rec := bytes.Clone(s.active.kv["k"])
	rec[len(rec)-1] ^= 0x01
	s.active.kv["k"] = rec
	s.ovMu.Unlock()
	_, getErr := s.Get("k")
	_, _, listErr := s.List(Range{})
	for what, err := range map[string]error{"Get": getErr, "List": listErr} {
		if reason.Of(err, reason.OK) != reason.Corrupt || !strings.Contains(err.Error(), "checksum mismatch") || !strings.Contains(err.Error(), "--join") {
			t.Errorf("%s of a damaged record = %v, want reason %v naming the checksum and --join", what, err, reason.Corrupt)
		}
	}
}

// MembersAt tells the index of the state it read, in memory or in the file, so that a
// member joining through this one knows how far its own store must come.
func TestMembersAt(t *testing.T) {
	for _, mode := range storeModes {
		t.Run(mode.name, func(t *testing.T) {
			s := openStore(t, mode.opts)
			if ms, applied, err := s.MembersAt(); err != nil || len(ms) != 0 || applied != 0 {
				t.Fatalf("new store: MembersAt() = %v, %d, %v", ms, applied, err)
			}
			mustApply(t, s, setMember("m0", "a:1"), put("k", "v"), setMember("m1", "a:2"), put("k", "w"))
			ms, applied, err := s.MembersAt()
			if err != nil || len(ms) != 2 || applied != 4 {
				t.Fatalf("MembersAt() = %v, %d, %v; want 2 members at 4", ms, applied, err)
			}
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
			if _, applied, _ := s.MembersAt(); applied != 4 {
				t.Errorf("after a flush, MembersAt() index = %d, want 4", applied)
			}
		})
	}
}
