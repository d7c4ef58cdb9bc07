package cluster

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/mirrorkv/mirrorkv/reason"
)

// raftError gives every raft failure a reason the API maps to a status a client can act on;
// a raft-log append refused for lack of space must be 507, not 500, even though raft
// flattens the log store's error into text.
func TestRaftError_Reasons(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want reason.Code
	}{
		{raft.ErrNotLeader, reason.NotPrimary},
		{raft.ErrLeadershipLost, reason.LeadershipLost},
		{raft.ErrRaftShutdown, reason.Shutdown},
		{raft.ErrEnqueueTimeout, reason.Timeout},
		{fmt.Errorf("store: %w", syscall.ENOSPC), reason.DiskFull},
		{fmt.Errorf("unable to store logs within log store, err: %q", "write raft.db: no space left on device"), reason.DiskFull},
		{errors.New("something else"), reason.OK},
	} {
		if got := reason.Of(raftError(tc.err), reason.OK); got != tc.want {
			t.Errorf("raftError(%v) has reason %d, want %d", tc.err, got, tc.want)
		}
	}
}

// blockedFuture is a raft future that completes only when release is closed.
type blockedFuture struct{ release chan struct{} }

func (f blockedFuture) Error() error {
	<-f.release
	return raft.ErrLeadershipLost
}

// TestWaitFuture: an admin operation stops waiting for raft when its request ends, with an
// unknown-outcome error, and otherwise returns raft's own answer.
func TestWaitFuture(t *testing.T) {
	f := blockedFuture{release: make(chan struct{})}
	defer close(f.release)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	lf := newLife()
	defer lf.end()
	err := lf.waitFuture(ctx, f, "wait for raft")
	if code := reason.Of(err, reason.OK); code != reason.Timeout || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waitFuture on a future that never completes = %v (reason %v), want a timeout", err, code)
	}

	done := blockedFuture{release: make(chan struct{})}
	close(done.release)
	if err := lf.waitFuture(t.Context(), done, "wait for raft"); !errors.Is(err, ErrLeadershipLost) || reason.Of(err, reason.OK) != reason.LeadershipLost {
		t.Fatalf("waitFuture on a completed future = %v, want its error mapped to reason %v", err, reason.LeadershipLost)
	}
}

// fullStore is a raft log store on a full disk.
type fullStore struct{ raft.LogStore }

func (fullStore) StoreLogs([]*raft.Log) error { return fmt.Errorf("write segment: %w", syscall.ENOSPC) }

// raft's log cache hands a store's error back as text only; isDiskFull reads that text.
// This runs raft's own code, so a raft upgrade that words it otherwise fails here.
func TestIsDiskFull_RaftLogCache(t *testing.T) {
	cache, err := raft.NewLogCache(16, fullStore{raft.NewInmemStore()})
	if err != nil {
		t.Fatal(err)
	}
	err = cache.StoreLogs([]*raft.Log{{Index: 1, Term: 1}})
	if err == nil || errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("raft's log cache returned %v; this test expects the error flattened into text", err)
	}
	if !isDiskFull(err) {
		t.Fatalf("isDiskFull(%q) = false: raft's wording changed; update isDiskFull", err)
	}
}
