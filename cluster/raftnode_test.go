package cluster

import (
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/mirrorkv/mirrorkv/store"
)

// inmemRaft starts a one-voter raft over raft's in-memory transport and stores, whose FSM is
// st through the cluster's fsm adapter. It shuts down at the end of tb.
func inmemRaft(tb testing.TB, name string, st *memStore) (*raft.Raft, *fsm) {
	tb.Helper()
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(name)
	rc.Logger = hclog.NewNullLogger()
	rc.HeartbeatTimeout, rc.ElectionTimeout = 100*time.Millisecond, 100*time.Millisecond
	rc.LeaderLeaseTimeout, rc.CommitTimeout = 50*time.Millisecond, 5*time.Millisecond
	logs, snaps := raft.NewInmemStore(), raft.NewInmemSnapshotStore()
	addr, trans := raft.NewInmemTransport(raft.ServerAddress(addrOf(name)))
	conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: rc.LocalID, Address: addr}}}
	if err := raft.BootstrapCluster(rc, logs, logs, snaps, trans, conf); err != nil {
		tb.Fatal(err)
	}
	f := newFSM(st, isMemberCommand, func() {})
	r, err := raft.NewRaft(rc, f, logs, logs, snaps, trans)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := r.Shutdown().Error(); err != nil {
			tb.Error(err)
		}
		f.close()
		_ = trans.Close()
	})
	return r, f
}

// The forwarder runs over a real raft as over the fake: a write on the primary commits
// through raft into the store, and a read index first commits the term's no-op, then
// returns an index the store has applied.
func TestForwarder_OverRaft(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newMemStore()
		r, f := inmemRaft(t, "m0", st)
		select {
		case <-r.LeaderCh():
		case <-time.After(10 * time.Second):
			t.Fatal("the only voter did not become leader")
		}
		lf := newLife()
		cfg := Config{Name: "m0"}.withDefaults()
		fwd := newForwarder(cfg, r, st, f, newFakeChannel(), lf, testMetrics())
		t.Cleanup(func() {
			lf.end()
			fwd.reads.close()
		})
		res, err := fwd.apply(t.Context(), store.Command{Op: store.OpPut, Key: "k", Value: []byte("v")})
		if err != nil || res.Err != nil || res.Revision != 1 {
			t.Fatalf("apply on the primary: %+v, %v", res, err)
		}
		if err := fwd.readIndex(t.Context()); err != nil {
			t.Fatalf("read index on the primary: %v", err)
		}
		if kv, ok := st.get("k"); !ok || string(kv.Value) != "v" {
			t.Errorf("store holds %q (present %v) after a linearizable read", kv.Value, ok)
		}
		if fwd.readyTerm.Load() != r.CurrentTerm() {
			t.Errorf("read index did not commit a no-op of term %d first", r.CurrentTerm())
		}
		if err := r.Shutdown().Error(); err != nil {
			t.Fatal(err)
		}
		if _, err := fwd.applyLocal(t.Context(), nil); !errors.Is(err, ErrShutdown) {
			t.Errorf("apply after raft shut down: %v, want ErrShutdown", err)
		}
	})
}
