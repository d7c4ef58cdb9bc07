package cluster

import (
	"context"
	"errors"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/raft"

	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/store"
)

// fakeTrio is three members m0, m1, m2 on one fake channel, m0 the primary.
func fakeTrio(t *testing.T) (*fakeChannel, []*fakeMember) {
	ch := newFakeChannel()
	ms := []*fakeMember{newFakeMember(t, ch, "m0"), newFakeMember(t, ch, "m1"), newFakeMember(t, ch, "m2")}
	ch.lead("m0")
	return ch, ms
}

// A write and a read index sent to a member that is no longer the primary are refused
// with a NotPrimary naming the primary it knows of, and the retry goes straight there.
func TestForwarder_RetriesOnTheNamedPrimary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ch, ms := fakeTrio(t)
		f, stale := ms[1], primary{addr: addrOf("m2"), id: "m2"}
		data := store.EncodeCommand(store.Command{Op: store.OpPut, Key: "stale", Value: []byte("x")})
		var res store.Result
		err := f.fwd.retry(t.Context(), stale, func(ctx context.Context, p primary) (err error) {
			res, err = f.fwd.applyOn(ctx, p, data)
			return err
		})
		if err != nil || res.Err != nil {
			t.Fatalf("apply from m1 via stale primary m2: %v, %v", err, res.Err)
		}
		if kv, ok := ms[0].st.get("stale"); !ok || string(kv.Value) != "x" {
			t.Errorf("primary's store holds %q (present %v), want x", kv.Value, ok)
		}
		var idx uint64
		err = f.fwd.retry(t.Context(), stale, func(ctx context.Context, p primary) (err error) {
			idx, err = f.fwd.readIndexOn(ctx, p)
			return err
		})
		if err != nil || idx == 0 {
			t.Fatalf("read index from m1 via stale primary m2: %d, %v", idx, err)
		}
		want := []string{addrOf("m2"), addrOf("m0"), addrOf("m2"), addrOf("m0")}
		if got := ch.sentTo(); !slices.Equal(got, want) {
			t.Errorf("calls went to %v, want %v", got, want)
		}
	})
}

// A member that is not the primary refuses a forwarded write with reason NotPrimary and
// names the primary it knows of; one that knows none names nobody.
func TestForwarder_RefusalNamesThePrimary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, ms := fakeTrio(t)
		noop := store.EncodeCommand(store.Command{Op: store.OpNoop})
		_, err := ms[1].fwd.call(t.Context(), addrOf("m2"), methodApply, noop, false)
		if reason.Of(err, reason.OK) != reason.NotPrimary || !errors.Is(err, ErrNotPrimary) {
			t.Fatalf("apply sent to follower m2: %v; want reason NotPrimary wrapping ErrNotPrimary", err)
		}
		if p, ok := hintOf(err); !ok || p.id != "m0" || p.addr != addrOf("m0") {
			t.Errorf("refusal names primary %+v (found %v), want m0 at %s", p, ok, addrOf("m0"))
		}

		ms[2].raft.follow("", "")
		_, err = ms[1].fwd.call(t.Context(), addrOf("m2"), methodReadIndex, nil, true)
		if reason.Of(err, reason.OK) != reason.NotPrimary {
			t.Fatalf("read index sent to m2, which knows no primary: %v; want reason NotPrimary", err)
		}
		if p, ok := hintOf(err); ok {
			t.Errorf("m2 knows no primary but named %+v", p)
		}
	})
}

// When the primary cannot be reached, the request was never sent: the forward waits for the
// next primary rather than trying the unreachable one again, and succeeds there.
func TestForwarder_WaitsForTheNextPrimary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ch, ms := fakeTrio(t)
		ch.setDown(addrOf("m0"), true)
		const failover = 2 * time.Second
		time.AfterFunc(failover, func() { ch.lead("m2") })
		start := time.Now()
		res, err := ms[1].fwd.apply(t.Context(), store.Command{Op: store.OpPut, Key: "after-cut", Value: []byte("x")})
		if err != nil || res.Err != nil {
			t.Fatalf("apply on m1 with primary m0 cut off: %v, %v", err, res.Err)
		}
		if d := time.Since(start); d < failover {
			t.Errorf("apply returned after %v, before the next primary took over at %v", d, failover)
		}
		if want := []string{addrOf("m0"), addrOf("m2")}; !slices.Equal(ch.sentTo(), want) {
			t.Errorf("calls went to %v, want %v", ch.sentTo(), want)
		}
		if kv, ok := ms[2].st.get("after-cut"); !ok || string(kv.Value) != "x" {
			t.Errorf("new primary m2 holds %q (present %v)", kv.Value, ok)
		}
	})
}

