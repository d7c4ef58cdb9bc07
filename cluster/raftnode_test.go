package cluster

import (
	"context"
	"errors"
	"sync/atomic"
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
	r, f, _ := inmemNode(tb, name, st, true)
	return r, f
}

// inmemNode starts a raft node over raft's in-memory transport, bootstrapped as the only
// voter when asked, and returns its transport for Connect.
func inmemNode(tb testing.TB, name string, st *memStore, bootstrap bool) (*raft.Raft, *fsm, *raft.InmemTransport) {
	tb.Helper()
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(name)
	rc.Logger = hclog.NewNullLogger()
	rc.HeartbeatTimeout, rc.ElectionTimeout = 100*time.Millisecond, 100*time.Millisecond
	rc.LeaderLeaseTimeout, rc.CommitTimeout = 50*time.Millisecond, 5*time.Millisecond
	logs, snaps := raft.NewInmemStore(), raft.NewInmemSnapshotStore()
	addr, trans := raft.NewInmemTransport(raft.ServerAddress(addrOf(name)))
	if bootstrap {
		conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: rc.LocalID, Address: addr}}}
		if err := raft.BootstrapCluster(rc, logs, logs, snaps, trans, conf); err != nil {
			tb.Fatal(err)
		}
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
	return r, f, trans
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

// selfFunc answers a member's own view with a function of its name.
type selfFunc func(name string) selfInfo

func (f selfFunc) selfOf(_ context.Context, name, _ string) (selfInfo, error) { return f(name), nil }

// Membership runs over a real raft as over the fake: a failover member added on the primary
// joins the configuration as a non-voter, becomes a voter once its store has caught up, and
// is recorded in every store; removed, it leaves the configuration and the records.
func TestMembership_OverRaft(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st0, st1 := newMemStore(), newMemStore()
		r0, f0, t0 := inmemNode(t, "m0", st0, true)
		r1, f1, t1 := inmemNode(t, "m1", st1, false)
		t0.Connect(t1.LocalAddr(), t1)
		t1.Connect(t0.LocalAddr(), t0)
		select {
		case <-r0.LeaderCh():
		case <-time.After(10 * time.Second):
			t.Fatal("m0 did not become leader")
		}
		lf := newLife()
		cfg := Config{Name: "m0", Advertise: addrOf("m0"), DN: "CN=m0"}.withDefaults()
		fwd := newForwarder(cfg, r0, st0, f0, newFakeChannel(), lf, testMetrics())
		t.Cleanup(func() {
			lf.end()
			fwd.reads.close()
		})
		views := map[string]*fsm{"m0": f0, "m1": f1}
		var idents atomic.Pointer[identities]
		m := &membership{cfg: cfg, log: testLogger(t), raft: r0, st: st0, fwd: fwd,
			peers: selfFunc(func(name string) selfInfo {
				return selfInfo{Name: name, State: raft.Follower, Applied: views[name].appliedIndex()}
			}),
			rpc: newFakeChannel(), auth: &recordingAuth{}, life: lf, idents: &idents,
			dirty: make(chan struct{}, 1), drop: func(string) {}}

		if err := m.add(t.Context(), wireMember(memberOf("m1", false))); err != nil {
			t.Fatalf("add m1: %v", err)
		}
		if s := raftServer(r0, "m1"); s == nil || s.Suffrage != raft.Voter {
			t.Fatalf("m1 in raft after add: %+v, want a voter", s)
		}
		if _, err := fwd.apply(t.Context(), store.Command{Op: store.OpNoop}); err != nil {
			t.Fatal(err)
		}
		if err := f1.waitApplied(t.Context(), r0.LastIndex()); err != nil {
			t.Fatalf("m1 catches up: %v", err)
		}
		if _, id := r1.LeaderWithID(); id != "m0" {
			t.Errorf("m1 follows %q, want m0", id)
		}
		for name, st := range map[string]*memStore{"m0": st0, "m1": st1} {
			if mem, err := memberNamed(st, "m1"); err != nil || mem.Async || mem.DN != "CN=m1" {
				t.Errorf("%s's record of m1 = %+v, %v", name, mem, err)
			}
		}

		if err := m.remove(t.Context(), "m1"); err != nil {
			t.Fatalf("remove m1: %v", err)
		}
		if raftServer(r0, "m1") != nil {
			t.Error("m1 is still in raft after its removal")
		}
		if _, err := memberNamed(st0, "m1"); err == nil {
			t.Error("m1 is still recorded after its removal")
		}
	})
}
