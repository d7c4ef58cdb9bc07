package cluster

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/store"
	"github.com/mirrorkv/mirrorkv/wire"
)

// TestCluster_Close checks that Close may be called twice at once, that it wakes the
// callers blocked on the member, and that everything after it fails with reason.Shutdown.
func TestCluster_Close(t *testing.T) {
	g := newTestGroup(t, fastConfig(), 1, 0)
	n := g.node("m0")
	put(t, n.c, "k", "v")

	addr, received := listenSilent(t, n.cfg.DN)
	type outcome struct {
		what string
		err  error
	}
	out := make(chan outcome, 2)
	go func() {
		_, err := n.c.fwd.call(context.Background(), addr, methodApply, store.EncodeCommand(store.Command{Op: store.OpNoop}), false)
		out <- outcome{"apply forwarded to a silent primary", err}
	}()
	go func() {
		out <- outcome{"wait for an index never committed", n.c.fwd.waitApplied(context.Background(), n.c.fsm.appliedIndex()+1000)}
	}()
	select {
	case <-received:
	case <-time.After(10 * time.Second):
		t.Fatal("the silent peer never received the forwarded apply")
	}

	closed := make(chan error, 2)
	for range 2 {
		go func() { closed <- n.c.Close() }()
	}
	for range 2 {
		select {
		case err := <-closed:
			if err != nil {
				t.Errorf("concurrent Close: %v", err)
			}
		case <-time.After(startTimeout):
			t.Fatalf("concurrent Close did not return within %s", startTimeout)
		}
	}

	for range 2 {
		select {
		case o := <-out:
			want := reason.Shutdown
			if strings.HasPrefix(o.what, "apply") {
				want = reason.Timeout // sent: its outcome is unknown
			}
			if reason.Of(o.err, reason.OK) != want || !errors.Is(o.err, ErrShutdown) {
				t.Errorf("%s: %v; want reason %s wrapping ErrShutdown", o.what, o.err, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a caller blocked on the member was still blocked 10 s after Close")
		}
	}

	ctx := testCtx(t)
	_, applyErr := n.c.Apply(ctx, store.Command{Op: store.OpPut, Key: "k", Value: []byte("v")})
	_, statusErr := n.c.Status(ctx)
	_, membersErr := n.c.Members(ctx)
	for what, err := range map[string]error{
		"Apply":              applyErr,
		"ReadIndex":          n.c.ReadIndex(ctx),
		"Status":             statusErr,
		"Members":            membersErr,
		"AddMember":          n.c.AddMember(ctx, wire.Member{Name: "x", MemberAddr: "127.0.0.1:1", DN: "CN=x"}),
		"RemoveMember":       n.c.RemoveMember(ctx, "x"),
		"Promote":            n.c.Promote(ctx, "x"),
		"TransferLeadership": n.c.TransferLeadership(ctx, ""),
	} {
		if reason.Of(err, reason.OK) != reason.Shutdown || !errors.Is(err, ErrShutdown) {
			t.Errorf("%s after Close: %v; want reason Shutdown", what, err)
		}
	}
	if err := n.c.Close(); err != nil {
		t.Errorf("Close again: %v", err)
	}
}

// listenSilent is a member address that completes the test handshake as dn, reads one
// member RPC request, reports it on the channel, and never answers.
func listenSilent(tb testing.TB, dn string) (string, <-chan struct{}) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	tb.Cleanup(func() { ln.Close() })
	received := make(chan struct{}, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				if _, err := r.ReadString('\n'); err != nil {
					return
				}
				if _, err := io.WriteString(c, "\x01"+dn+"\n"); err != nil {
					return
				}
				var hdr [5]byte // header byte, then the frame's length
				if _, err := io.ReadFull(r, hdr[:]); err != nil {
					return
				}
				if _, err := io.CopyN(io.Discard, r, int64(binary.BigEndian.Uint32(hdr[1:]))); err != nil {
					return
				}
				received <- struct{}{}
				_, _ = io.Copy(io.Discard, r) // until the caller closes
			}()
		}
	}()
	return ln.Addr().String(), received
}

// TestCluster_Restart restarts a member on its data directory: with its store, it catches
// up from its own log; with its store lost, it restores the store from the newest snapshot
// before replaying the log after it, instead of skipping what the snapshot covers.
func TestCluster_Restart(t *testing.T) {
	g := newTestGroup(t, fastConfig(), 1, 0)
	n := g.node("m0")
	for i := range 10 {
		put(t, n.c, fmt.Sprintf("k%d", i), "v")
	}
	if err := n.c.raft.Snapshot().Error(); err != nil {
		t.Fatalf("take a snapshot: %v", err)
	}
	put(t, n.c, "after-snapshot", "v")

	check := func(t *testing.T, wantRestores uint64) {
		t.Helper()
		waitFor(t, 10*time.Second, n.name+" leads again", func() bool { return n.c.isLeader() })
		for _, key := range []string{"k0", "k9", "after-snapshot"} {
			if kv, ok := readLinear(t, n, key); !ok || string(kv.Value) != "v" {
				t.Errorf("after restart %s = %q (present %v)", key, kv.Value, ok)
			}
		}
		if r := n.c.fsm.restores.Load(); r != wantRestores {
			t.Errorf("restored %d snapshots, want %d", r, wantRestores)
		}
	}
	t.Run("store kept", func(t *testing.T) {
		g.stop(t, n)
		g.start(t, n.name, true, nil)
		check(t, 0)
	})
	t.Run("store lost", func(t *testing.T) {
		g.stop(t, n)
		n.st = newMemStore()
		g.start(t, n.name, true, nil)
		check(t, 1)
	})
}

// TestCluster_IdleConnClosedByPeer checks that a pooled member RPC conn the peer closes
// while it is idle is dropped at once, so that a later request that must not be sent twice
// goes out on a fresh conn instead of being lost on the dead one with an unknown outcome.
func TestCluster_IdleConnClosedByPeer(t *testing.T) {
	g := newTestGroup(t, fastConfig(), 1, 0)
	n := g.node("m0")
	addr, closed := listenOneShot(t, n.cfg.DN)
	if _, err := n.c.fwd.call(testCtx(t), addr, methodMembers, nil, true); err != nil {
		t.Fatalf("first call: %v", err)
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the peer never closed its conn")
	}
	waitFor(t, 5*time.Second, "the idle conn the peer closed leaves the pool", func() bool {
		return n.c.mux.connsTo(addr) == 0
	})
	if _, err := n.c.fwd.call(testCtx(t), addr, methodApply, nil, false); err != nil {
		t.Fatalf("non-idempotent call after the peer closed the idle conn: %v", err)
	}
}

// listenOneShot is a member address that answers one request per conn with an empty OK
// and then closes the conn, reporting each close.
func listenOneShot(tb testing.TB, dn string) (string, <-chan struct{}) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	tb.Cleanup(func() { ln.Close() })
	closed := make(chan struct{}, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { c.Close(); closed <- struct{}{} }()
				r, w := bufio.NewReader(c), bufio.NewWriter(c)
				if _, err := r.ReadString('\n'); err != nil {
					return
				}
				if _, err := io.WriteString(c, "\x01"+dn+"\n"); err != nil {
					return
				}
				if _, err := r.ReadByte(); err != nil { // the channel header
					return
				}
				if _, _, err := readFrame(r, maxFrame); err != nil {
					return
				}
				_ = writeFrame(w, respOK, nil)
			}()
		}
	}()
	return ln.Addr().String(), closed
}
