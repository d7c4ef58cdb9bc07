package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/store"
	"github.com/mirrorkv/mirrorkv/wire"
)

// preferFixture is m1, the primary of m1, m2 (a failover member) and m3 (async), with a
// preferrer whose transfers are recorded and whose view of each member is inSync.
type preferFixture struct {
	st        *memStore
	raft      *fakeRaft
	p         *preferrer
	inSync    map[string]bool
	transfers []string
}

func newPreferFixture(t *testing.T) *preferFixture {
	f := &preferFixture{st: newMemStore(), inSync: map[string]bool{"m2": true, "m3": true}}
	f.raft = newFakeRaft("m1", f.st)
	f.raft.follow("m1", addrOf("m1"))
	f.raft.setServers(raft.Server{ID: "m1", Suffrage: raft.Voter}, raft.Server{ID: "m2", Suffrage: raft.Voter},
		raft.Server{ID: "m3", Suffrage: raft.Nonvoter})
	f.raft.last = 1000
	for _, m := range []store.Member{memberOf("m1", false), memberOf("m2", false), memberOf("m3", true)} {
		f.st.Mems[m.Name] = m
	}
	cfg := Config{Name: "m1", PreferHoldDown: time.Second}.withDefaults()
	f.p = &preferrer{cfg: cfg, log: testLogger(t), raft: f.raft, st: f.st, life: newLife(),
		peers: selfFunc(func(name string) selfInfo {
			applied := uint64(1000)
			if !f.inSync[name] {
				applied = 1
			}
			return selfInfo{Name: name, State: raft.Follower, Applied: applied}
		}),
		transfer: func(_ context.Context, to string) error {
			f.transfers = append(f.transfers, to)
			return nil
		}}
	return f
}

func (f *preferFixture) prefer(name string) {
	m := f.st.Mems[name]
	m.PreferredIndex = 7
	f.st.Mems[name] = m
}

// run steps the preferrer every 250 ms from start for d and returns the transfers made.
func (f *preferFixture) run(start time.Time, d time.Duration) []string {
	for at := start; !at.After(start.Add(d)); at = at.Add(preferPoll) {
		f.p.step(context.Background(), at)
	}
	return f.transfers
}

func TestPreferrer_Step(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	t.Run("in sync for the hold-down: the role moves once", func(t *testing.T) {
		f := newPreferFixture(t)
		f.prefer("m2")
		if got := f.run(t0, 750*time.Millisecond); len(got) != 0 {
			t.Fatalf("transfers within the hold-down: %v", got)
		}
		if got := f.run(t0.Add(time.Second), 0); len(got) != 1 || got[0] != "m2" {
			t.Fatalf("transfers after the hold-down: %v, want [m2]", got)
		}
	})
	t.Run("one look out of sync starts the hold-down again", func(t *testing.T) {
		f := newPreferFixture(t)
		f.prefer("m2")
		f.run(t0, 750*time.Millisecond)
		f.inSync["m2"] = false
		f.run(t0.Add(time.Second), 0)
		f.inSync["m2"] = true
		if got := f.run(t0.Add(1250*time.Millisecond), 750*time.Millisecond); len(got) != 0 {
			t.Fatalf("transfers within a hold-down of the last look out of sync: %v", got)
		}
		if got := f.run(t0.Add(2250*time.Millisecond), 0); len(got) != 1 {
			t.Fatalf("transfers a hold-down after: %v, want [m2]", got)
		}
	})
	for _, tc := range []struct {
		name  string
		setup func(f *preferFixture)
	}{
		{"no preference", func(*preferFixture) {}},
		{"this member is preferred", func(f *preferFixture) { f.prefer("m1") }},
		{"preferred member is async", func(f *preferFixture) { f.prefer("m3") }},
		{"preferred member behind", func(f *preferFixture) { f.prefer("m2"); f.inSync["m2"] = false }},
		{"not the primary", func(f *preferFixture) { f.prefer("m2"); f.raft.follow("m3", addrOf("m3")) }},
	} {
		t.Run(tc.name+": nothing moves", func(t *testing.T) {
			f := newPreferFixture(t)
			tc.setup(f)
			if got := f.run(t0, 10*time.Second); len(got) != 0 {
				t.Fatalf("transfers: %v, want none", got)
			}
		})
	}
}

