package cluster

import (
	"testing"

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
