package cluster

import (
	"errors"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/raft"

	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/store"
	"github.com/mirrorkv/mirrorkv/wire"
)

// TestMemberConversion checks that wireMember and storeMember carry every field both ways,
// and fails when either type gains a field, so that a new API field is mapped (or left out of
// the replicated record) on purpose rather than dropped by accident.
func TestMemberConversion(t *testing.T) {
	w := wire.Member{Name: "m1", MemberAddr: "10.0.0.1:7001", ClientURL: "https://m1", DN: "CN=m1", Async: true}
	s := store.Member{Name: "m1", MemberAddr: "10.0.0.1:7001", ClientURL: "https://m1", DN: "CN=m1", Async: true}
	if got := storeMember(w); !reflect.DeepEqual(got, s) {
		t.Errorf("storeMember(%+v) = %+v, want %+v", w, got, s)
	}
	if got := wireMember(s); !reflect.DeepEqual(got, w) {
		t.Errorf("wireMember(%+v) = %+v, want %+v", s, got, w)
	}
	// store.Member's sixth field, PreferredIndex, is left out of the API record on purpose:
	// only member prefer sets it (store.OpSetPreferred), never member add.
	for typ, want := range map[reflect.Type]int{reflect.TypeFor[wire.Member](): 5, reflect.TypeFor[store.Member](): 6} {
		if n := typ.NumField(); n != want {
			t.Errorf("%s has %d fields, the conversions map %d: update wireMember and storeMember", typ, n, want)
		}
	}
}

// fakeGroup is members named names on one fake channel, m0 the primary, every one recorded
// in every store and a voter in every configuration unless async lists it.
func fakeGroup(t *testing.T, names []string, async ...string) (*fakeChannel, map[string]*fakeMember) {
	ch := newFakeChannel()
	ms := map[string]*fakeMember{}
	var servers []raft.Server
	for _, n := range names {
		ms[n] = newFakeMember(t, ch, n)
		s := raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(n), Address: raft.ServerAddress(addrOf(n))}
		if slices.Contains(async, n) {
			s.Suffrage = raft.Nonvoter
		}
		servers = append(servers, s)
	}
	for _, m := range ms {
		m.raft.setServers(servers...)
		for _, n := range names {
			m.record(memberOf(n, slices.Contains(async, n)))
		}
	}
	ch.lead("m0")
	return ch, ms
}

// A failover member is authorised, added as a non-voter, and made a voter only once it has
// caught up; an async member stays a non-voter. Promote later makes it a voter in the same
// way, and records it as a failover member.
func TestMembership_AddAndPromote(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, ms := fakeGroup(t, []string{"m0", "m1", "m2"})
		p := ms["m0"]
		for _, n := range []string{"m3", "m4"} {
			ms[n] = newFakeMember(t, p.fwd.rpc.(*fakeChannel), n)
		}
		// The newcomer catches up a second after it is added.
		catchUp := func(m *fakeMember) { m.fsm.advance(p.raft.LastIndex(), false) }
		time.AfterFunc(time.Second, func() { catchUp(ms["m3"]) })
		start := time.Now()
		if err := p.mem.add(t.Context(), wireMember(memberOf("m3", false))); err != nil {
			t.Fatalf("add m3: %v", err)
		}
		if d := time.Since(start); d < time.Second {
			t.Errorf("m3 became a voter after %v, before it caught up", d)
		}
		want := []string{"set member m3", "add non-voter m3", "add voter m3", "set member m3"}
		if got := p.raft.changeLog(); !slices.Equal(got, want) {
			t.Fatalf("adding failover member m3 ran %q, want %q", got, want)
		}

		if err := p.mem.add(t.Context(), wireMember(memberOf("m4", true))); err != nil {
			t.Fatalf("add async m4: %v", err)
		}
		want = append(want, "set member m4", "add non-voter m4")
		if got := p.raft.changeLog(); !slices.Equal(got, want) {
			t.Fatalf("adding async member m4 ran %q, want %q", got, want)
		}

		time.AfterFunc(time.Second, func() { catchUp(ms["m4"]) })
		if err := p.mem.promote(t.Context(), "m4"); err != nil {
			t.Fatalf("promote m4: %v", err)
		}
		want = append(want, "add voter m4", "set member m4")
		if got := p.raft.changeLog(); !slices.Equal(got, want) {
			t.Fatalf("promoting m4 ran %q, want %q", got, want)
		}
		if m, err := memberNamed(p.st, "m4"); err != nil || m.Async {
			t.Errorf("member record after promote = %+v, %v; want Async false", m, err)
		}
		if s := raftServer(p.raft, "m4"); s == nil || s.Suffrage != raft.Voter {
			t.Errorf("m4 in raft after promote: %+v, want a voter", s)
		}
		if err := p.mem.add(t.Context(), wire.Member{Name: "m5"}); err == nil {
			t.Error("add of a member without address and DN succeeded")
		}
	})
}