// TestPreferrer_HoldDownDoubles: each change of primary within ten hold-downs doubles the
// hold-down, up to 16 times; once they are older, it is back to one.
func TestPreferrer_HoldDownDoubles(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	f := newPreferFixture(t)
	leaders := []string{"m1", "m2", "m1", "m2", "m1", "m2", "m1"}
	want := []time.Duration{1, 2, 4, 8, 16, 16, 16}
	for i, l := range leaders {
		f.raft.follow(l, addrOf(l))
		at := t0.Add(time.Duration(i) * time.Second)
		f.p.step(context.Background(), at)
		if got := f.p.holdDown(at); got != want[i]*time.Second {
			t.Fatalf("after %d changes of primary the hold-down is %s, want %s", i+1, got, want[i]*time.Second)
		}
	}
	if got := f.p.holdDown(t0.Add(time.Minute)); got != time.Second {
		t.Fatalf("a minute later the hold-down is %s, want 1s", got)
	}
}

func TestPreferStatus(t *testing.T) {
	members := []wire.MemberStatus{
		{Name: "m1", Voter: true, Role: wire.RolePrimary},
		{Name: "m2", Voter: true, Role: wire.RoleStandby},
		{Name: "m3", Voter: true, Role: wire.RoleUnsync},
		{Name: "dr", Role: wire.RoleAsync},
	}
	for _, tc := range []struct {
		preferred string
		want      reason.Code
	}{
		{"m1", reason.OK},
		{"m2", reason.PreferredPending},
		{"m3", reason.PreferredUnavailable},
		{"dr", reason.PreferredNotFailover},
		{"gone", reason.PreferredUnavailable},
	} {
		t.Run(tc.preferred, func(t *testing.T) {
			ms := []store.Member{{Name: "m1"}, {Name: tc.preferred, PreferredIndex: 3}}
			name, r := preferStatus(ms, members)
			if name != tc.preferred || r == nil || r.Code != int(tc.want) {
				t.Fatalf("preferStatus = %q, %+v; want %q with %d", name, r, tc.preferred, tc.want)
			}
		})
	}
	if name, r := preferStatus([]store.Member{{Name: "m1"}}, members); name != "" || r != nil {
		t.Fatalf("no preference: %q, %+v", name, r)
	}
}

// TestMembership_Prefer: the preference is a replicated record; only a failover member may
// be preferred; it runs on the primary only.
func TestMembership_Prefer(t *testing.T) {
	ch := newFakeChannel()
	m1, m2 := newFakeMember(t, ch, "m1"), newFakeMember(t, ch, "m2")
	m1.raft.follow("m1", addrOf("m1"))
	m1.raft.setServers(raft.Server{ID: "m1", Suffrage: raft.Voter}, raft.Server{ID: "m2", Suffrage: raft.Voter},
		raft.Server{ID: "m3", Suffrage: raft.Nonvoter})
	m2.raft.follow("m1", addrOf("m1"))
	for _, m := range []store.Member{memberOf("m1", false), memberOf("m2", false), memberOf("m3", true)} {
		m1.record(m)
		m2.record(m)
	}
	preferred := func() string {
		ms, _ := m1.st.Members()
		p, _ := store.Preferred(ms)
		return p.Name
	}
	if err := m1.mem.prefer(t.Context(), "m2"); err != nil || preferred() != "m2" {
		t.Fatalf("prefer m2 = %v, preferred %q", err, preferred())
	}
	if err := m1.mem.prefer(t.Context(), "m3"); reason.Of(err, reason.OK) != reason.PreferredNotFailover || preferred() != "m2" {
		t.Fatalf("prefer async m3 = %v, preferred %q; want preferred-not-failover and m2 kept", err, preferred())
	}
	if err := m1.mem.prefer(t.Context(), "nobody"); reason.Of(err, reason.OK) != reason.NotMember {
		t.Fatalf("prefer nobody = %v, want not-member", err)
	}
	if err := m2.mem.prefer(t.Context(), "m2"); reason.Of(err, reason.OK) != reason.NotPrimary {
		t.Fatalf("prefer on a standby = %v, want not-primary", err)
	}
	if err := m1.mem.prefer(t.Context(), ""); err != nil || preferred() != "" {
		t.Fatalf("withdraw = %v, preferred %q", err, preferred())
	}
}
