package cluster

import (
	"slices"
	"testing"
	"time"

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
