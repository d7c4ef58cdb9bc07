package cluster

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"

	"github.com/mirrorkv/mirrorkv/store"
	"github.com/mirrorkv/mirrorkv/wire"
)

// StateMachine is what the cluster needs of the store; *store.Store implements it.
type StateMachine interface {
	// ApplyBatch applies committed entries in one transaction; it skips entries at or below
	// its applied index, so a restarted member can replay its log safely.
	ApplyBatch(entries []store.Entry) []store.Result
	AppliedIndex() uint64
	Snapshot() (store.Snapshot, error)
	Restore(r io.Reader) error
	Members() ([]wire.Member, error)
}

// fsm adapts the store to raft.BatchingFSM. It keeps its own applied index, the last raft
// index the store reflects whatever its type, because raft hands configuration entries to
// the FSM but not to the store, and read index waits for a raft index.
type fsm struct {
	st        StateMachine
	isMember  func(data []byte) bool // reports a command that changes membership
	onMembers func()                 // called, without blocking, after membership changed

	mu       sync.Mutex
	applied  uint64
	advanced chan struct{} // closed and replaced whenever applied grows

	restoring    atomic.Bool
	restoreDone  atomic.Int64
	restoreTotal atomic.Int64
	restores     atomic.Uint64
	pendingIndex atomic.Uint64 // index of the snapshot raft last opened, for Restore
}

func newFSM(st StateMachine, isMember func([]byte) bool, onMembers func()) *fsm {
	return &fsm{st: st, isMember: isMember, onMembers: onMembers,
		applied: st.AppliedIndex(), advanced: make(chan struct{})}
}

// ApplyBatch applies the command entries of logs in one store transaction; configuration
// entries only move the applied index.
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	entries := make([]store.Entry, 0, len(logs))
	members := false
	for _, l := range logs {
		switch l.Type {
		case raft.LogCommand:
			entries = append(entries, store.Entry{Index: l.Index, Data: l.Data})
			members = members || f.isMember(l.Data)
		case raft.LogConfiguration:
			members = true
		}
	}
	var results []store.Result
	if len(entries) > 0 {
		results = f.st.ApplyBatch(entries)
	}
	out := make([]any, len(logs))
	j := 0
	for i, l := range logs {
		if l.Type == raft.LogCommand && j < len(results) {
			out[i] = results[j]
			j++
		}
	}
	if len(logs) > 0 {
		f.advance(logs[len(logs)-1].Index, false)
	}
	if members {
		f.onMembers()
	}
	return out
}

// Apply is the single-entry path; raft uses ApplyBatch, but the FSM interface requires it.
func (f *fsm) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	snap, err := f.st.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("snapshot store: %w", err)
	}
	return fsmSnapshot{snap}, nil
}

// Restore replaces the store with a snapshot, counting the bytes read for syncPercent.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	f.restoreDone.Store(0)
	f.restoring.Store(true)
	defer f.restoring.Store(false)
	if err := f.st.Restore(&countingReader{r: rc, n: &f.restoreDone}); err != nil {
		return fmt.Errorf("restore store from snapshot: %w", err)
	}
	f.restores.Add(1)
	f.advance(max(f.pendingIndex.Load(), f.st.AppliedIndex()), true)
	f.onMembers()
	return nil
}

func (f *fsm) advance(idx uint64, force bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if idx > f.applied || (force && idx != f.applied) {
		f.applied = idx
		close(f.advanced)
		f.advanced = make(chan struct{})
	}
}

func (f *fsm) appliedIndex() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applied
}

// waitApplied returns once the store reflects raft index idx.
func (f *fsm) waitApplied(ctx context.Context, idx uint64) error {
	for {
		f.mu.Lock()
		applied, ch := f.applied, f.advanced
		f.mu.Unlock()
		if applied >= idx {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for index %d (applied %d): %w", idx, applied, ctx.Err())
		}
	}
}

type fsmSnapshot struct{ snap store.Snapshot }

func (s fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := s.snap.WriteTo(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("write snapshot: %w", err)
	}
	return sink.Close()
}

func (s fsmSnapshot) Release() { s.snap.Release() }

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// snapshotStore records the size and index of the snapshot raft opens, because raft opens a
// snapshot just before handing it to FSM.Restore, and Restore gets only a reader.
type snapshotStore struct {
	raft.SnapshotStore
	f *fsm
}

func (s snapshotStore) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	meta, rc, err := s.SnapshotStore.Open(id)
	if err == nil {
		s.f.restoreTotal.Store(meta.Size)
		s.f.pendingIndex.Store(meta.Index)
	}
	return meta, rc, err
}
