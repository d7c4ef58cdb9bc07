package cluster

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/mirrorkv/mirrorkv/store"
)

// StateMachine is what the cluster needs of the store; *store.Store implements it.
type StateMachine interface {
	// ApplyBatch applies committed entries in one transaction; it skips entries at or below
	// its applied index, so a restarted member can replay its log safely.
	ApplyBatch(entries []store.Entry) []store.Result
	AppliedIndex() uint64
	Snapshot() (store.Snapshot, error)
	Restore(r io.Reader) error
	Members() ([]store.Member, error)
	MembersAt() ([]store.Member, uint64, error)
	// Stalled returns, while the store retries a transaction the disk refused, that error
	// coded with its reason (reason.DiskFull for a full disk), and nil otherwise.
	Stalled() error
}

// fsm adapts the store to raft.BatchingFSM. It keeps its own applied index, the last raft
// index the store reflects whatever its type, because raft hands configuration entries to
// the FSM but not to the store, and read index waits for a raft index.
//
// Raft calls ApplyBatch once per commit notification, often a handful of entries, and waits
// for it before handing over the next batch. ApplyBatch therefore only queues the entries and
// returns a *pendingResult per command; the committer goroutine hands everything queued so
// far to the store in one call, then completes the results and moves the applied index. A
// store that writes each call through pays one fsync per call this way, not per batch; the
// store as members run it (write-behind, store.Options.FlushInterval) applies in memory and
// commits its file on its own, and durability rests on the raft log, which holds every entry
// beyond the file's applied index (Snapshot commits the store before raft may compact). A
// write is acknowledged (applyLocal waits for its result) and visible to read index once the
// store has applied it; raft's view of what the FSM applied runs ahead of the store by at
// most maxQueued entries, and a restart replays those from the raft log like any entry beyond
// the store's applied index. Snapshot and Restore first wait for the queue to drain, so a
// snapshot never claims an index the store does not hold.
type fsm struct {
	st        StateMachine
	isMember  func(data []byte) bool // reports a command that changes membership
	onMembers func()                 // called, without blocking, after membership changed

	mu       sync.Mutex
	applied  uint64
	advanced chan struct{} // closed and replaced whenever applied grows

	qmu     sync.Mutex
	qcond   *sync.Cond // signalled when jobs are queued, drained, or stopping
	queue   []fsmJob
	queued  int  // entries in queue
	busy    bool // the committer is applying jobs taken off the queue
	stopped bool
	done    chan struct{} // closed when the committer has exited

	restoring    atomic.Bool
	restoreDone  atomic.Int64
	restoreTotal atomic.Int64
	restores     atomic.Uint64
	pendingIndex atomic.Uint64 // index of the snapshot raft last opened, for Restore
}

// maxQueued bounds the entries ApplyBatch may queue ahead of the store before it blocks, so
// that a stalled store (a full disk) stalls raft's FSM as it would without the queue.
const maxQueued = 4096

// pendingResult is the FSM response to a command entry: its store result, set before done
// is closed.
type pendingResult struct {
	done chan struct{}
	res  store.Result
}

// stallPoll is how often a wait on the store looks whether the store has stalled.
const stallPoll = 100 * time.Millisecond

// wait returns the store result once the store committed the entry, or an error when ctx
// ends or stalled reports that the store is retrying a transaction the disk refused: the
// entry is committed, but when the store will reflect it is unknown.
func (p *pendingResult) wait(ctx context.Context, stalled func() error) (store.Result, error) {
	tick := time.NewTicker(stallPoll)
	defer tick.Stop()
	for {
		select {
		case <-p.done:
			return p.res, nil
		case <-ctx.Done():
			return store.Result{}, ctx.Err()
		case <-tick.C:
			if p.isDone() {
				return p.res, nil
			}
			if err := stalled(); err != nil {
				return store.Result{}, err
			}
		}
	}
}

func (p *pendingResult) isDone() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// fsmJob is one ApplyBatch call: its command entries with their results, and the last raft
// index it covers.
type fsmJob struct {
	entries []store.Entry
	results []*pendingResult
	last    uint64
	members bool
}

func newFSM(st StateMachine, isMember func([]byte) bool, onMembers func()) *fsm {
	f := &fsm{st: st, isMember: isMember, onMembers: onMembers,
		applied: st.AppliedIndex(), advanced: make(chan struct{}), done: make(chan struct{})}
	f.qcond = sync.NewCond(&f.qmu)
	go f.commit()
	return f
}

// ApplyBatch queues the command entries of logs for the committer and returns a
// *pendingResult for each; configuration entries only move the applied index.
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	if len(logs) == 0 {
		return out
	}
	job := fsmJob{entries: make([]store.Entry, 0, len(logs)), last: logs[len(logs)-1].Index}
	for i, l := range logs {
		switch l.Type {
		case raft.LogCommand:
			p := &pendingResult{done: make(chan struct{})}
			job.entries = append(job.entries, store.Entry{Index: l.Index, Data: l.Data})
			job.results = append(job.results, p)
			out[i] = p
			job.members = job.members || f.isMember(l.Data)
		case raft.LogConfiguration:
			job.members = true
		}
	}
	f.qmu.Lock()
	defer f.qmu.Unlock()
	for f.queued > 0 && f.queued+len(job.entries) > maxQueued && !f.stopped {
		f.qcond.Wait()
	}
	f.queue = append(f.queue, job)
	f.queued += len(job.entries)
	f.qcond.Broadcast()
	return out
}

// Apply is the single-entry path; raft uses ApplyBatch, but the FSM interface requires it.
func (f *fsm) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// commit applies every queued job in one store transaction, until close.
func (f *fsm) commit() {
	defer close(f.done)
	for {
		f.qmu.Lock()
		for len(f.queue) == 0 && !f.stopped {
			f.qcond.Wait()
		}
		if len(f.queue) == 0 { // stopped and drained
			f.qmu.Unlock()
			return
		}
		jobs := f.queue
		f.queue, f.queued, f.busy = nil, 0, true
		f.qcond.Broadcast() // room for ApplyBatch
		f.qmu.Unlock()

		f.applyJobs(jobs)

		f.qmu.Lock()
		f.busy = false
		f.qcond.Broadcast() // for flush
		f.qmu.Unlock()
	}
}

func (f *fsm) applyJobs(jobs []fsmJob) {
	n := 0
	for _, j := range jobs {
		n += len(j.entries)
	}
	var results []store.Result
	if n > 0 {
		entries := make([]store.Entry, 0, n)
		for _, j := range jobs {
			entries = append(entries, j.entries...)
		}
		results = f.st.ApplyBatch(entries)
	}
	members := false
	k := 0
	for _, j := range jobs {
		for _, p := range j.results {
			if k < len(results) {
				p.res = results[k]
			}
			k++
			close(p.done)
		}
		members = members || j.members
	}
	f.advance(jobs[len(jobs)-1].last, false)
	if members {
		f.onMembers()
	}
}

// flush returns once every entry queued so far is in the store.
func (f *fsm) flush() {
	f.qmu.Lock()
	defer f.qmu.Unlock()
	for len(f.queue) > 0 || f.busy {
		f.qcond.Wait()
	}
}

// close applies what is still queued and stops the committer; raft must be shut down.
func (f *fsm) close() {
	f.qmu.Lock()
	f.stopped = true
	f.qcond.Broadcast()
	f.qmu.Unlock()
	<-f.done
}

func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.flush()
	snap, err := f.st.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("snapshot store: %w", err)
	}
	return fsmSnapshot{snap}, nil
}

// Restore replaces the store with a snapshot, counting the bytes read for syncPercent.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	f.flush()
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
