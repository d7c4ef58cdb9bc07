package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/hashicorp/raft"

	raftwal "github.com/mirrorkv/mirrorkv/internal/raftwal"
	walfs "github.com/mirrorkv/mirrorkv/internal/raftwal/fs"
	"github.com/mirrorkv/mirrorkv/internal/raftwal/metadb"
	"github.com/mirrorkv/mirrorkv/internal/raftwal/segment"
	waltypes "github.com/mirrorkv/mirrorkv/internal/raftwal/types"
)

// BenchmarkLogStore appends batches to each raft log store as raft does on every member:
// one StoreLogs call, durable on return, per batch of entries.
func BenchmarkLogStore(b *testing.B) {
	for _, kind := range []string{LogStoreWAL, LogStoreBolt} {
		for _, batch := range []int{1, 64} {
			b.Run(fmt.Sprintf("%s/batch=%d", kind, batch), func(b *testing.B) {
				logs, _, closer, err := openLogStore(kind, b.TempDir(), newHCLog(testLogger(b)))
				if err != nil {
					b.Fatal(err)
				}
				defer closer.Close()
				entries := make([]*raft.Log, batch)
				data := make([]byte, 256)
				next := uint64(1)
				b.ReportAllocs()
				b.SetBytes(int64(batch * len(data)))
				for b.Loop() {
					for i := range entries {
						entries[i] = &raft.Log{Index: next, Term: 1, Type: raft.LogCommand, Data: data}
						next++
					}
					if err := logs.StoreLogs(entries); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestOpenLogStore_Reopen reopens each log store in the same directory in this process:
// raft-wal leaves its metadata file (and its lock) open after Close unless the cluster
// closes it, and a restarted member would then wait for that lock for ever.
func TestOpenLogStore_Reopen(t *testing.T) {
	for _, kind := range []string{LogStoreWAL, LogStoreBolt} {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			for i := range 2 {
				_, err := within(t, startTimeout, fmt.Sprintf("open %s log store, time %d", kind, i+1), func() (struct{}, error) {
					logs, stable, closer, err := openLogStore(kind, dir, newHCLog(testLogger(t)))
					if err != nil {
						return struct{}{}, err
					}
					defer closer.Close()
					if err := logs.StoreLog(&raft.Log{Index: uint64(i + 1), Term: 1, Data: []byte("x")}); err != nil {
						return struct{}{}, err
					}
					return struct{}{}, stable.SetUint64([]byte("k"), uint64(i))
				})
				if err != nil {
					t.Fatalf("open %s log store, time %d: %v", kind, i+1, err)
				}
			}
		})
	}
}

// TestOpenLogStore_ReopenAfterTailTruncation is what raft does to a primary that dies with
// uncommitted entries: on its return the new primary's log overrides its tail. raft-wal
// v0.4.0 sealed the truncated segment without an index block and could then never open
// again ("sealed segment has no index block", hashicorp/raft-wal#31).
func TestOpenLogStore_ReopenAfterTailTruncation(t *testing.T) {
	for _, kind := range []string{LogStoreWAL, LogStoreBolt} {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			logs, _, closer, err := openLogStore(kind, dir, newHCLog(testLogger(t)))
			if err != nil {
				t.Fatal(err)
			}
			for i := uint64(1); i <= 10; i++ {
				if err := logs.StoreLog(&raft.Log{Index: i, Term: 1, Data: []byte("x")}); err != nil {
					t.Fatal(err)
				}
			}
			if err := logs.DeleteRange(8, 10); err != nil {
				t.Fatalf("truncate the tail: %v", err)
			}
			if err := logs.StoreLog(&raft.Log{Index: 8, Term: 2, Data: []byte("y")}); err != nil {
				t.Fatalf("append after truncating: %v", err)
			}
			if err := closer.Close(); err != nil {
				t.Fatal(err)
			}
			logs, _, closer, err = openLogStore(kind, dir, newHCLog(testLogger(t)))
			if err != nil {
				t.Fatalf("reopen after a tail truncation: %v", err)
			}
			defer closer.Close()
			var l raft.Log
			for i := uint64(1); i <= 8; i++ {
				if err := logs.GetLog(i, &l); err != nil {
					t.Fatalf("entry %d after reopening: %v", i, err)
				}
			}
			if l.Term != 2 {
				t.Fatalf("entry 8 has term %d after reopening, want the overriding term 2", l.Term)
			}
			if last, err := logs.LastIndex(); err != nil || last != 8 {
				t.Fatalf("last index after reopening = %d, %v; want 8", last, err)
			}
		})
	}
}

// failingVFS refuses to create files with ENOSPC while armed, as a full disk refuses a new
// segment's preallocation.
type failingVFS struct {
	*walfs.FS
	armed *atomic.Bool
}

func (v failingVFS) Create(dir, name string, size uint64) (waltypes.WritableFile, error) {
	if v.armed.Load() {
		return nil, fmt.Errorf("create %s: %w", name, syscall.ENOSPC)
	}
	return v.FS.Create(dir, name, size)
}

// failingMeta refuses to commit the segment list with ENOSPC while armed.
type failingMeta struct {
	*metadb.BoltMetaDB
	armed *atomic.Bool
}

func (m failingMeta) CommitState(s waltypes.PersistentState) error {
	if m.armed.Load() {
		return fmt.Errorf("commit wal meta: %w", syscall.ENOSPC)
	}
	return m.BoltMetaDB.CommitState(s)
}

// TestWALLogStore_RotationFailsThenRecovers fills segments while the disk refuses the next
// one, at either step of a rotation. Upstream raft-wal v0.4.1 then refuses every append for
// good ("segment is sealed"), also after a restart when the meta commit failed; the patched
// copy in internal/raftwal fails those appends with the disk's error, takes them again
// once the disk has room, and loses nothing, in the same process and after a reopen.
func TestWALLogStore_RotationFailsThenRecovers(t *testing.T) {
	for _, step := range []string{"segment file", "meta commit"} {
		t.Run(step, func(t *testing.T) {
			dir := t.TempDir()
			var armed atomic.Bool
			tryOpen := func() (*raftwal.WAL, *metadb.BoltMetaDB, error) {
				meta := &metadb.BoltMetaDB{}
				var ms waltypes.MetaStore = meta
				vfs := waltypes.VFS(walfs.New())
				if step == "meta commit" {
					ms = failingMeta{meta, &armed}
				} else {
					vfs = failingVFS{walfs.New(), &armed}
				}
				w, err := raftwal.Open(dir, raftwal.WithSegmentSize(64<<10), raftwal.WithMetaStore(ms),
					raftwal.WithSegmentFiler(segment.NewFiler(dir, vfs)), raftwal.WithLogger(newHCLog(testLogger(t))))
				if err != nil {
					_ = meta.Close()
				}
				return w, meta, err
			}
			open := func() (*raftwal.WAL, *metadb.BoltMetaDB) {
				t.Helper()
				w, meta, err := tryOpen()
				if err != nil {
					t.Fatalf("open wal: %v", err)
				}
				return w, meta
			}
			data := make([]byte, 1024)
			entry := func(i uint64) *raft.Log {
				return &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: append([]byte(fmt.Sprint(i)), data...)}
			}
			check := func(w *raftwal.WAL, last uint64) {
				t.Helper()
				for i := uint64(1); i <= last; i++ {
					var l raft.Log
					if err := w.GetLog(i, &l); err != nil || !bytes.Equal(l.Data, entry(i).Data) {
						t.Fatalf("entry %d: %v (data %.8q)", i, err, l.Data)
					}
				}
				if got, err := w.LastIndex(); err != nil || got != last {
					t.Fatalf("last index %d, %v; want %d", got, err, last)
				}
			}
			next := uint64(1)
			// fill appends while the disk is full until one is refused, which must be
			// for lack of space, and so must the next one.
			fill := func(w *raftwal.WAL) {
				t.Helper()
				armed.Store(true)
				for stop := next + 500; ; next++ {
					if next == stop {
						t.Fatal("500 KiB of appends into 64 KiB segments were all accepted while no segment could be created")
					}
					if err := w.StoreLogs([]*raft.Log{entry(next)}); err != nil {
						if !errors.Is(err, syscall.ENOSPC) {
							t.Fatalf("append while the disk is full = %v, want it to wrap ENOSPC", err)
						}
						break
					}
				}
				if err := w.StoreLogs([]*raft.Log{entry(next)}); !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("second append while the disk is full = %v, want ENOSPC again", err)
				}
				check(w, next-1)
			}
			resume := func(w *raftwal.WAL) {
				t.Helper()
				armed.Store(false)
				for stop := next + 100; next < stop; next++ {
					if err := w.StoreLogs([]*raft.Log{entry(next)}); err != nil {
						t.Fatalf("append %d after the disk has room again: %v", next, err)
					}
				}
				check(w, next-1)
			}

			// In the same process.
			w, meta := open()
			fill(w)
			resume(w)

			// Across a restart while the disk is still full: the log either does not open
			// (the segment it must create is refused) or opens with nothing lost.
			fill(w)
			if err := errors.Join(w.Close(), meta.Close()); err != nil {
				t.Fatal(err)
			}
			if w, meta, err := tryOpen(); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("reopen while the disk is full = %v, want ENOSPC or success", err)
				}
			} else {
				check(w, next-1)
				if err := errors.Join(w.Close(), meta.Close()); err != nil {
					t.Fatal(err)
				}
			}
			armed.Store(false)
			w, meta = open()
			defer func() { _ = errors.Join(w.Close(), meta.Close()) }()
			resume(w)
		})
	}
}

