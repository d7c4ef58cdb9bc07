package cluster

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/store"
)

// A member's certificate carries replication, reads and forwarded client writes, nothing
// more: a peer on the member channel can neither change the membership with a raw
// membership command nor ask for an admin operation, and admin operations run on the
// primary only, where the admin's own certificate passed the handshake.
func TestMemberChannel_LeastPrivilege(t *testing.T) {
	g := newTestGroup(t, fastConfig(), 2, 0)
	l, f := g.leader(t), g.followers()[0]
	intruder := store.Member{Name: "evil", MemberAddr: "127.0.0.9:1", DN: "CN=evil"}
	var addEvil enc
	addEvil.member(intruder)
	cases := []struct {
		name    string
		method  byte
		payload []byte
		want    reason.Code
	}{
		{"raw set-member command", methodApply, store.EncodeCommand(store.Command{Op: store.OpSetMember, Member: intruder}), reason.NotAllowed},
		{"raw remove-member command", methodApply, store.EncodeCommand(store.Command{Op: store.OpRemoveMember, Member: store.Member{Name: f.name}}), reason.NotAllowed},
		{"raw set-crl command", methodApply, store.EncodeCommand(store.Command{Op: store.OpSetCRL, Key: store.CRLPortClient, Value: []byte("crl")}), reason.NotAllowed},
		{"empty command", methodApply, nil, reason.OK},
		// 5 to 8 once carried admin operations from member to member.
		{"add member", 5, addEvil.b, reason.NotAllowed},
		{"remove member", 6, []byte{1, 'x'}, reason.NotAllowed},
		{"promote", 7, []byte{1, 'x'}, reason.NotAllowed},
		{"transfer leadership", 8, []byte{0}, reason.NotAllowed},
		{"unknown method", 99, nil, reason.NotAllowed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.c.fwd.call(testCtx(t), l.cfg.Advertise, tc.method, tc.payload, false)
			if err == nil {
				t.Fatal("the primary accepted it")
			}
			if tc.want != reason.OK && reason.Of(err, reason.OK) != tc.want {
				t.Fatalf("refused with %v (reason %v), want reason %v", err, reason.Of(err, reason.OK), tc.want)
			}
		})
	}
	if _, err := memberNamed(l.c.st, "evil"); err == nil {
		t.Fatal("the intruder was authorised")
	}
	if s := raftServer(l.c.raft, "evil"); s != nil {
		t.Fatalf("the intruder is in raft: %+v", s)
	}

	t.Run("Apply refuses membership commands", func(t *testing.T) {
		_, err := f.c.Apply(testCtx(t), store.Command{Op: store.OpSetMember, Member: intruder})
		if !errors.Is(err, ErrNotAllowed) || reason.Of(err, reason.OK) != reason.NotAllowed {
			t.Fatalf("Apply(set member) = %v; want ErrNotAllowed", err)
		}
	})
	t.Run("Apply refuses CRL commands", func(t *testing.T) {
		_, err := f.c.Apply(testCtx(t), store.Command{Op: store.OpSetCRL, Key: store.CRLPortClient, Value: []byte("crl")})
		if !errors.Is(err, ErrNotAllowed) {
			t.Fatalf("Apply(set CRL) = %v; want ErrNotAllowed", err)
		}
	})
	t.Run("a CRL is pushed on the primary only, after its check", func(t *testing.T) {
		checked := 0
		check := func([]byte) (string, error) { checked++; return store.CRLPortClient, nil }
		if _, err := f.c.PushCRL(testCtx(t), []byte("crl"), check); reason.Of(err, reason.OK) != reason.NotPrimary || checked != 0 {
			t.Fatalf("PushCRL on a follower = %v after %d checks; want NotPrimary before any check", err, checked)
		}
		if port, err := l.c.PushCRL(testCtx(t), []byte("crl"), check); err != nil || port != store.CRLPortClient || checked != 1 {
			t.Fatalf("PushCRL on the primary = %q, %v after %d checks; want the client port after one check", port, err, checked)
		}
		refused := func([]byte) (string, error) {
			return "", reason.Wrap(reason.CRLUnknownSigner, errors.New("no CA of ours"))
		}
		before := l.c.st.AppliedIndex()
		if _, err := l.c.PushCRL(testCtx(t), []byte("crl"), refused); reason.Of(err, reason.OK) != reason.CRLUnknownSigner {
			t.Fatalf("PushCRL of a refused CRL = %v; want its reason", err)
		}
		if after := l.c.st.AppliedIndex(); after != before {
			t.Fatalf("a refused CRL moved the applied index from %d to %d", before, after)
		}
	})
	t.Run("admin operations run on the primary only", func(t *testing.T) {
		err := f.c.TransferLeadership(testCtx(t), f.name)
		if reason.Of(err, reason.OK) != reason.NotPrimary || !errors.Is(err, ErrNotPrimary) {
			t.Fatalf("transfer asked of a follower: %v; want a NotPrimary refusal", err)
		}
		if p, ok := hintOf(err); !ok || p.id != l.name {
			t.Fatalf("the refusal names %+v, want the primary %s", p, l.name)
		}
		if err := l.c.TransferLeadership(testCtx(t), f.name); err != nil {
			t.Fatalf("transfer asked of the primary: %v", err)
		}
		waitFor(t, 10*time.Second, f.name+" becomes primary", func() bool { return f.c.isLeader() })
	})
	t.Run("writes still forward", func(t *testing.T) {
		put(t, g.followers()[0].c, "k", "v")
	})
	t.Run("a raw txn command passes the member channel", func(t *testing.T) {
		data := store.EncodeCommand(store.Command{Op: store.OpTxn, Txn: &store.Txn{Then: []store.TxnOp{{Op: store.OpPut, Key: "raw", Value: []byte("1")}}}})
		p, err := g.followers()[0].c.fwd.call(testCtx(t), g.leader(t).cfg.Advertise, methodApply, data, false)
		if err != nil {
			t.Fatalf("the primary refused a forwarded txn: %v", err)
		}
		if res, err := decodeResult(p); err != nil || res.Txn == nil || !res.Txn.Succeeded {
			t.Fatalf("forwarded txn result = %+v, %v", res, err)
		}
	})
	t.Run("a txn forwards with its result", func(t *testing.T) {
		txn := &store.Txn{
			Compares: []store.Compare{{Key: "k", Target: store.TargetValue, Cmp: store.CmpEqual, Value: []byte("v")}},
			Then:     []store.TxnOp{{Op: store.OpPut, Key: "k", Value: []byte("w")}, {Op: store.OpDelete, Key: "absent"}},
		}
		res, err := g.followers()[0].c.Apply(testCtx(t), store.Command{Op: store.OpTxn, Txn: txn})
		if err != nil || res.Err != nil {
			t.Fatalf("forwarded txn = %v, %v", err, res.Err)
		}
		want := &store.TxnResult{Succeeded: true, Ops: []store.OpResult{{Revision: res.Revision}, {}}}
		if !reflect.DeepEqual(res.Txn, want) {
			t.Fatalf("forwarded txn result = %+v (%+v), want %+v", res.Txn, res, want)
		}
	})
}

func TestResult_RoundTrip(t *testing.T) {
	for _, r := range []store.Result{
		{Revision: 7},
		{Revision: 9, Txn: &store.TxnResult{Succeeded: true, Ops: []store.OpResult{{Revision: 9}, {}}}},
		{Revision: 9, Txn: &store.TxnResult{Ops: []store.OpResult{}}},
	} {
		got, err := decodeResult(encodeResult(r))
		if err != nil || !reflect.DeepEqual(got, r) {
			t.Errorf("decodeResult(encodeResult(%+v)) = %+v, %v", r, got, err)
		}
	}
	if _, err := decodeResult(append(encodeResult(store.Result{}), 1, 200)); err == nil {
		t.Error("a txn result counting more ops than it holds decoded")
	}
}