// Removing a member takes it out of raft first and withdraws its authorisation after, so
// that it never counts towards the quorum while cut off; an unknown name is NotMember.
func TestMembership_Remove(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, ms := fakeGroup(t, []string{"m0", "m1", "m2"})
		p := ms["m0"]
		if err := p.mem.remove(t.Context(), "m1"); err != nil {
			t.Fatalf("remove m1: %v", err)
		}
		if got, want := p.raft.changeLog(), []string{"remove m1", "withdraw member m1"}; !slices.Equal(got, want) {
			t.Fatalf("removing m1 ran %q, want %q", got, want)
		}
		if _, err := memberNamed(p.st, "m1"); err == nil || raftServer(p.raft, "m1") != nil {
			t.Error("m1 is still recorded or in raft")
		}
		if err := p.mem.remove(t.Context(), "nobody"); reason.Of(err, reason.OK) != reason.NotMember || !errors.Is(err, ErrUnknownMember) {
			t.Errorf("remove unknown member: %v, want reason NotMember", err)
		}
	})
}

// The primary does not remove itself: it hands its role over and answers NotPrimary naming
// the new primary, which then removes it. The only voter refuses.
func TestMembership_PrimaryRemovesItself(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ch, ms := fakeGroup(t, []string{"m0", "m1", "m2"})
		p := ms["m0"]
		time.AfterFunc(time.Second, func() { ch.lead("m1") })
		err := p.mem.remove(t.Context(), "m0")
		np, hinted := hintOf(err)
		if !errors.Is(err, ErrNotPrimary) || !hinted || np.id != "m1" {
			t.Fatalf("primary m0 removing itself answered %v; want NotPrimary naming m1", err)
		}
		if got, want := p.raft.changeLog(), []string{"transfer to "}; !slices.Equal(got, want) {
			t.Errorf("m0 ran %q before answering, want %q", got, want)
		}
		if err := ms["m1"].mem.remove(t.Context(), "m0"); err != nil {
			t.Fatalf("new primary m1 removes m0: %v", err)
		}
		if got, want := ms["m1"].raft.changeLog(), []string{"remove m0", "withdraw member m0"}; !slices.Equal(got, want) {
			t.Errorf("m1 ran %q, want %q", got, want)
		}

		_, solo := fakeGroup(t, []string{"m0"})
		if err := solo["m0"].mem.remove(t.Context(), "m0"); err == nil || len(solo["m0"].raft.changeLog()) != 0 {
			t.Errorf("the only voter removing itself: %v, changes %q; want a refusal and no change", err, solo["m0"].raft.changeLog())
		}
	})
}