// TestLogStoreFor: a data directory keeps the log store it was created with, and asking for
// the other one is refused with what to do rather than starting on an empty log.
func TestLogStoreFor(t *testing.T) {
	withBolt, withWAL, both := t.TempDir(), t.TempDir(), t.TempDir()
	for _, dir := range []string{withBolt, both} {
		if err := os.WriteFile(filepath.Join(dir, "raft.db"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, dir := range []string{withWAL, both} {
		if err := os.MkdirAll(filepath.Join(dir, "wal"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "wal", "wal-meta.db"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		dir, requested, want, err string
	}{
		{t.TempDir(), "", DefaultLogStore, ""},
		{t.TempDir(), LogStoreBolt, LogStoreBolt, ""},
		{withBolt, "", LogStoreBolt, ""},
		{withBolt, LogStoreBolt, LogStoreBolt, ""},
		{withBolt, LogStoreWAL, "", "holds a bolt log, not wal: start the member with --log-store bolt"},
		{withWAL, "", LogStoreWAL, ""},
		{withWAL, LogStoreBolt, "", "holds a wal log, not bolt: start the member with --log-store wal"},
		{both, "", "", "holds both a bolt log"},
	} {
		got, err := logStoreFor(tc.requested, tc.dir)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("logStoreFor(%q) = %q, %v; want an error containing %q", tc.requested, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("logStoreFor(%q) = %q, %v; want %q", tc.requested, got, err, tc.want)
		}
	}
}

// TestTransport_NoPipelining: raft's pipelined replication stops replicating to a follower
// for good after that follower refuses one append (see startRaft), so the member channel
// sends one append at a time. Raft then reports that pipelining is not supported.
func TestTransport_NoPipelining(t *testing.T) {
	g := newTestGroup(t, fastConfig(), 1, 0)
	n := g.node("m0")
	p, err := n.c.trans.AppendEntriesPipeline("m0", raft.ServerAddress(n.cfg.Advertise))
	if !errors.Is(err, raft.ErrPipelineReplicationNotSupported) {
		if p != nil {
			_ = p.Close()
		}
		t.Fatalf("AppendEntriesPipeline = %v, want ErrPipelineReplicationNotSupported", err)
	}
}