// With no other primary in the time a failover takes, the wait ends with reason NoPrimary
// when nobody leads at all.
func TestForwarder_NoPrimary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ch, ms := fakeTrio(t)
		ch.lead("")
		start := time.Now()
		_, err := ms[1].fwd.apply(t.Context(), store.Command{Op: store.OpPut, Key: "k"})
		if !errors.Is(err, ErrNoPrimary) || reason.Of(err, reason.OK) != reason.NoPrimary {
			t.Fatalf("apply with no primary: %v, want ErrNoPrimary", err)
		}
		cfg := ms[1].cfg
		if d, want := time.Since(start), 2*cfg.HeartbeatTimeout+6*cfg.ElectionTimeout; d < want {
			t.Errorf("gave up after %v, before a failover's time %v", d, want)
		}
	})
}

// A forwarded write comes back with the store's own result, a failed precondition among
// them, and Apply refuses membership commands before forwarding anything.
func TestForwarder_Results(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ch, ms := fakeTrio(t)
		f := ms[1]
		if _, err := f.fwd.apply(t.Context(), store.Command{Op: store.OpPut, Key: "a", Value: []byte("1")}); err != nil {
			t.Fatal(err)
		}
		res, err := f.fwd.apply(t.Context(), store.Command{Op: store.OpPut, Key: "a", Value: []byte("x"), HasIf: true, IfRevision: 999})
		if err != nil {
			t.Fatalf("apply: %v", err)
		}
		pe, ok := errors.AsType[*store.PreconditionError](res.Err)
		if !ok || pe.Key != "a" || pe.Want != 999 || pe.Current == 0 {
			t.Fatalf("result error = %#v, want a *store.PreconditionError for a at 999", res.Err)
		}
		res, err = f.fwd.apply(t.Context(), store.Command{Op: store.OpDelete, Key: "missing"})
		if err != nil || !errors.Is(res.Err, store.ErrNotFound) {
			t.Fatalf("delete missing = %v, %v; want store.ErrNotFound", res.Err, err)
		}
		n := len(ch.sentTo())
		_, err = f.fwd.apply(t.Context(), store.Command{Op: store.OpSetMember, Member: memberOf("evil", false)})
		if !errors.Is(err, ErrNotAllowed) || len(ch.sentTo()) != n {
			t.Fatalf("apply of a membership command: %v after %d calls; want ErrNotAllowed, nothing sent", err, len(ch.sentTo())-n)
		}
	})
}

// A read index on the primary commits a no-op of its term first, once, and then confirms
// its leadership for every round; a failed confirmation fails the read.
func TestForwarder_ReadIndexOnThePrimary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, ms := fakeTrio(t)
		p := ms[0]
		idx, err := p.fwd.readIndexOn(t.Context(), primary{id: "m0"})
		if err != nil || idx == 0 || idx != p.raft.CommitIndex() {
			t.Fatalf("read index on the primary: %d, %v; want the commit index %d", idx, err, p.raft.CommitIndex())
		}
		if _, err := p.fwd.readIndexOn(t.Context(), primary{id: "m0"}); err != nil || p.raft.LastIndex() != idx {
			t.Fatalf("second read index: %v, last index %d; want no second no-op after %d", err, p.raft.LastIndex(), idx)
		}
		p.raft.mu.Lock()
		p.raft.verifyErr = raft.ErrLeadershipLost
		p.raft.mu.Unlock()
		if _, err := p.fwd.readIndexOn(t.Context(), primary{id: "m0"}); !errors.Is(err, ErrLeadershipLost) {
			t.Fatalf("read index when leadership is not confirmed: %v, want ErrLeadershipLost", err)
		}
	})
}

// A write that meets a leadership moving twice (each refusal naming the primary its member
// knew of, one of them stale too) follows the names to the primary within maxAttempts.
func TestForwarder_FollowsLeadershipThatMovesTwice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ch, ms := fakeTrio(t)
		ch.lead("m1")
		ms[2].raft.follow("m0", addrOf("m0")) // m2 has not heard of the second move yet
		f, stale := ms[1], primary{addr: addrOf("m2"), id: "m2"}
		data := store.EncodeCommand(store.Command{Op: store.OpPut, Key: "moved", Value: []byte("x")})
		var res store.Result
		err := f.fwd.retry(t.Context(), stale, func(ctx context.Context, p primary) (err error) {
			res, err = f.fwd.applyOn(ctx, p, data)
			return err
		})
		if err != nil || res.Err != nil {
			t.Fatalf("apply from m1 via m2 and m0, both stale: %v, %v", err, res.Err)
		}
		if kv, ok := ms[1].st.get("moved"); !ok || string(kv.Value) != "x" {
			t.Errorf("the primary m1 holds %q (present %v), want x", kv.Value, ok)
		}
		if got, want := ch.sentTo(), []string{addrOf("m2"), addrOf("m0")}; !slices.Equal(got, want) {
			t.Errorf("calls went to %v, want %v, then m1's own apply", got, want)
		}
	})
}
