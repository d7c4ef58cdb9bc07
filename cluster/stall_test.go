package cluster

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/store"
	"github.com/mirrorkv/mirrorkv/wire"
)

// TestCluster_StalledPrimary stalls the primary's store as a full disk does: the primary
// hands its role over, writes through it go to the new primary, it reports UNSYNC with the
// stall's reason and refuses linearizable reads, and once the store applies again it
// catches up and is a standby.
func TestCluster_StalledPrimary(t *testing.T) {
	g := newTestGroup(t, fastConfig(), 3, 0)
	g.settled(t)
	victim := g.leader(t)
	put(t, victim.c, "before", "1")

	stallErr := reason.Wrap(reason.DiskFull, fmt.Errorf("commit: %w", syscall.ENOSPC))
	victim.st.setStall(stallErr)
	t.Cleanup(victim.st.clearStall) // before the group closes: Close waits for the store

	// The write the stalled store holds back is committed, but its store outcome is
	// unknown: an answer, not a hang.
	start := time.Now()
	_, err := victim.c.Apply(testCtx(t), store.Command{Op: store.OpPut, Key: "held", Value: []byte("1")})
	if code := reason.Of(err, reason.OK); code != reason.Timeout {
		t.Errorf("write held by the stalled store: %v (reason %v), want reason %v", err, code, reason.Timeout)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("write held by the stalled store answered after %v", d)
	}

	waitFor(t, 10*time.Second, "the stalled primary hands its role over", func() bool {
		_, id := victim.c.raft.LeaderWithID()
		return !victim.c.isLeader() && id != "" && string(id) != victim.name
	})
	put(t, victim.c, "through-stalled", "2") // forwarded to the new primary
	if kv, ok := readLinear(t, g.leader(t), "through-stalled"); !ok || string(kv.Value) != "2" {
		t.Errorf("new primary: through-stalled = %q (present %v), want 2", kv.Value, ok)
	}

	st := status(t, victim)
	if st.Role != wire.RoleUnsync || st.Reason.Code != int(reason.DiskFull) {
		t.Errorf("stalled member reports %s reason %+v, want %s reason %d", st.Role, st.Reason, wire.RoleUnsync, reason.DiskFull)
	}
	if role := memberRole(st, victim.name); role != wire.RoleUnsync {
		t.Errorf("stalled member's own entry is %s, want %s", role, wire.RoleUnsync)
	}
	err = victim.c.ReadIndex(testCtx(t))
	if code := reason.Of(err, reason.OK); code != reason.DiskFull || !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("linearizable read on the stalled member: %v (reason %v), want reason %v", err, code, reason.DiskFull)
	}

	victim.st.clearStall()
	waitFor(t, 20*time.Second, "the member catches up and is a standby", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := victim.c.Status(ctx)
		return err == nil && st.Role == wire.RoleStandby
	})
	for _, key := range []string{"held", "through-stalled"} {
		if _, ok := readLinear(t, victim, key); !ok {
			t.Errorf("%s after the stall: %s missing", victim.name, key)
		}
	}
}
