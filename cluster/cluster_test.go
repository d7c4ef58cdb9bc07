package cluster

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/store"
	"github.com/mirrorkv/mirrorkv/wire"
)

// TestCluster runs one group of three failover members and one async member through the
// life of a group; the subtests share it and run in order.
func TestCluster(t *testing.T) {
	g := newTestGroup(t, fastConfig(), 3, 1)
	async := g.node("m3")

	t.Run("election", func(t *testing.T) {
		l := g.leader(t)
		waitFor(t, 10*time.Second, "every member knows the primary", func() bool {
			for _, n := range g.nodes {
				if _, id := n.c.raft.LeaderWithID(); string(id) != l.name {
					return false
				}
			}
			return true
		})
	})

	t.Run("apply through primary and follower", func(t *testing.T) {
		l := g.leader(t)
		put(t, l.c, "a", "from-primary")
		f := g.followers()[0]
		put(t, f.c, "b", "from-follower")
		for _, n := range g.nodes {
			for key, want := range map[string]string{"a": "from-primary", "b": "from-follower"} {
				kv, ok := readLinear(t, n, key)
				if !ok || string(kv.Value) != want {
					t.Errorf("%s: %s = %q (present %v), want %q", n.name, key, kv.Value, ok, want)
				}
			}
		}
	})

	t.Run("precondition failure is forwarded", func(t *testing.T) {
		f := g.followers()[0]
		res, err := f.c.Apply(testCtx(t), store.Command{Op: store.OpPut, Key: "a", Value: []byte("x"), HasIf: true, IfRevision: 999})
		if err != nil {
			t.Fatalf("apply: %v", err)
		}
		pe, ok := errors.AsType[*store.PreconditionError](res.Err)
		if !ok || pe.Key != "a" || pe.Want != 999 || pe.Current == 0 {
			t.Fatalf("result error = %#v, want a *store.PreconditionError for a at 999", res.Err)
		}
		res, err = f.c.Apply(testCtx(t), store.Command{Op: store.OpDelete, Key: "missing"})
		if err != nil || !errors.Is(res.Err, store.ErrNotFound) {
			t.Fatalf("delete missing = %v, %v; want store.ErrNotFound", res.Err, err)
		}
	})

	t.Run("read index on follower sees acknowledged write", func(t *testing.T) {
		l := g.leader(t)
		for i := range 20 {
			res := put(t, l.c, "seq", string(rune('a'+i)))
			for _, f := range g.followers() {
				kv, ok := readLinear(t, f, "seq")
				if !ok || kv.Revision < res.Revision {
					t.Fatalf("%s after write at revision %d read revision %d", f.name, res.Revision, kv.Revision)
				}
			}
		}
	})

	t.Run("status roles", func(t *testing.T) {
		l := g.leader(t)
		waitFor(t, 10*time.Second, "status shows one primary, two standbys and one async", func() bool {
			st := status(t, l)
			return st.Role == wire.RolePrimary && st.SyncNodes == 4 && st.ActiveNodes == 4 &&
				memberRole(st, async.name) == wire.RoleAsync
		})
		st := status(t, l)
		if st.Primary != l.name || st.Group != "test" || st.Node != l.name || st.PrimarySince == nil || st.CommitIndex == 0 {
			t.Errorf("primary status = %+v", st)
		}
		for _, m := range st.Members {
			want := wire.RoleStandby
			switch m.Name {
			case l.name:
				want = wire.RolePrimary
			case async.name:
				want = wire.RoleAsync
			}
			if m.Role != want || m.DN != "CN="+m.Name || m.MemberAddr == "" || m.SyncPercent != 100 || m.LastContact == nil {
				t.Errorf("member %+v, want role %s, DN, address, 100%% and last contact", m, want)
			}
			if m.Voter != (m.Name != async.name) {
				t.Errorf("member %s voter = %v", m.Name, m.Voter)
			}
		}
		ast := status(t, async)
		if ast.Role != wire.RoleAsync || ast.Primary != l.name || ast.Reason.Code != int(reason.OK) {
			t.Errorf("async member's own status = role %s primary %s reason %+v", ast.Role, ast.Primary, ast.Reason)
		}
		f := g.followers()[0]
		if f == async {
			f = g.followers()[1]
		}
		if fs := status(t, f); fs.Role != wire.RoleStandby {
			t.Errorf("standby's own role = %s", fs.Role)
		}
	})

	t.Run("authoriser knows every member", func(t *testing.T) {
		for _, n := range g.nodes {
			waitFor(t, 5*time.Second, n.name+" authorises all four members", func() bool {
				m := n.auth.get()
				for _, o := range g.nodes {
					if m[o.cfg.Advertise] != "CN="+o.name {
						return false
					}
				}
				return true
			})
		}
	})

	t.Run("follower refusal names the primary", func(t *testing.T) {
		l := g.leader(t)
		fs := g.followers()
		_, err := fs[0].c.fwd.call(testCtx(t), fs[1].cfg.Advertise, methodApply, store.EncodeCommand(store.Command{Op: store.OpNoop}), false)
		if reason.Of(err, reason.OK) != reason.NotPrimary || !errors.Is(err, ErrNotPrimary) {
			t.Fatalf("apply sent to follower %s: %v; want reason NotPrimary wrapping ErrNotPrimary", fs[1].name, err)
		}
		if p, ok := hintOf(err); !ok || p.id != l.name || p.addr != l.cfg.Advertise {
			t.Errorf("refusal names primary %+v (found %v), want %s at %s", p, ok, l.name, l.cfg.Advertise)
		}
	})

	t.Run("forward to a stale primary is retried on the one it names", func(t *testing.T) {
		fs := g.followers()
		f, stale := fs[0], primary{addr: fs[1].cfg.Advertise, id: fs[1].name}
		var res store.Result
		data := store.EncodeCommand(store.Command{Op: store.OpPut, Key: "stale", Value: []byte("x")})
		err := f.c.fwd.retryOnce(testCtx(t), stale, func(ctx context.Context, p primary) (err error) {
			res, err = f.c.fwd.applyOn(ctx, p, data)
			return err
		})
		if err != nil || res.Err != nil {
			t.Fatalf("apply from %s via stale primary %s: %v, %v", f.name, stale.id, err, res.Err)
		}
		var idx uint64
		err = f.c.fwd.retryOnce(testCtx(t), stale, func(ctx context.Context, p primary) (err error) {
			idx, err = f.c.fwd.readIndexOn(ctx, p)
			return err
		})
		if err != nil || idx == 0 {
			t.Fatalf("read index from %s via stale primary %s: %d, %v", f.name, stale.id, idx, err)
		}
	})

	t.Run("transfer leadership", func(t *testing.T) {
		l := g.leader(t)
		to := "m1"
		if l.name == to {
			to = "m2"
		}
		if err := g.leader(t).c.TransferLeadership(testCtx(t), to); err != nil {
			t.Fatalf("transfer to %s: %v", to, err)
		}
		waitFor(t, 10*time.Second, to+" becomes primary", func() bool { return g.node(to).c.isLeader() })
		put(t, g.node(to).c, "after-transfer", "x")
	})

	t.Run("leader shutdown elects another and writes resume", func(t *testing.T) {
		old := g.leader(t)
		follower := g.followers()[0]
		g.stop(t, old)
		l := g.leader(t)
		if l == old {
			t.Fatalf("stopped member %s still primary", old.name)
		}
		put(t, follower.c, "after-failover", "x")
		if kv, ok := readLinear(t, async, "after-failover"); !ok || string(kv.Value) != "x" {
			t.Errorf("async member reads %q after failover", kv.Value)
		}

		t.Run("restarted member rejoins from disk", func(t *testing.T) {
			before := old.st.AppliedIndex()
			n := g.start(t, old.name, false, nil)
			waitFor(t, 10*time.Second, n.name+" catches up as STANDBY", func() bool {
				st := status(t, g.leader(t))
				return memberRole(st, n.name) == wire.RoleStandby
			})
			if kv, ok := readLinear(t, n, "after-failover"); !ok || string(kv.Value) != "x" {
				t.Errorf("restarted member reads %q", kv.Value)
			}
			if r := n.c.fsm.restores.Load(); r != 0 || before == 0 {
				t.Errorf("restarted member restored %d snapshots (applied %d before): want a catch-up from its log", r, before)
			}
			nw := listenTest(t, "127.0.0.1:0", n.cfg.DN, &fakeAuth{})
			defer nw.Close()
			cfg := n.cfg
			cfg.Advertise = nw.Addr().String()
			c, err := within(t, startTimeout, "start a second member on "+cfg.Dir, func() (*Cluster, error) {
				return New(cfg, newMemStore(), nw, &fakeAuth{}, testLogger(t))
			})
			if !errors.Is(err, ErrDirInUse) {
				if c != nil {
					closeWithin(t, c, "second "+n.name)
				}
				t.Errorf("second member on %s: %v, want ErrDirInUse", cfg.Dir, err)
			}
		})
	})

	t.Run("forward waits for the next primary when the primary is cut off", func(t *testing.T) {
		old := g.leader(t)
		var f *testNode
		for _, n := range g.followers() {
			if n != async {
				f = n
			}
		}
		put(t, f.c, "before-cut", "x") // leaves an idle forwarding conn to the primary
		if f.c.mux.connsTo(old.cfg.Advertise) == 0 {
			t.Fatalf("%s has no conn to the primary %s after forwarding to it", f.name, old.name)
		}
		old.nw.setCut(true)
		defer old.nw.setCut(false)
		// A send that races the peer's close has an unknown outcome, whatever the client
		// does; the idle watchers notice the close first, as they would after a crash.
		waitFor(t, 5*time.Second, f.name+" drops its idle conns to "+old.name, func() bool {
			return f.c.mux.connsTo(old.cfg.Advertise) == 0
		})
		res, err := f.c.Apply(testCtx(t), store.Command{Op: store.OpPut, Key: "after-cut", Value: []byte("x")})
		if err != nil || res.Err != nil {
			t.Fatalf("apply on %s right after cutting primary %s off: %v, %v", f.name, old.name, err, res.Err)
		}
		old.nw.setCut(false)
		waitFor(t, 10*time.Second, old.name+" follows the new primary", func() bool {
			_, id := old.c.raft.LeaderWithID()
			return !old.c.isLeader() && id != "" && string(id) != old.name
		})
		if kv, ok := readLinear(t, old, "after-cut"); !ok || string(kv.Value) != "x" {
			t.Errorf("healed former primary reads %q", kv.Value)
		}
		g.settled(t)
	})

	t.Run("promote async", func(t *testing.T) {
		if err := g.leader(t).c.Promote(testCtx(t), async.name); err != nil {
			t.Fatalf("promote %s: %v", async.name, err)
		}
		waitFor(t, 10*time.Second, async.name+" is a STANDBY", func() bool {
			st := status(t, g.leader(t))
			return memberRole(st, async.name) == wire.RoleStandby
		})
		m, err := memberNamed(g.leader(t).c.st, async.name)
		if err != nil || m.Async {
			t.Errorf("member record after promote = %+v, %v; want Async false", m, err)
		}
	})

	t.Run("remove member", func(t *testing.T) {
		victim := g.followers()[0]
		if err := g.leader(t).c.RemoveMember(testCtx(t), victim.name); err != nil {
			t.Fatalf("remove %s: %v", victim.name, err)
		}
		l := g.leader(t)
		waitFor(t, 10*time.Second, victim.name+" is gone from status, raft and authorisation", func() bool {
			st := status(t, l)
			_, inAuth := l.auth.get()[victim.cfg.Advertise]
			return memberRole(st, victim.name) == "" && raftServer(l.c.raft, victim.name) == nil && !inAuth
		})
		for _, n := range g.nodes {
			if n == victim || n.c.life.closing.Load() {
				continue
			}
			waitFor(t, 5*time.Second, n.name+" drops every conn with "+victim.name, func() bool {
				return n.nw.connsWith(victim.cfg.DN) == 0 && n.c.mux.connsTo(victim.cfg.Advertise) == 0
			})
		}
		if c, err := victim.nw.Dial(testCtx(t), l.cfg.Advertise); err == nil {
			c.Close()
			t.Errorf("removed member %s still gets a conn to the primary", victim.name)
		}
		if err := l.c.RemoveMember(testCtx(t), "nobody"); reason.Of(err, reason.OK) != reason.NotMember {
			t.Errorf("remove unknown member: %v, want reason NotMember", err)
		}
		put(t, l.c, "after-remove", "x")
	})

	t.Run("cut-off member refuses linearizable reads", func(t *testing.T) {
		l := g.leader(t)
		var cut *testNode
		for _, f := range g.followers() {
			if raftServer(f.c.raft, f.name) != nil {
				cut = f
			}
		}
		put(t, l.c, "cut", "before")
		readLinear(t, cut, "cut")
		cut.nw.setCut(true)
		defer cut.nw.setCut(false)
		put(t, l.c, "cut", "after")
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		err := cut.c.ReadIndex(ctx)
		if err == nil {
			kv, _ := cut.st.get("cut")
			t.Fatalf("cut-off member served a linearizable read (value %q)", kv.Value)
		}
		if code := reason.Of(err, reason.OK); code != reason.NoPrimary && code != reason.Timeout && code != reason.Unreachable {
			t.Errorf("cut-off read error %v has reason %s, want no-primary or timeout", err, code)
		}
		cut.nw.setCut(false)
		waitFor(t, 10*time.Second, cut.name+" reads again after healing", func() bool {
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			return cut.c.ReadIndex(ctx) == nil
		})
		if kv, _ := cut.st.get("cut"); string(kv.Value) != "after" {
			t.Errorf("healed member reads %q", kv.Value)
		}
		g.settled(t)
	})

	t.Run("primary removing itself hands over first", func(t *testing.T) {
		l := g.leader(t)
		// The primary hands its role over and names the new primary, where the admin's
		// client asks again, as the Go client does on a NotPrimary answer.
		err := l.c.RemoveMember(testCtx(t), l.name)
		p, hinted := hintOf(err)
		if !errors.Is(err, ErrNotPrimary) || !hinted || p.id == l.name {
			t.Fatalf("primary %s removing itself answered %v; want NotPrimary naming the new primary", l.name, err)
		}
		if err = g.node(p.id).c.RemoveMember(testCtx(t), l.name); errors.Is(err, ErrLeadershipLost) {
			// An election under load can cut the removal short with its outcome unknown;
			// the caller's documented answer is to ask again, which must then succeed.
			// ErrUnknownMember then means the first attempt did take effect.
			if err = g.leader(t).c.RemoveMember(testCtx(t), l.name); errors.Is(err, ErrUnknownMember) {
				err = nil
			}
		}
		if err != nil {
			t.Fatalf("new primary %s removes %s: %v", p.id, l.name, err)
		}
		nl := g.leader(t)
		if nl == l {
			t.Fatalf("%s is still primary after removing itself", l.name)
		}
		waitFor(t, 10*time.Second, l.name+" is out of raft and of every authoriser", func() bool {
			if raftServer(nl.c.raft, l.name) != nil {
				return false
			}
			for _, n := range g.nodes {
				if n.c.life.closing.Load() || raftServer(nl.c.raft, n.name) == nil {
					continue // stopped, or removed before
				}
				if _, ok := n.auth.get()[l.cfg.Advertise]; ok {
					return false
				}
			}
			return true
		})
		put(t, nl.c, "after-self-remove", "x")
	})

	t.Run("close leaves no goroutines", func(t *testing.T) {
		for _, n := range g.nodes {
			g.stop(t, n)
		}
		checkNoLeaks(t)
	})
}

// testCtx bounds one operation of a test.
func testCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(tb.Context(), 20*time.Second)
	tb.Cleanup(cancel)
	return ctx
}
