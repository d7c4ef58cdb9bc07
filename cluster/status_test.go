package cluster

import (
	"bytes"
	"reflect"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/raft"

	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/store"
	"github.com/mirrorkv/mirrorkv/wire"
)

func TestMemberStatus(t *testing.T) {
	voter := &raft.Server{ID: "m1", Suffrage: raft.Voter}
	nonvoter := &raft.Server{ID: "m1", Suffrage: raft.Nonvoter}
	for _, tc := range []struct {
		name        string
		server      *raft.Server
		info        selfInfo
		primaryLast uint64
		role        wire.Role
		reason      reason.Code
	}{
		{"leader", voter, selfInfo{State: raft.Leader, Applied: 100}, 100, wire.RolePrimary, reason.OK},
		{"voter in sync", voter, selfInfo{State: raft.Follower, Applied: 95}, 100, wire.RoleStandby, reason.OK},
		{"non-voter in sync", nonvoter, selfInfo{State: raft.Follower, Applied: 100}, 100, wire.RoleAsync, reason.OK},
		{"voter lagging", voter, selfInfo{State: raft.Follower, Applied: 50}, 100, wire.RoleUnsync, reason.CatchingUp},
		{"restoring", voter, selfInfo{State: raft.Follower, Applied: 100, Restoring: true}, 100, wire.RoleUnsync, reason.CatchingUp},
		{"candidate with a full log", voter, selfInfo{State: raft.Candidate, Applied: 100}, 100, wire.RoleUnsync, reason.NoPrimary},
		{"no primary answered", voter, selfInfo{State: raft.Follower, Applied: 100}, 0, wire.RoleUnsync, reason.NoPrimary},
		{"not in raft", nil, selfInfo{State: raft.Follower, Applied: 100}, 100, wire.RoleUnsync, reason.NotMember},
		// Trust material to act on shows as the reason of a member that keeps its role.
		{"leader with an expired CRL", voter, selfInfo{State: raft.Leader, Applied: 100, TLSHealth: reason.CRLExpired}, 100, wire.RolePrimary, reason.CRLExpired},
		{"standby with a CRL due soon", voter, selfInfo{State: raft.Follower, Applied: 100, TLSHealth: reason.CRLExpiring}, 100, wire.RoleStandby, reason.CRLExpiring},
		{"catching up outranks the CRL", voter, selfInfo{State: raft.Follower, Applied: 50, TLSHealth: reason.CRLExpired}, 100, wire.RoleUnsync, reason.CatchingUp},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ms := memberStatus(&statusEntry{member: store.Member{Name: "m1"}, server: tc.server, info: tc.info}, tc.primaryLast, 10)
			if ms.Role != tc.role || ms.Reason.Code != int(tc.reason) {
				t.Errorf("role %s reason %d, want %s reason %d", ms.Role, ms.Reason.Code, tc.role, tc.reason)
			}
		})
	}
}

// The Self answer carries the member's TLS health last, so that a member of the previous
// release, which sends none, still decodes as healthy.
func TestSelfInfo_TLSHealth(t *testing.T) {
	in := selfInfo{Name: "m1", State: raft.Follower, Applied: 7, TLSHealth: reason.CRLExpired}
	out, err := decodeSelf(encodeSelf(in))
	if err != nil || out.TLSHealth != reason.CRLExpired || out.Applied != 7 {
		t.Fatalf("round trip: %+v, %v", out, err)
	}
	in.TLSHealth = reason.OK
	enc := encodeSelf(in)
	old := enc[:len(enc)-1] // what the previous release sent: the same, without the code
	if out, err := decodeSelf(old); err != nil || out.TLSHealth != reason.OK || out.Name != "m1" {
		t.Fatalf("answer of a member without TLS health: %+v, %v", out, err)
	}
}

