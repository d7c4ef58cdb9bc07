package cluster

import (
	"fmt"
	"slices"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/mirrorkv/mirrorkv/store"
)

// gatedStore is a memStore whose ApplyBatch reports each call's size on entered and then
// waits for release, so a test can hold the committer inside a store transaction.
type gatedStore struct {
	*memStore
	entered chan int
	release chan struct{}
}

func (g *gatedStore) ApplyBatch(entries []store.Entry) []store.Result {
	g.entered <- len(entries)
	<-g.release
	return g.memStore.ApplyBatch(entries)
}

func putLogs(first uint64, n int) []*raft.Log {
	logs := make([]*raft.Log, n)
	for i := range logs {
		idx := first + uint64(i)
		logs[i] = &raft.Log{Index: idx, Type: raft.LogCommand,
			Data: store.EncodeCommand(store.Command{Op: store.OpPut, Key: fmt.Sprint("k", idx), Value: []byte("v")})}
	}
	return logs
}

func isDone(p *pendingResult) bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func TestFSM_ApplyBatch(t *testing.T) {
	t.Run("batches queued behind a store transaction share the next one", func(t *testing.T) {
		g := &gatedStore{memStore: newMemStore(), entered: make(chan int), release: make(chan struct{})}
		f := newFSM(g, func([]byte) bool { return false }, func() {})
		t.Cleanup(func() { close(g.release); f.close() })

		first := f.ApplyBatch(putLogs(1, 2))
		if n := <-g.entered; n != 2 {
			t.Fatalf("first store batch has %d entries, want 2", n)
		}
		// Raft hands over two more batches while the store commits the first.
		second := f.ApplyBatch(putLogs(3, 3))
		third := f.ApplyBatch(putLogs(6, 1))
		for _, r := range slices.Concat(first, second, third) {
			if isDone(r.(*pendingResult)) {
				t.Fatal("a result is complete before the store committed its entry")
			}
		}
		if got := f.appliedIndex(); got != 0 {
			t.Fatalf("applied index %d before the store committed anything, want 0", got)
		}
		g.release <- struct{}{}
		if n := <-g.entered; n != 4 {
			t.Fatalf("second store batch has %d entries, want 4 (both queued batches)", n)
		}
		g.release <- struct{}{}
		for i, r := range slices.Concat(first, second, third) {
			res, err := r.(*pendingResult).wait(t.Context(), func() error { return nil })
			if err != nil || res.Err != nil || res.Revision != int64(i+1) {
				t.Fatalf("result %d = %+v, %v; want revision %d", i, res, err, i+1)
			}
		}
		if err := f.waitApplied(t.Context(), 6); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("snapshot waits for queued entries", func(t *testing.T) {
		g := &gatedStore{memStore: newMemStore(), entered: make(chan int), release: make(chan struct{})}
		f := newFSM(g, func([]byte) bool { return false }, func() {})
		t.Cleanup(func() { close(g.release); f.close() })

		f.ApplyBatch(putLogs(1, 1))
		<-g.entered
		f.ApplyBatch(putLogs(2, 1))
		snapped := make(chan uint64, 1)
		go func() {
			if _, err := f.Snapshot(); err != nil {
				t.Error(err)
			}
			snapped <- g.AppliedIndex()
		}()
		g.release <- struct{}{}
		<-g.entered
		g.release <- struct{}{}
		if got := <-snapped; got != 2 {
			t.Fatalf("store at index %d when the snapshot was taken, want 2", got)
		}
	})
	t.Run("close commits what raft handed over", func(t *testing.T) {
		st := newMemStore()
		f := newFSM(st, func([]byte) bool { return false }, func() {})
		res := f.ApplyBatch(putLogs(1, 3))
		f.close()
		if !isDone(res[2].(*pendingResult)) || st.AppliedIndex() != 3 {
			t.Fatalf("after close: store at %d, want 3 with every result complete", st.AppliedIndex())
		}
	})
}
