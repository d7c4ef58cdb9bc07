package cluster

import (
	"errors"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/store"
	"github.com/mirrorkv/mirrorkv/wire"
)

// A member's certificate carries replication and forwarded client writes, nothing more:
// a peer on the member channel cannot change the membership by sending a raw membership
// command, nor run an admin operation without an admin client's identity that the primary
// verifies itself.
func TestMemberChannel_LeastPrivilege(t *testing.T) {
	g := newTestGroup(t, fastConfig(), 2, 0)
	l, f := g.leader(t), g.followers()[0]
	intruder := wire.Member{Name: "evil", MemberAddr: "127.0.0.9:1", DN: "CN=evil"}
	adminPayload := func(chain [][]byte) []byte {
		var e enc
		e.chain(chain)
		e.member(intruder)
		return e.b
	}
	cases := []struct {
		name    string
		method  byte
		payload []byte
		want    reason.Code
	}{
		{"raw set-member command", methodApply, store.EncodeCommand(store.Command{Op: store.OpSetMember, Member: intruder}), reason.NotAllowed},
		{"raw remove-member command", methodApply, store.EncodeCommand(store.Command{Op: store.OpRemoveMember, Member: wire.Member{Name: f.name}}), reason.NotAllowed},
		{"malformed command", methodApply, []byte{1, 1, 200}, reason.OK},
		{"add member without an identity", methodAddMember, adminPayload(nil), reason.AdminRequired},
		{"add member with a non-admin identity", methodAddMember, adminPayload([][]byte{[]byte("readwrite")}), reason.AdminRequired},
		{"unknown method", 99, nil, reason.NotAllowed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.c.call(testCtx(t), l.cfg.Advertise, tc.method, tc.payload, false)
			if err == nil {
				t.Fatal("the primary accepted it")
			}
			if tc.want != reason.OK && reason.Of(err, reason.OK) != tc.want {
				t.Fatalf("refused with %v (reason %v), want reason %v", err, reason.Of(err, reason.OK), tc.want)
			}
		})
	}
	if _, err := l.c.member("evil"); err == nil {
		t.Fatal("the intruder was authorised")
	}
	if s := l.c.raftServer("evil"); s != nil {
		t.Fatalf("the intruder is in raft: %+v", s)
	}

	t.Run("Apply refuses membership commands", func(t *testing.T) {
		_, err := f.c.Apply(testCtx(t), store.Command{Op: store.OpSetMember, Member: intruder})
		if !errors.Is(err, ErrNotAllowed) || reason.Of(err, reason.OK) != reason.NotAllowed {
			t.Fatalf("Apply(set member) = %v; want ErrNotAllowed", err)
		}
	})
	t.Run("forwarded admin operation with the admin's identity", func(t *testing.T) {
		err := f.c.TransferLeadership(testCtx(t), [][]byte{[]byte("nobody")}, f.name)
		if reason.Of(err, reason.OK) != reason.AdminRequired {
			t.Fatalf("transfer with a non-admin identity: %v; want reason AdminRequired", err)
		}
		if err := f.c.TransferLeadership(testCtx(t), testAdmin, f.name); err != nil {
			t.Fatalf("transfer with the admin's identity: %v", err)
		}
		waitFor(t, 10*time.Second, f.name+" becomes primary", func() bool { return f.c.isLeader() })
	})
	t.Run("writes still forward", func(t *testing.T) {
		put(t, g.followers()[0].c, "k", "v")
	})
}
