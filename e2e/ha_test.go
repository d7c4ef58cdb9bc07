package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
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

// ackedWrite is a write the group acknowledged, with its revision.
type ackedWrite struct {
	key, value string
	rev        int64
}

// TestHA_DisasterRecovery: 3 failover members and 1 async under writes; recovery is refused
// while the failover members answer; every failover member is killed; member recover on the
// stopped async member reports which writes may be missing, and the report is right against
// the writes acknowledged; restarted, it is the primary of a group that takes writes; an old
// member restarted afterwards is refused.
func TestHA_DisasterRecovery(t *testing.T) {
	g := startGroup(t, localgroup.Options{Failover: 3, Async: 1, ServeArgs: fastServe})
	ctx := t.Context()
	async := g.Members[3]
	recoverCmd := func() (string, error) {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, binary, "member", "recover", "--from", async.Name, "--dir", async.Dir, "--yes")
		cmd.Env = append(os.Environ(), g.Env()...)
		// A recovery that hangs prints its goroutines.
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGQUIT) }
		cmd.WaitDelay = 5 * time.Second
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	if err := async.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if out, err := recoverCmd(); err == nil || !strings.Contains(out, "216") {
		t.Fatalf("recover while the failover members answer: err=%v\n%s\nwant a refusal with 216", err, out)
	}
	if err := g.Restart(async); err != nil {
		t.Fatal(err)
	}

	// Writes through the failover members, recorded once acknowledged.
	c := clientOf(t, g, g.Members[:3]...)
	var (
		mu    sync.Mutex
		acked []ackedWrite
		wg    sync.WaitGroup
	)
	stop := make(chan struct{})
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			key, value := fmt.Sprintf("w/%d", i%50), fmt.Sprintf("v%d", i)
			wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			rev, err := c.Put(wctx, key, []byte(value))
			cancel()
			if err == nil {
				mu.Lock()
				acked = append(acked, ackedWrite{key, value, rev})
				mu.Unlock()
			}
		}
	})
	time.Sleep(3 * time.Second)
	for _, m := range g.Members[:3] {
		if err := m.Kill(); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if len(acked) == 0 {
		t.Fatal("no write was acknowledged before the failover members were killed")
	}
	if err := async.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}

	out, err := recoverCmd()
	if err != nil {
		t.Fatalf("member recover: %v\n%s", err, out)
	}
	t.Logf("member recover:\n%s", out)
	var above int64
	for line := range strings.SplitSeq(out, "\n") {
		if s, ok := strings.CutPrefix(line, "possibly missing: every write the old group acknowledged with a revision above "); ok {
			above, _ = strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		}
	}
	if above == 0 || !strings.Contains(out, "authorisation withdrawn from: m1, m2, m3") {
		t.Fatalf("member recover output lacks the missing-writes bound or the withdrawn members:\n%s", out)
	}

	if err := g.Restart(async); err != nil {
		t.Fatal(err)
	}
	ac := clientOf(t, g, async)
	eventually(t, 30*time.Second, "the recovered member is the primary", func() error {
		st, err := statusOf(t, g, async)
		if err != nil {
			return err
		}
		if st.Role != wire.RolePrimary || st.Recovery == nil || st.Recovery.LastRevision != above {
			return fmt.Errorf("role %s, recovery %+v", st.Role, st.Recovery)
		}
		return nil
	})
	// The report against the history: the newest acknowledged write of each key at or below
	// the bound is there; every acknowledged write that is not is above the bound.
	latest := map[string]ackedWrite{}
	missing := 0
	for _, w := range acked {
		if w.rev > above {
			missing++
			continue
		}
		if w.rev > latest[w.key].rev {
			latest[w.key] = w
		}
	}
	for key, w := range latest {
		got, rev, err := ac.Get(ctx, key)
		if err != nil || rev < w.rev || (rev == w.rev && string(got) != w.value) {
			t.Errorf("%s after recovery = %q at %d (%v); the write of %q at %d was acknowledged at or below the bound %d", key, got, rev, err, w.value, w.rev, above)
		}
	}
	t.Logf("%d writes acknowledged, %d above the reported bound %d", len(acked), missing, above)
	if _, err := ac.Put(ctx, "after-recovery", []byte("ok")); err != nil {
		t.Fatalf("write to the recovered group: %v", err)
	}

	// An old member comes back: it is refused.
	old := g.Members[0]
	if err := old.Kill(); err != nil { // already dead; Kill just reaps
		t.Log(err)
	}
	if err := g.Start(old); err != nil {
		t.Logf("old member %s start: %v", old.Name, err)
	}
	probe := exec.Command(binary, "probe", async.MemberAddr, "--ca", g.PKI.MemberCA, "--cert", old.CertFile, "--key", old.KeyFile)
	if out, err := probe.CombinedOutput(); err == nil || !strings.Contains(string(out), "refused your certificate") {
		t.Fatalf("probe of the recovered member with %s's certificate: err=%v\n%s\nwant a refusal", old.Name, err, out)
	}
	time.Sleep(3 * time.Second)
	st, err := statusOf(t, g, async)
	if err != nil || st.Role != wire.RolePrimary || len(st.Members) != 1 {
		t.Fatalf("the recovered member after %s came back: %+v (%v); want the only member, primary", old.Name, st, err)
	}
	if st, err := statusOf(t, g, old); err == nil && st.Role == wire.RolePrimary {
		t.Fatalf("old member %s became primary again", old.Name)
	}
}
