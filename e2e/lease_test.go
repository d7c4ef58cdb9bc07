package e2e

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/client"
	"github.com/mirrorkv/mirrorkv/internal/localgroup"
)

// heartbeat is the heartbeat timeout of fastServe: the primary checks lease deadlines every
// half of it, so an expiry lands within one heartbeat of the TTL.
const heartbeat = 500 * time.Millisecond

// TestLease_ExpiresAfterTTL grants a lease, attaches two keys and lets it lapse: the keys go
// no sooner than the TTL after the grant was sent, no later than a heartbeat (plus the
// commit and the polling) after the grant was answered, and both at one revision.
func TestLease_ExpiresAfterTTL(t *testing.T) {
	g := startGroup(t, localgroup.Options{Failover: 3, ServeArgs: fastServe})
	ctx := t.Context()
	c := clientOf(t, g, g.Members...)
	sent := time.Now()
	l, err := c.Grant(ctx, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	granted := time.Now()
	if _, err := c.PutWithLease(ctx, "eph/a", []byte("1"), l.ID); err != nil {
		t.Fatal(err)
	}
	rev, err := c.PutWithLease(ctx, "eph/b", []byte("1"), l.ID)
	if err != nil {
		t.Fatal(err)
	}
	var gone time.Time
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		_, _, err := c.Get(ctx, "eph/b") // linearizable: a stale miss may be a member behind
		if client.IsNotFound(err) {
			gone = time.Now()
			break
		}
	}
	if gone.IsZero() {
		t.Fatal("the keys of a 2s lease were still there after 10s")
	}
	const slack = 300 * time.Millisecond // the revoke's commit under -race, and the polling
	if early, late := gone.Sub(sent), gone.Sub(granted); early < 2*time.Second || late > 2*time.Second+heartbeat+slack {
		t.Fatalf("keys went %s after the grant was sent, %s after it was answered; want after 2s and within 2s+%s+%s", early, late, heartbeat, slack)
	}
	if _, _, err := c.Get(ctx, "eph/a"); !client.IsNotFound(err) {
		t.Fatalf("eph/a after expiry: %v, want not found", err)
	}
	// The expiry took one revision for both keys.
	next, err := c.Put(ctx, "after", []byte("x"))
	if err != nil || next != rev+2 {
		t.Fatalf("put after the expiry = %d, %v; want revision %d (one revision for the expiry)", next, err, rev+2)
	}
	if _, err := c.KeepAlive(ctx, l.ID); !client.IsLeaseNotFound(err) {
		t.Fatalf("keep-alive of the expired lease = %v, want lease-not-found", err)
	}
}

