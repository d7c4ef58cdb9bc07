package cluster

import (
	"fmt"
	"testing"

	"github.com/hashicorp/raft"
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