// Expiries travel after the TLS health, and only to a member that asks for them: a member
// of the previous release sends an empty Self request and refuses trailing bytes, and
// answers without them itself.
func TestSelfInfo_Expiries(t *testing.T) {
	at := time.Date(2026, 3, 8, 12, 0, 0, 0, time.UTC)
	in := selfInfo{Name: "m1", State: raft.Follower, Applied: 7, TLSHealth: reason.CAExpiring, Expiries: []wire.Expiry{
		{Port: "client", Material: "ca", Subject: "CN=clients", At: at, Reason: wire.Reason{Code: int(reason.CAExpiring), Text: reason.CAExpiring.Text()}},
		{Port: "member", Material: "leaf", Subject: "CN=m1", At: at.Add(time.Hour), Reason: wire.Reason{Code: int(reason.CertExpiring), Text: reason.CertExpiring.Text()}},
	}}
	out, err := decodeSelf(answerSelf([]byte{selfWithExpiries}, in))
	if err != nil || !reflect.DeepEqual(out, in) {
		t.Fatalf("round trip:\n got %+v, %v\nwant %+v", out, err, in)
	}
	withoutExpiries := in
	withoutExpiries.Expiries = nil
	if got, want := answerSelf(nil, in), encodeSelf(withoutExpiries); !bytes.Equal(got, want) {
		t.Fatalf("answer to an older member carries the expiries: %x, want %x", got, want)
	}
	if out, err := decodeSelf(encodeSelf(withoutExpiries)); err != nil || out.Expiries != nil || out.TLSHealth != reason.CAExpiring {
		t.Fatalf("answer of an older member: %+v, %v", out, err)
	}
	enc := answerSelf([]byte{selfWithExpiries}, in)
	if _, err := decodeSelf(enc[:len(enc)-3]); err == nil {
		t.Fatal("a cut expiry list decoded")
	}
	ms := memberStatus(&statusEntry{member: store.Member{Name: "m1"}, server: &raft.Server{ID: "m1", Suffrage: raft.Voter}, info: in}, 7, 10)
	if !reflect.DeepEqual(ms.Expiries, in.Expiries) || ms.Reason.Code != int(reason.CAExpiring) || ms.Role != wire.RoleStandby {
		t.Fatalf("member status %+v, want a standby with reason ca-expiring and the expiries", ms)
	}
}

// Status asks every member for its own view: on a group of a primary, two standbys and an
// async member, all in sync, each member's status shows those roles, from the primary's
// view and from each member's own.
func TestStatusReporter_Roles(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ch, ms := fakeGroup(t, []string{"m0", "m1", "m2", "m3"}, "m3")
		p := ms["m0"]
		for range 3 {
			if _, err := p.fwd.apply(t.Context(), store.Command{Op: store.OpPut, Key: "k"}); err != nil {
				t.Fatal(err)
			}
		}
		for _, m := range ms {
			m.fsm.advance(p.raft.LastIndex(), false)
		}
		var became []string
		p.rep.becamePrimary = func() { became = append(became, "m0") }
		obs := make(chan raft.Observation, 1)
		go p.rep.watchRole(obs)
		obs <- raft.Observation{Data: raft.LeaderObservation{LeaderID: "m0"}}
		synctest.Wait()
		if len(became) != 1 {
			t.Errorf("m0 became primary %d times on its leader observation, want once", len(became))
		}

		st, err := p.rep.status(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if st.Role != wire.RolePrimary || st.SyncNodes != 4 || st.ActiveNodes != 4 || memberRole(st, "m3") != wire.RoleAsync {
			t.Errorf("primary status: role %s, %d in sync, %d active, m3 %s", st.Role, st.SyncNodes, st.ActiveNodes, memberRole(st, "m3"))
		}
		if st.Primary != "m0" || st.Group != "test" || st.Node != "m0" || st.PrimarySince == nil || st.CommitIndex == 0 {
			t.Errorf("primary status = %+v", st)
		}
		for _, m := range st.Members {
			want := wire.RoleStandby
			switch m.Name {
			case "m0":
				want = wire.RolePrimary
			case "m3":
				want = wire.RoleAsync
			}
			if m.Role != want || m.DN != "CN="+m.Name || m.MemberAddr == "" || m.SyncPercent != 100 || m.LastContact == nil {
				t.Errorf("member %+v, want role %s, DN, address, 100%% and last contact", m, want)
			}
			if m.Voter != (m.Name != "m3") {
				t.Errorf("member %s voter = %v", m.Name, m.Voter)
			}
		}
		if ast, err := ms["m3"].rep.status(t.Context()); err != nil || ast.Role != wire.RoleAsync || ast.Primary != "m0" || ast.Reason.Code != int(reason.OK) {
			t.Errorf("async member's own status = role %s primary %s reason %+v, %v", ast.Role, ast.Primary, ast.Reason, err)
		}
		if fs, err := ms["m1"].rep.status(t.Context()); err != nil || fs.Role != wire.RoleStandby {
			t.Errorf("standby's own role = %s, %v", fs.Role, err)
		}

		ch.setDown(addrOf("m2"), true)
		st, err = p.rep.status(t.Context())
		if err != nil || st.ActiveNodes != 3 || st.SyncNodes != 3 {
			t.Fatalf("status with m2 unreachable: %d active, %d in sync, %v", st.ActiveNodes, st.SyncNodes, err)
		}
		for _, m := range st.Members {
			if m.Name == "m2" && (m.Role != wire.RoleUnsync || m.Reason.Code != int(reason.Unreachable)) {
				t.Errorf("unreachable m2 shows as %s reason %+v", m.Role, m.Reason)
			}
		}
	})
}