// Leadership goes to a named voter, or to any when none is named; a non-voter is refused.
func TestMembership_Transfer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, ms := fakeGroup(t, []string{"m0", "m1", "m2"}, "m2")
		p := ms["m0"]
		if err := p.mem.transfer(t.Context(), "m2"); reason.Of(err, reason.OK) != reason.NotMember {
			t.Errorf("transfer to non-voter m2: %v, want reason NotMember", err)
		}
		for _, to := range []string{"m0", "m1", ""} {
			if err := p.mem.transfer(t.Context(), to); err != nil {
				t.Errorf("transfer to %q: %v", to, err)
			}
		}
		if got, want := p.raft.changeLog(), []string{"transfer to m1", "transfer to "}; !slices.Equal(got, want) {
			t.Errorf("transfers ran %q, want %q", got, want)
		}
		// raft's own give-up has no value to test for; it is a timeout the admin may retry,
		// not an internal error.
		p.raft.mu.Lock()
		p.raft.transferErr = errors.New("leadership transfer timeout")
		p.raft.mu.Unlock()
		if err := p.mem.transfer(t.Context(), "m1"); reason.Of(err, reason.OK) != reason.Timeout || !strings.Contains(err.Error(), "m1 is up and in sync") {
			t.Errorf("transfer that raft gave up on: %v, want reason Timeout naming m1", err)
		}
	})
}

// Off the primary, every admin operation is refused with NotPrimary naming the primary, and
// changes nothing: it never travels over the member channel.
func TestMembership_AdminOffThePrimary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ch, ms := fakeGroup(t, []string{"m0", "m1", "m2"})
		f := ms["m1"]
		ops := map[string]func() error{
			"add":      func() error { return f.mem.add(t.Context(), wireMember(memberOf("m9", false))) },
			"promote":  func() error { return f.mem.promote(t.Context(), "m2") },
			"remove":   func() error { return f.mem.remove(t.Context(), "m2") },
			"transfer": func() error { return f.mem.transfer(t.Context(), "m2") },
		}
		for name, op := range ops {
			err := op()
			p, ok := hintOf(err)
			if !errors.Is(err, ErrNotPrimary) || reason.Of(err, reason.OK) != reason.NotPrimary || !ok || p.id != "m0" {
				t.Errorf("%s on follower m1: %v; want NotPrimary naming m0", name, err)
			}
		}
		if len(f.raft.changeLog()) != 0 || len(ch.sentTo()) != 0 {
			t.Errorf("follower changed %q and called %q", f.raft.changeLog(), ch.sentTo())
		}
		if got := f.mem.primaryURL(); got != "https://m0" {
			t.Errorf("primary URL on m1 = %q, want https://m0", got)
		}
	})
}

// The authoriser and the raft gate learn every recorded member; a member withdrawn is
// dropped from both, and this member's own conns to its address are closed.
func TestMembership_RefreshAuth(t *testing.T) {
	_, ms := fakeGroup(t, []string{"m0", "m1", "m2"})
	m := ms["m1"]
	var dropped []string
	m.mem.drop = func(addr string) { dropped = append(dropped, addr) }
	m.mem.refreshAuth()
	want := map[string]string{addrOf("m0"): "CN=m0", addrOf("m1"): "CN=m1", addrOf("m2"): "CN=m2"}
	if got := m.auth.get(); !maps.Equal(got, want) {
		t.Fatalf("authoriser has %v, want %v", got, want)
	}
	if ids := *m.mem.idents.Load(); len(ids["CN=m2"]) != 1 || ids["CN=m2"][0] != (identity{"m2", addrOf("m2")}) {
		t.Errorf("raft gate identities of CN=m2 = %v", ids["CN=m2"])
	}
	m.st.mu.Lock()
	delete(m.st.Mems, "m2")
	m.st.mu.Unlock()
	m.mem.refreshAuth()
	delete(want, addrOf("m2"))
	if got := m.auth.get(); !maps.Equal(got, want) {
		t.Errorf("authoriser after m2 was withdrawn has %v, want %v", got, want)
	}
	if !slices.Equal(dropped, []string{addrOf("m2")}) {
		t.Errorf("dropped conns to %v, want to m2 only", dropped)
	}
	if ids := *m.mem.idents.Load(); len(ids["CN=m2"]) != 0 {
		t.Errorf("raft gate still lets CN=m2 speak as %v", ids["CN=m2"])
	}
}

