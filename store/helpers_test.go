package store

import (
	"bytes"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"
)

// storeModes are the ways a store commits: every batch before ApplyBatch returns;
// write-behind with an interval long enough that only Snapshot and Close commit, so that
// reads are served from memory; and write-behind committing all the time, so that commits
// race with applies and reads.
var storeModes = []struct {
	name string
	opts Options
}{
	{"through", Options{}},
	{"behind", Options{FlushInterval: time.Hour}},
	{"behind-busy", Options{FlushInterval: time.Millisecond}},
}

// openStore opens a store in a new temporary directory and closes it when the test ends.
// Tests run without fsync; the benchmarks measure with it.
func openStore(tb testing.TB, opts Options) *Store {
	tb.Helper()
	opts.NoFsync = true
	return openAt(tb, filepath.Join(tb.TempDir(), "state.db"), opts)
}

func openAt(tb testing.TB, path string, opts Options) *Store {
	tb.Helper()
	s, err := Open(path, opts)
	if err != nil {
		tb.Fatalf("Open(%s) = %v", path, err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close() = %v", err)
		}
	})
	return s
}

func put(key, value string) Command {
	return Command{Op: OpPut, Key: key, Value: []byte(value)}
}

func putIf(key, value string, rev int64) Command {
	return Command{Op: OpPut, Key: key, Value: []byte(value), HasIf: true, IfRevision: rev}
}

func del(key string) Command { return Command{Op: OpDelete, Key: key} }

func delIf(key string, rev int64) Command {
	return Command{Op: OpDelete, Key: key, HasIf: true, IfRevision: rev}
}

func setMember(name, addr string) Command {
	return Command{Op: OpSetMember, Member: Member{Name: name, MemberAddr: addr, DN: "CN=" + name}}
}

// entries numbers cmds from first on.
func entries(first uint64, cmds ...Command) []Entry {
	es := make([]Entry, len(cmds))
	for i, c := range cmds {
		es[i] = Entry{Index: first + uint64(i), Data: EncodeCommand(c)}
	}
	return es
}

// mustApply applies cmds from the next index on and fails the test on any Result error.
func mustApply(tb testing.TB, s *Store, cmds ...Command) {
	tb.Helper()
	for i, r := range s.ApplyBatch(entries(s.AppliedIndex()+1, cmds...)) {
		if r.Err != nil {
			tb.Fatalf("apply %+v: %v", cmds[i], r.Err)
		}
	}
}

// state is everything a store holds, for comparing two stores or a store before and after.
type state struct {
	Applied  uint64
	Revision int64
	KVs      []KV
	Members  []Member
}

func dump(tb testing.TB, s *Store) state {
	tb.Helper()
	kvs, more, err := s.List(Range{})
	if err != nil || more {
		tb.Fatalf("List() = %v, more %v", err, more)
	}
	ms, err := s.Members()
	if err != nil {
		tb.Fatalf("Members() = %v", err)
	}
	return state{Applied: s.AppliedIndex(), Revision: s.Revision(), KVs: kvs, Members: ms}
}

func assertState(tb testing.TB, got, want state) {
	tb.Helper()
	if !reflect.DeepEqual(got, want) {
		tb.Fatalf("state differs:\n got %+v\nwant %+v", got, want)
	}
}

func snapshotBytes(tb testing.TB, s *Store) []byte {
	tb.Helper()
	snap, err := s.Snapshot()
	if err != nil {
		tb.Fatalf("Snapshot() = %v", err)
	}
	defer snap.Release()
	var buf bytes.Buffer
	n, err := snap.WriteTo(&buf)
	if err != nil || n != int64(buf.Len()) {
		tb.Fatalf("WriteTo() = %d, %v; wrote %d bytes", n, err, buf.Len())
	}
	return buf.Bytes()
}

// syncBuffer is a bytes.Buffer a logger may write to from another goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
