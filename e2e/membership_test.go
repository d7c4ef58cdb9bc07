package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/internal/localgroup"
	"github.com/mirrorkv/mirrorkv/wire"
)

// TestFault_MembershipCutMidway cuts a member add and a member remove mid-way by kill -9 of
// the primary, under the workload, then finishes each as an operator would: by running it
// again until the member list says it is done. The group must end with one configuration
// that the member list and the status agree on (every listed failover member a voter, every
// voter listed), the removed member must be cut off at once (it can serve no linearizable
// read), and the history must check.
func TestFault_MembershipCutMidway(t *testing.T) {
	scenario{opts: harnessOptions{failover: 3, spare: 1}, warmup: 2 * time.Second, faults: func(h *harness, w *workload) {
		n := &nemesis{h: h, rng: rand.New(rand.NewPCG(1, 1)), start: time.Now()}

		// An add cut by the primary's death: the new member is started and being added as a
		// failover member (authorise, add as non-voter, wait for it, promote) when it dies.
		p := h.primary()
		grown := make(chan error, 1)
		before := len(h.g.Members)
		go func() {
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			_, err := h.g.Grow(ctx, false)
			grown <- err
		}()
		// Cut it once the primary has authorised the new member, before it is a voter.
		pollUntil(t, 30*time.Second, "the primary has authorised the new member", func() bool {
			ms, err := localMembers(h, p)
			return err == nil && len(ms) > before
		})
		n.logf("kill -9 %s, the primary, while a member is being added", p.Name)
		h.kill(p)
		err := <-grown
		n.logf("the add cut by the kill answered: %v", err)
		h.restart(p)
		if len(h.g.Members) == before {
			t.Fatalf("the new member was not started: %v", err)
		}
		m4 := h.g.Members[before]
		// The workload's clients stay as they are; the final comparison reads m4 too.
		h.pinned = append(h.pinned, h.client(m4))
		n.add(m4) // again, until the list says it is a failover member
		h.waitInSync()
		checkOneConfiguration(t, h)

		// A remove cut by the primary's death.
		p = h.primary()
		victim := h.g.Members[0]
		for _, m := range h.g.Members {
			if m != p && m != m4 {
				victim = m
				break
			}
		}
		removed := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			removed <- h.g.Admin().RemoveMember(ctx, victim.Name)
		}()
		// Cut it once raft has dropped the member, before its authorisation is withdrawn, if
		// the primary is not faster than the poll.
		pollUntil(t, 30*time.Second, "the primary starts the removal", func() bool {
			st, err := h.pinned[h.index(p)].Status(t.Context())
			if err != nil {
				return false
			}
			i := slices.IndexFunc(st.Members, func(m wire.MemberStatus) bool { return m.Name == victim.Name })
			return i < 0 || !st.Members[i].Voter
		})
		n.logf("kill -9 %s, the primary, while %s is being removed", p.Name, victim.Name)
		h.kill(p)
		n.logf("the remove cut by the kill answered: %v", <-removed)
		h.restart(p)
		n.membership("remove "+victim.Name, func(ctx context.Context) error { return h.g.Admin().RemoveMember(ctx, victim.Name) },
			func(ms []wire.Member) bool { return !listed(ms, victim.Name, false) })
		// No member authorised that should not be: the removed member, still running, is
		// cut off from the group, and the group's status no longer shows it.
		eventually(t, 30*time.Second, victim.Name+" cut off", func() error {
			getCtx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
			defer cancel()
			if _, _, err := h.pinned[h.index(victim)].Get(getCtx, "r0/k0"); err == nil {
				return fmt.Errorf("%s, removed, still serves a linearizable read", victim.Name)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			st, err := h.g.Admin().Status(ctx)
			if err != nil {
				return err
			}
			if slices.ContainsFunc(st.Members, func(m wire.MemberStatus) bool { return m.Name == victim.Name }) {
				return fmt.Errorf("the status still shows %s", victim.Name)
			}
			return nil
		})
		// Back as an operator would bring it: wiped, joined and added again.
		if err := victim.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Fatal(err)
		}
		if err := os.RemoveAll(victim.Dir); err != nil {
			t.Fatal(err)
		}
		p = h.primary()
		if err := h.g.Start(victim, "--join", p.Advertise(), "--join-pin", p.DN); err != nil {
			t.Fatal(err)
		}
		n.add(victim)
		h.waitInSync()
		checkOneConfiguration(t, h)
	}}.run(t)
}

// checkOneConfiguration checks that the member list and the primary's status describe one
// configuration: the same members, every failover member a voter and no async one.
func checkOneConfiguration(t *testing.T, h *harness) {
	t.Helper()
	eventually(t, 30*time.Second, "the member list and the status agree", func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		ms, err := h.g.Admin().Members(ctx)
		if err != nil {
			return err
		}
		st, err := h.g.Admin().Status(ctx)
		if err != nil {
			return err
		}
		if len(ms) != len(st.Members) {
			return fmt.Errorf("the list has %d members, the status %d", len(ms), len(st.Members))
		}
		for _, m := range ms {
			i := slices.IndexFunc(st.Members, func(s wire.MemberStatus) bool { return s.Name == m.Name })
			if i < 0 {
				return fmt.Errorf("%s is listed but not in the status", m.Name)
			}
			if st.Members[i].Voter == m.Async {
				return fmt.Errorf("%s: listed async=%t, status voter=%t", m.Name, m.Async, st.Members[i].Voter)
			}
			if st.Members[i].Reason.Code != 0 {
				return fmt.Errorf("%s: reason %d %s", m.Name, st.Members[i].Reason.Code, st.Members[i].Reason.Text)
			}
		}
		return nil
	})
}

// localMembers is the member list in m's own copy (?stale=true).
func localMembers(h *harness, m *localgroup.Member) ([]wire.Member, error) {
	ctx, cancel := context.WithTimeout(h.t.Context(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.ClientURL+"/v1/members?stale=true", nil)
	if err != nil {
		return nil, err
	}
	resp, err := h.raw.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var ms []wire.Member
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", m.Name, resp.Status)
	}
	return ms, json.NewDecoder(resp.Body).Decode(&ms)
}

// pollUntil polls cond every 5 ms until it holds.
func pollUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