// A member wiped and joined again through m3, a member added after the snapshot it first
// restores, keeps authorising m3 until its store has applied the index of the join answer,
// and from then on follows its store alone, so that m2, removed since the snapshot, is not
// authorised any longer (bug 9 in docs/reliability.md).
func TestMembership_JoinedListUntilStoreCatchesUp(t *testing.T) {
	_, ms := fakeGroup(t, []string{"m0", "m1", "m2"})
	m := ms["m1"]
	member := func(name string) store.Member {
		return store.Member{Name: name, MemberAddr: addrOf(name), DN: "CN=" + name}
	}
	// The join answer: m2 removed, m3 added, as of index 40.
	m.mem.mu.Lock()
	m.mem.joined, m.mem.joinedAt = []store.Member{member("m0"), member("m1"), member("m3")}, 40
	m.mem.mu.Unlock()
	// The store restored a snapshot of index 10, before m3 was added and m2 removed.
	setApplied := func(applied uint64, names ...string) {
		m.st.mu.Lock()
		m.st.Applied = applied
		m.st.Mems = map[string]store.Member{}
		for _, n := range names {
			m.st.Mems[n] = member(n)
		}
		m.st.mu.Unlock()
		m.mem.refreshAuth()
	}
	setApplied(10, "m0", "m1", "m2")
	if got := m.auth.get(); got[addrOf("m3")] != "CN=m3" {
		t.Fatalf("behind the join answer, the authoriser has %v: m3, through which the member joined, is refused", got)
	}
	if !m.mem.joining() {
		t.Fatal("the joined list was dropped before the store caught up")
	}
	setApplied(39, "m0", "m1", "m3")
	if got := m.auth.get(); got[addrOf("m3")] != "CN=m3" {
		t.Fatalf("one entry behind, the authoriser has %v", got)
	}
	setApplied(40, "m0", "m1", "m3")
	want := map[string]string{addrOf("m0"): "CN=m0", addrOf("m1"): "CN=m1", addrOf("m3"): "CN=m3"}
	if got := m.auth.get(); !maps.Equal(got, want) {
		t.Fatalf("caught up, the authoriser has %v, want %v", got, want)
	}
	if m.mem.joining() {
		t.Fatal("the joined list is still in force after the store caught up")
	}
	// From now on a removal in the store is final, even of a member the join answer listed.
	setApplied(41, "m0", "m1")
	delete(want, addrOf("m3"))
	if got := m.auth.get(); !maps.Equal(got, want) {
		t.Errorf("after m3 was removed, the authoriser has %v, want %v", got, want)
	}
}

// An answer from an older release carries no index: its list counts only while the store
// has no members, as before.
func TestMembership_JoinedListWithoutIndex(t *testing.T) {
	_, ms := fakeGroup(t, []string{"m0", "m1"})
	m := ms["m1"]
	m.mem.mu.Lock()
	m.mem.joined = []store.Member{{Name: "m9", MemberAddr: addrOf("m9"), DN: "CN=m9"}}
	m.mem.mu.Unlock()
	m.mem.refreshAuth()
	if got := m.auth.get(); got[addrOf("m9")] != "" {
		t.Errorf("a list without index outlived the store's own: %v", got)
	}
}

func TestMembersAtEncoding(t *testing.T) {
	ms := []store.Member{{Name: "m0", MemberAddr: "a:1", DN: "CN=m0"}}
	got, applied, err := decodeMembersAt(encodeMembersAt(ms, 77))
	if err != nil || applied != 77 || len(got) != 1 || got[0] != ms[0] {
		t.Fatalf("decodeMembersAt(encodeMembersAt) = %v, %d, %v", got, applied, err)
	}
	got, applied, err = decodeMembersAt(encodeMembers(ms))
	if err != nil || applied != 0 || len(got) != 1 {
		t.Fatalf("the older form: %v, %d, %v", got, applied, err)
	}
	if _, err := decodeMembers(encodeMembersAt(ms, 77)); err != nil {
		t.Fatalf("decodeMembers refuses the newer form: %v", err)
	}
	if _, _, err := decodeMembersAt(append(encodeMembersAt(ms, 77), 0)); err == nil {
		t.Fatal("trailing bytes after the index were accepted")
	}
}
