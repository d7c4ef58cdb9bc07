package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/internal/localgroup"
	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/wire"
)

// preferServe is faultServe with a short preference hold-down.
var preferServe = append([]string{"--prefer-hold-down", "2s"}, faultServe...)

// TestHA_PreferredPrimary runs under the workload: a preferred member in sync becomes the
// primary within 5 s; killed, another member takes over and the status says the preference
// is not in force; restarted, it gets the role back once caught up; behind a flaky link the
// role does not flap; and the history checks as linearizable.
func TestHA_PreferredPrimary(t *testing.T) {
	scenario{opts: harnessOptions{failover: 3, serveArgs: preferServe}, faults: func(h *harness, w *workload) {
		first := h.primary()
		pref := others(h.g, first)[0]
		ctx := h.t.Context()
		start := time.Now()
		if err := h.clients[0].Prefer(ctx, pref.Name); err != nil {
			h.t.Fatalf("prefer %s: %v", pref.Name, err)
		}
		h.waitPrimary(pref, 5*time.Second, "the preferred member, in sync, takes the role")
		h.t.Logf("%s preferred and in sync: primary after %s", pref.Name, time.Since(start).Round(10*time.Millisecond))

		h.kill(pref)
		next := h.newPrimary(pref, 30*time.Second)
		eventually(h.t, 10*time.Second, "status says the preference is not in force", func() error {
			st, err := statusOf(h.t, h.g, next)
			if err != nil {
				return err
			}
			if st.Preferred != pref.Name || st.PreferredReason == nil || st.PreferredReason.Code != int(reason.PreferredUnavailable) {
				return fmt.Errorf("preferred %q reason %+v", st.Preferred, st.PreferredReason)
			}
			return nil
		})
		h.restart(pref)
		h.waitPrimary(pref, 60*time.Second, "the restarted preferred member gets the role back once caught up")

		// A flaky link: the preferred member is cut off and back every second. It loses the
		// role at the first cut; it is never in sync for a whole hold-down until the link
		// holds, so the role stays where it went.
		watch := h.watchPrimary(others(h.g, pref)[0])
		for range 6 {
			if err := h.net.Isolate(pref.Name); err != nil {
				h.t.Fatal(err)
			}
			hold(time.Second)
			h.net.Heal()
			hold(time.Second)
		}
		changes := watch()
		h.t.Logf("primaries seen under the flaky link: %v", changes)
		if len(changes) > 3 {
			h.t.Errorf("the primary role changed hands %d times under a flaky link (%v); want at most twice", len(changes)-1, changes)
		}
		h.waitPrimary(pref, 90*time.Second, "the preferred member gets the role back once the link holds")
		st, err := statusOf(h.t, h.g, pref)
		if err != nil || st.Preferred != pref.Name || st.PreferredReason == nil || st.PreferredReason.Code != int(reason.OK) {
			h.t.Fatalf("status of the preferred primary: preferred %q reason %+v (%v); want %s in force", st.Preferred, st.PreferredReason, err, pref.Name)
		}
	}}.run(t)
}

// waitPrimary waits until m reports itself PRIMARY.
func (h *harness) waitPrimary(m *localgroup.Member, timeout time.Duration, what string) {
	h.t.Helper()
	eventually(h.t, timeout, what, func() error {
		st, err := statusOf(h.t, h.g, m)
		if err != nil {
			return err
		}
		if st.Role != wire.RolePrimary {
			return fmt.Errorf("%s is %s", m.Name, st.Role)
		}
		return nil
	})
}

// watchPrimary records each primary that m names, in order, until the returned function
// is called; it returns them.
func (h *harness) watchPrimary(m *localgroup.Member) func() []string {
	ctx, cancel := context.WithCancel(h.t.Context())
	var (
		mu   sync.Mutex
		seen []string
		wg   sync.WaitGroup
	)
	wg.Go(func() {
		for ctx.Err() == nil {
			if st, err := statusOf(h.t, h.g, m); err == nil && st.Primary != "" {
				mu.Lock()
				if len(seen) == 0 || seen[len(seen)-1] != st.Primary {
					seen = append(seen, st.Primary)
				}
				mu.Unlock()
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	return func() []string {
		cancel()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return seen
	}
}
