package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/internal/localgroup"
	"github.com/mirrorkv/mirrorkv/wire"
)

// A member removed, wiped and joined again through a primary added after the snapshot it is
// sent first catches up and serves again (bug 9 in docs/reliability.md: it restored that
// snapshot, whose member list lacks the primary, and refused the primary for good).
func TestJoin_WipedMemberRejoinsThroughLaterPrimary(t *testing.T) {
	h := startHarness(t, harnessOptions{failover: 3, spare: 1, seed: 9, serveArgs: append([]string{
		"--snapshot-threshold", "256", "--snapshot-interval", "200ms", "--trailing-logs", "16"}, fastServe...)})
	n := &nemesis{h: h, rng: rand.New(rand.NewPCG(9, 1)), start: time.Now()}
	c := h.clients[0]
	// Two snapshots on every member, the logs compacted past index 1, and fewer entries
	// after the last one than the threshold, so that m4, sent the primary's last snapshot
	// when it joins, keeps that one as its own.
	for i := range 600 {
		if err := putRetrying(t, c, fmt.Sprintf("before/%03d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	// m4 joins from the primary's snapshot, which lists m1 to m3 only.
	n.grow()
	m4 := n.grown[0]
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	eventually(t, 60*time.Second, "m4 becomes primary", func() error {
		if p := h.primary(); p == m4 {
			return nil
		}
		return h.g.Admin().TransferLeadership(ctx, m4.Name)
	})

	m2 := h.g.Members[1]
	n.membership("remove "+m2.Name, func(ctx context.Context) error { return h.g.Admin().RemoveMember(ctx, m2.Name) },
		func(ms []wire.Member) bool { return !listed(ms, m2.Name, false) })
	for _, m := range []*localgroup.Member{h.g.Members[0], h.g.Members[2], m4} {
		admin, err := h.g.AdminOf(m)
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, m.Name+" lists m2 no more", func() error {
			ms, err := admin.Members(ctx)
			if err == nil && listed(ms, m2.Name, false) {
				err = errors.New("m2 still listed")
			}
			return err
		})
	}
	if err := m2.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(m2.Dir); err != nil {
		t.Fatal(err)
	}
	if err := h.g.Start(m2, "--join", m4.Advertise(), "--join-pin", m4.DN); err != nil {
		t.Fatal(err)
	}
	n.add(m2)
	if err := h.g.WaitInSync(ctx); err != nil {
		t.Fatalf("%s does not catch up after joining through %s: %v\n%s", m2.Name, m4.Name, err, h.dumpMembers())
	}
	if _, err := c.Put(ctx, "after", []byte("w")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, m2.Name+" serves the write made after it joined", func() error {
		r, err := h.staleGet(ctx, m2, "after")
		if err != nil {
			return err
		}
		if r.value != "w" {
			return fmt.Errorf("%s has after=%q", m2.Name, r.value)
		}
		return nil
	})
}