// TestLease_KeepAliveAcrossFailover keeps a lease alive while its primary is killed with
// SIGKILL: the new primary gives the lease a fresh TTL, the keep-alives reach it, and the
// key stays for several TTLs. Once the keep-alives stop, the key goes.
func TestLease_KeepAliveAcrossFailover(t *testing.T) {
	g := startGroup(t, localgroup.Options{Failover: 3, ServeArgs: fastServe})
	ctx := t.Context()
	c := clientOf(t, g, g.Members...)
	l, err := c.Grant(ctx, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutWithLease(ctx, "svc/web", []byte("up"), l.ID); err != nil {
		t.Fatal(err)
	}
	kctx, stop := context.WithCancel(ctx)
	defer stop()
	done := c.KeepAliveInBackground(kctx, l)

	old := primaryOf(t, g)
	if err := old.Kill(); err != nil {
		t.Fatal(err)
	}
	survivors := clientOf(t, g, others(g, old)...)
	for end := time.Now().Add(4 * time.Duration(l.TTL) * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		// Linearizable: a stale miss may be a member behind. During the election reads fail,
		// which says nothing about the key.
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		_, _, err := survivors.Get(rctx, "svc/web")
		cancel()
		if client.IsNotFound(err) {
			t.Fatalf("the key of a lease kept alive went during the failover from %s", old.Name)
		}
		select {
		case err := <-done:
			t.Fatalf("keep-alive ended during the failover: %v", err)
		default:
		}
	}
	if next := primaryOf(t, g); next == old {
		t.Fatalf("killed member %s still counted as primary", old.Name)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("keep-alive ended with %v", err)
	}
	eventually(t, 3*time.Duration(l.TTL)*time.Second, "the key goes once the keep-alives stop", func() error {
		if _, _, err := survivors.Get(ctx, "svc/web"); !client.IsNotFound(err) {
			return fmt.Errorf("svc/web: %v", err)
		}
		return nil
	})
}

// TestLease_RevokeDeletesKeysInOneRevision revokes a lease with three keys through a
// member that is not the primary: all three go at the revision the revoke reports, the
// one after the last put, and a key of no lease stays.
func TestLease_RevokeDeletesKeysInOneRevision(t *testing.T) {
	g := startGroup(t, localgroup.Options{Failover: 3, ServeArgs: fastServe})
	ctx := t.Context()
	p := primaryOf(t, g)
	c := clientOf(t, g, others(g, p)[0])
	l, err := c.Grant(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{"job/1", "job/2", "job/3"}
	var last int64
	for _, k := range keys {
		if last, err = c.PutWithLease(ctx, k, []byte("run"), l.ID); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Put(ctx, "job/keep", []byte("x")); err != nil {
		t.Fatal(err)
	}
	got, err := c.Revoke(ctx, l.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Revision != last+2 || !reflect.DeepEqual(got.Keys, keys) {
		t.Fatalf("revoke = revision %d keys %q; want revision %d and %q", got.Revision, got.Keys, last+2, keys)
	}
	list, err := c.List(ctx, "job/", "", 0)
	if err != nil || len(list.KVs) != 1 || list.KVs[0].Key != "job/keep" {
		t.Fatalf("job/ after revoke = %+v, %v; want only job/keep", list, err)
	}
	if _, err := c.PutWithLease(ctx, "job/4", nil, l.ID); !client.IsLeaseNotFound(err) {
		t.Fatalf("put with the revoked lease = %v, want lease-not-found", err)
	}
}

// TestLease_RestoredFromSnapshot grows a member that can only catch up from a snapshot,
// then reads the lease through it and revokes it there: the lease, its TTL and its keys
// came with the snapshot.
func TestLease_RestoredFromSnapshot(t *testing.T) {
	g := startGroup(t, localgroup.Options{Failover: 3, ServeArgs: append([]string{"--log-store", "bolt",
		"--snapshot-threshold", "64", "--snapshot-interval", "200ms", "--trailing-logs", "16"}, fastServe...)})
	ctx := t.Context()
	c := clientOf(t, g, g.Members...)
	l, err := c.Grant(ctx, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"cfg/a", "cfg/b"} {
		if _, err := c.PutWithLease(ctx, k, []byte("v"), l.ID); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 300 {
		if _, err := c.Put(ctx, fmt.Sprintf("fill/%03d", i), bytes.Repeat([]byte{'x'}, 100)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 20*time.Second, "the primary compacts its log", func() error {
		if !strings.Contains(primaryOf(t, g).Log(), "compacting logs") {
			return fmt.Errorf("no compaction yet")
		}
		return nil
	})
	async, err := g.Grow(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	ac := clientOf(t, g, async)
	eventually(t, 30*time.Second, "the new member has the lease with its keys", func() error {
		got, err := ac.Lease(ctx, l.ID)
		if err != nil {
			return err
		}
		if got.TTL != 600 || !reflect.DeepEqual(got.Keys, []string{"cfg/a", "cfg/b"}) {
			return fmt.Errorf("lease on %s = %+v", async.Name, got)
		}
		return nil
	})
	if !strings.Contains(async.Log(), "Installed remote snapshot") {
		t.Fatalf("%s caught up without installing a snapshot; the test no longer covers lease restore", async.Name)
	}
	if _, err := ac.Revoke(ctx, l.ID); err != nil {
		t.Fatalf("revoke through %s: %v", async.Name, err)
	}
	if _, _, err := ac.Get(ctx, "cfg/a"); !client.IsNotFound(err) {
		t.Fatalf("cfg/a after revoke: %v, want not found", err)
	}
}

// TestLease_KeepAliveAcrossPartition cuts the primary off the member network while a client
// that asks it first keeps a lease alive: the isolated primary cannot commit a revoke, the
// majority elects another primary that gives the lease a fresh TTL, the client's keep-alives
// find it, and the key stays for several TTLs, also after the partition heals.
func TestLease_KeepAliveAcrossPartition(t *testing.T) {
	h := startHarness(t, harnessOptions{failover: 3, serveArgs: fastServe})
	ctx := t.Context()
	old := h.primary()
	c := h.clients[h.index(old)] // asks the isolated primary first
	l, err := c.Grant(ctx, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutWithLease(ctx, "svc/db", []byte("up"), l.ID); err != nil {
		t.Fatal(err)
	}
	kctx, stop := context.WithCancel(ctx)
	defer stop()
	done := c.KeepAliveInBackground(kctx, l)
	if err := h.net.Isolate(old.Name); err != nil {
		t.Fatal(err)
	}
	majority := h.client(others(h.g, old)...)
	stays := func(d time.Duration) {
		t.Helper()
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
			rctx, cancel := context.WithTimeout(ctx, time.Second)
			_, _, err := majority.Get(rctx, "svc/db")
			cancel()
			if client.IsNotFound(err) {
				t.Fatalf("the key of a lease kept alive went (primary %s isolated)", old.Name)
			}
			select {
			case err := <-done:
				t.Fatalf("keep-alive ended: %v", err)
			default:
			}
		}
	}
	stays(4 * time.Duration(l.TTL) * time.Second)
	h.net.Heal()
	stays(2 * time.Duration(l.TTL) * time.Second)
	stop()
	if err := <-done; err != nil {
		t.Fatalf("keep-alive ended with %v", err)
	}
	eventually(t, 3*time.Duration(l.TTL)*time.Second, "the key goes once the keep-alives stop", func() error {
		if _, _, err := majority.Get(ctx, "svc/db"); !client.IsNotFound(err) {
			return fmt.Errorf("svc/db: %v", err)
		}
		return nil
	})
}

// TestLease_KeptAliveUnderFaults keeps a lease alive with the Go client's keep-alive loop,
// which asks every member, while the primary is in turn killed and restarted, frozen and
// thawed, cut off and healed, and slowed: none of these lasts as long as the TTL, so the
// keep-alives must keep finding a primary, and the key must be there at every linearizable
// read. Once they stop, the key goes.
func TestLease_KeptAliveUnderFaults(t *testing.T) {
	h := startHarness(t, harnessOptions{failover: 3, serveArgs: fastServe})
	ctx := t.Context()
	c := h.clients[0]
	l, err := c.Grant(ctx, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutWithLease(ctx, "svc/queue", []byte("up"), l.ID); err != nil {
		t.Fatal(err)
	}
	kctx, stop := context.WithCancel(ctx)
	defer stop()
	done := c.KeepAliveInBackground(kctx, l)

	// The reader checks the key all along, through every member in turn.
	rctx, stopReads := context.WithCancel(ctx)
	readsDone := make(chan error, 1)
	go func() {
		defer close(readsDone)
		for i := 0; rctx.Err() == nil; i++ {
			octx, cancel := context.WithTimeout(rctx, time.Second)
			_, _, err := h.pinned[i%len(h.pinned)].Get(octx, "svc/queue")
			cancel()
			if client.IsNotFound(err) {
				readsDone <- fmt.Errorf("svc/queue went while its lease was kept alive (read through %s)", h.g.Members[i%len(h.g.Members)].Name)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	faults := []struct {
		name        string
		inject, fix func(m *localgroup.Member) error
	}{
		{"kill -9", func(m *localgroup.Member) error { return m.Kill() }, h.g.Restart},
		{"SIGSTOP", func(m *localgroup.Member) error { return m.Freeze() }, func(m *localgroup.Member) error { return m.Thaw() }},
		{"partition", func(m *localgroup.Member) error { return h.net.Isolate(m.Name) }, func(*localgroup.Member) error { h.net.Heal(); return nil }},
		{"slow links", func(m *localgroup.Member) error { return h.net.Slow(m.Name, 150*time.Millisecond) }, func(*localgroup.Member) error { h.net.Heal(); return nil }},
	}
	for _, f := range faults {
		p := h.primary()
		t.Logf("%s on primary %s", f.name, p.Name)
		if err := f.inject(p); err != nil {
			t.Fatal(err)
		}
		hold(2 * time.Second)
		if err := f.fix(p); err != nil {
			t.Fatal(err)
		}
		hold(time.Second)
		select {
		case err := <-readsDone:
			t.Fatal(err)
		case err := <-done:
			t.Fatalf("keep-alive ended after %s on %s: %v", f.name, p.Name, err)
		default:
		}
	}
	stopReads()
	if err := <-readsDone; err != nil {
		t.Fatal(err)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("keep-alive ended with %v", err)
	}
	eventually(t, 3*time.Duration(l.TTL)*time.Second, "the key goes once the keep-alives stop", func() error {
		if _, _, err := c.Get(ctx, "svc/queue"); !client.IsNotFound(err) {
			return fmt.Errorf("svc/queue: %v", err)
		}
		return nil
	})
}
