package store

import (
	"bytes"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"
)

const benchKeys = 10000

// benchValue is the 256-byte value of every benchmark put.
func benchValue() []byte { return bytes.Repeat([]byte{'v'}, 256) }

// fill puts benchKeys keys with 256-byte values in batches of 1000.
func fill(b *testing.B, s *Store) {
	b.Helper()
	cmds := make([]Command, 0, 1000)
	for i := range benchKeys {
		cmds = append(cmds, Command{Op: OpPut, Key: fmt.Sprintf("bench/%08d", i), Value: benchValue()})
		if len(cmds) == cap(cmds) {
			mustApply(b, s, cmds...)
			cmds = cmds[:0]
		}
	}
}

// BenchmarkApplyBatch applies batches of 256-byte puts with fsync on: written through, one
// transaction and one fsync per batch; behind, as a member runs (write-behind, 100 ms), with
// the flusher's commits in the background. ns/op is per batch; ns/entry divides by its size.
func BenchmarkApplyBatch(b *testing.B) {
	for _, mode := range []struct {
		name string
		opts Options
	}{{"through", Options{}}, {"behind", Options{FlushInterval: 100 * time.Millisecond}}} {
		for _, size := range []int{1, 64, 256} {
			b.Run(fmt.Sprintf("%s/size=%d", mode.name, size), func(b *testing.B) {
				benchApplyBatch(b, mode.opts, size)
			})
		}
	}
}

func benchApplyBatch(b *testing.B, opts Options, size int) {
	s := openAt(b, filepath.Join(b.TempDir(), "state.db"), opts)
	data := make([][]byte, benchKeys)
	for i := range data {
		data[i] = EncodeCommand(Command{Op: OpPut, Key: fmt.Sprintf("bench/%08d", i), Value: benchValue()})
	}
	batch := make([]Entry, size)
	next := 0
	b.ReportAllocs()
	for b.Loop() {
		for i := range batch {
			batch[i] = Entry{Index: s.AppliedIndex() + uint64(i) + 1, Data: data[next%benchKeys]}
			next++
		}
		if r := s.ApplyBatch(batch); r[0].Err != nil {
			b.Fatal(r[0].Err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/entry")
}

// BenchmarkApplyTxn applies batches of transactions of the bench command's shape: if a key
// exists, put it and another key. ns/entry is per transaction, each two writes.
func BenchmarkApplyTxn(b *testing.B) {
	for _, size := range []int{1, 64, 256} {
		b.Run(fmt.Sprintf("behind/size=%d", size), func(b *testing.B) {
			s := openAt(b, filepath.Join(b.TempDir(), "state.db"), Options{FlushInterval: 100 * time.Millisecond})
			fill(b, s)
			data := make([][]byte, benchKeys)
			for i := range data {
				key, other := fmt.Sprintf("bench/%08d", i), fmt.Sprintf("bench/%08d", (i+benchKeys/2)%benchKeys)
				data[i] = EncodeCommand(Command{Op: OpTxn, Txn: &Txn{
					Compares: []Compare{{Key: key, Target: TargetExists, Cmp: CmpEqual}},
					Then:     []TxnOp{{Op: OpPut, Key: key, Value: benchValue()}, {Op: OpPut, Key: other, Value: benchValue()}},
				}})
			}
			batch := make([]Entry, size)
			next := 0
			b.ReportAllocs()
			for b.Loop() {
				for i := range batch {
					batch[i] = Entry{Index: s.AppliedIndex() + uint64(i) + 1, Data: data[next%benchKeys]}
					next++
				}
				if r := s.ApplyBatch(batch); r[0].Err != nil || !r[0].Txn.Succeeded {
					b.Fatalf("txn: %+v", r[0])
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/entry")
		})
	}
}

func BenchmarkGet(b *testing.B) {
	s := openAt(b, filepath.Join(b.TempDir(), "state.db"), Options{NoFsync: true})
	fill(b, s)
	keys := make([]string, benchKeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("bench/%08d", i)
	}
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Get(keys[i%benchKeys]); err != nil {
			b.Fatal(err)
		}
		i += 7919 // a prime stride, so reads jump around the tree
	}
}

// BenchmarkSnapshotRestore streams a snapshot of 10k keys of 256 bytes, and restores it into
// another store with fsync on. MB/s is of the snapshot stream.
func BenchmarkSnapshotRestore(b *testing.B) {
	src := openAt(b, filepath.Join(b.TempDir(), "src.db"), Options{NoFsync: true})
	fill(b, src)
	var buf bytes.Buffer
	snap, err := src.Snapshot()
	if err != nil {
		b.Fatal(err)
	}
	if _, err := snap.WriteTo(&buf); err != nil {
		b.Fatal(err)
	}
	snap.Release()
	data := buf.Bytes()

	b.Run("snapshot", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			snap, err := src.Snapshot()
			if err != nil {
				b.Fatal(err)
			}
			if _, err := snap.WriteTo(io.Discard); err != nil {
				b.Fatal(err)
			}
			snap.Release()
		}
	})
	b.Run("restore", func(b *testing.B) {
		dst := openAt(b, filepath.Join(b.TempDir(), "dst.db"), Options{})
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			if err := dst.Restore(bytes.NewReader(data)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkOpen opens a store of 10 000 keys with 256-byte values: Open reads and checks
// every record before the member serves, so this is start-up cost per byte of data.
func BenchmarkOpen(b *testing.B) {
	path := filepath.Join(b.TempDir(), "state.db")
	s := openAt(b, path, Options{NoFsync: true})
	fill(b, s)
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchKeys * 256)
	for b.Loop() {
		s, err := Open(path, Options{NoFsync: true})
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
