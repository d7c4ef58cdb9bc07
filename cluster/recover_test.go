package cluster

import (
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/store"
	"github.com/mirrorkv/mirrorkv/wire"
)

// TestRecover: with every failover member gone, the stopped async member is made the only
// voter of a new configuration with its data; started again it leads, takes writes, reports
// the recovery, and authorises none of the old members.
func TestRecover(t *testing.T) {
	g := newTestGroup(t, steadyConfig(), 3, 1)
	async := g.node("m3")
	l := g.leader(t)
	var last int64
	for i := range 20 {
		last = put(t, l.c, "k", string(rune('a'+i))).Revision
	}
	waitFor(t, 10*time.Second, "the async member applies every write", func() bool {
		return async.st.Revision() == last
	})
	for _, n := range g.nodes {
		g.stop(t, n)
	}
	rec, err := Recover(async.cfg, async.st, nil, testLogger(t))
	if err != nil {
		t.Fatalf("Recover: %v", err)
	}
	if rec.From != "m3" || rec.LastRevision != last || rec.Revision != last || !slices.Equal(rec.Removed, []string{"m0", "m1", "m2"}) {
		t.Fatalf("recovery = %+v; want from m3 at revision %d, m0, m1 and m2 removed", rec, last)
	}
	n := g.start(t, "m3", false, nil)
	waitFor(t, 10*time.Second, "the recovered member leads", func() bool { return n.c.isLeader() })
	if res := put(t, n.c, "after", "x"); res.Revision != last+1 {
		t.Fatalf("write after recovery at revision %d, want %d", res.Revision, last+1)
	}
	if kv, ok := readLinear(t, n, "k"); !ok || string(kv.Value) != "t" {
		t.Fatalf("k after recovery = %q (%v), want t", kv.Value, ok)
	}
	st := status(t, n)
	if st.Role != wire.RolePrimary || st.Recovery == nil || st.Recovery.LastRevision != last || len(st.Members) != 1 {
		t.Fatalf("status after recovery: role %s, recovery %+v, %d members", st.Role, st.Recovery, len(st.Members))
	}
	auth := n.auth.get()
	for addr, dn := range auth {
		if dn != "CN=m3" {
			t.Errorf("the recovered member still authorises %s at %s", dn, addr)
		}
	}
	t.Run("refused while running", func(t *testing.T) {
		if _, err := Recover(n.cfg, n.st, nil, testLogger(t)); err == nil {
			t.Fatal("Recover on a running member's directory succeeded")
		}
	})
}

// TestRecover_RealStore: over the bbolt store, with a snapshot to restore from, the
// recovery replays the log, releases the snapshot it takes (the store then closes), and the
// store keeps every write.
func TestRecover_RealStore(t *testing.T) {
	dir := t.TempDir()
	open := func() *store.Store {
		st, err := store.Open(filepath.Join(dir, "store.db"), store.Options{NoFsync: true})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	st := open()
	auth := &fakeAuth{}
	cfg := steadyConfig()
	cfg.Name, cfg.Dir, cfg.DN, cfg.Bootstrap, cfg.SnapshotThreshold, cfg.TrailingLogs = "m0", filepath.Join(dir, "raft"), "CN=m0", true, 8, 4
	nw := listenTest(t, "127.0.0.1:0", cfg.DN, auth)
	cfg.Advertise = nw.Addr().String()
	c, err := New(cfg, st, nw, auth, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "m0 leads", func() bool { return c.isLeader() })
	var last int64
	for i := range 30 {
		last = put(t, c, "k", string(rune('a'+i))).Revision
	}
	if err := c.raft.Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	put(t, c, "after-snapshot", "x")
	closeWithin(t, c, "m0")
	done := make(chan error, 1)
	var rec Recovery
	go func() {
		var err error
		rec, err = Recover(cfg, st, nil, testLogger(t))
		done <- errors.Join(err, st.Close())
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Recover and close: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Recover or the store's Close did not return")
	}
	if rec.LastRevision != last+1 {
		t.Fatalf("recovery = %+v, want last revision %d", rec, last+1)
	}
	st = open()
	defer st.Close()
	if kv, err := st.Get("after-snapshot"); err != nil || string(kv.Value) != "x" {
		t.Fatalf("after-snapshot after recovery = %q, %v", kv.Value, err)
	}
}
