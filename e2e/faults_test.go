package e2e

import (
	"bytes"
	"context"
	endian "encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/client"
	"github.com/mirrorkv/mirrorkv/internal/history"
	"github.com/mirrorkv/mirrorkv/internal/localgroup"
	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/wire"
)

// Fault scenarios. Each runs its fault schedule under the harness's workload (8 clients,
// puts, linearizable gets and compare-and-sets on a few keys through random members) and
// checks the recorded history with porcupine; see harness_test.go and docs/reliability.md.
//
//	go test -run 'TestFault' ./e2e/ -v                                  # short form (CI)
//	go test -run 'TestFault' ./e2e/ -v -mirrorkv.soak 30s -timeout 60m  # soak

func TestFault_PrimaryKilled(t *testing.T) {
	scenario{opts: harnessOptions{failover: 3}, faults: func(h *harness, w *workload) {
		p := h.primary()
		h.kill(p)
		h.newPrimary(p, 30*time.Second)
		hold(2 * time.Second)
		h.restart(p)
	}}.run(t)
}

func TestFault_RandomMemberKilled(t *testing.T) {
	scenario{opts: harnessOptions{failover: 3}, faults: func(h *harness, w *workload) {
		m := h.g.Members[h.rng.IntN(len(h.g.Members))]
		h.kill(m)
		hold(2 * time.Second)
		h.restart(m)
	}}.run(t)
}

func TestFault_TwoMembersKilledInARow(t *testing.T) {
	scenario{opts: harnessOptions{failover: 3}, faults: func(h *harness, w *workload) {
		first := h.g.Members[h.rng.IntN(len(h.g.Members))]
		h.kill(first)
		hold(2 * time.Second)
		h.restart(first)
		h.waitInSync()
		// The second victim is the primary when it can be, so that both kinds of loss happen.
		second := h.primary()
		if second == first {
			others := others(h.g, first)
			second = others[h.rng.IntN(len(others))]
		}
		h.kill(second)
		hold(2 * time.Second)
		h.restart(second)
	}}.run(t)
}

// TestFault_RestartAfterLogSuffixCleared deposes a primary that holds entries nobody else
// has, so that the new primary makes it clear that suffix of its log, and then restarts it.
// A deposed primary rejoining is routine; it must be able to restart afterwards like any
// member.
func TestFault_RestartAfterLogSuffixCleared(t *testing.T) {
	scenario{opts: harnessOptions{failover: 3}, faults: func(h *harness, w *workload) {
		var victim *localgroup.Member
		for attempt := 0; attempt < 5 && victim == nil; attempt++ {
			// Member logs are appended to across rounds and restarts: only what this
			// attempt logs names its victim.
			logged := map[string]int{}
			for _, m := range h.g.Members {
				logged[m.Name] = len(m.Log())
			}
			old := h.primary()
			// Writers hammer the primary alone from before the cut until after it: the
			// writes in flight when the cut lands reach its log and no other, before it
			// notices it lost the majority and steps down.
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for i := range 8 {
				id := int(w.ids.Add(1))
				wg.Go(func() {
					for seq := 0; ; seq++ {
						select {
						case <-stop:
							return
						default:
						}
						w.rawPut(old, id, w.keys[(i+seq)%len(w.keys)], fmt.Sprintf("orphan%d-%d", id, seq))
					}
				})
			}
			time.Sleep(200 * time.Millisecond)
			if err := h.net.Isolate(old.Name); err != nil {
				h.t.Fatal(err)
			}
			time.Sleep(time.Second)
			close(stop)
			wg.Wait()
			next := h.newPrimary(old, 30*time.Second)
			w.writesGoOn([]*localgroup.Member{next})
			h.settle()
			for _, m := range h.g.Members {
				if l := m.Log(); len(l) >= logged[m.Name] && strings.Contains(l[logged[m.Name]:], "clearing log suffix") {
					victim = m
				}
			}
		}
		if victim == nil {
			h.t.Fatal("no member cleared a suffix of its raft log in five cut-offs of a primary under write load")
		}
		h.t.Logf("%s cleared a suffix of its raft log; restarting it", victim.Name)
		if err := victim.Stop(10 * time.Second); err != nil {
			h.t.Fatal(err)
		}
		h.restart(victim)
		if r := h.recovery(victim, 30*time.Second); r != recovered {
			h.t.Fatalf("%s %v after a restart that followed a cleared log suffix:\n%s", victim.Name, r, tail(victim.Log(), 2500))
		}
	}}.run(t)
}

// TestFault_RollingRestart stops (SIGTERM) and restarts every member in turn, the primary
// last, as an upgrade would: a graceful stop must not lose or duplicate a write either.
func TestFault_RollingRestart(t *testing.T) {
	scenario{opts: harnessOptions{failover: 3}, faults: func(h *harness, w *workload) {
		p := h.primary()
		for _, m := range append(others(h.g, p), p) {
			h.t.Logf("stop %s (SIGTERM)", m.Name)
			if err := m.Stop(10 * time.Second); err != nil {
				h.t.Fatal(err)
			}
			h.restart(m)
			h.waitInSync()
		}
	}}.run(t)
}

// TestFault_PrimaryFrozen freezes the primary past the election timeout. While it is frozen
// a marker is written through the new primary; then clients pinned to the old primary send
// reads and writes that wait in its accept queue, and it is thawed. Those requests are the
// first it serves, still believing it leads: each must see the marker or fail.
func TestFault_PrimaryFrozen(t *testing.T) {
	scenario{opts: harnessOptions{failover: 3}, faults: func(h *harness, w *workload) {
		old := h.primary()
		if err := old.Freeze(); err != nil {
			h.t.Fatal(err)
		}
		next := h.newPrimary(old, 30*time.Second)
		marker := w.keys[0]
		if err := w.put(h.pinned[h.index(next)], int(w.ids.Add(1)), marker, "marker-"+next.Name); err != nil {
			h.t.Fatalf("write through the new primary %s while %s is frozen: %v", next.Name, old.Name, err)
		}
		wait := w.probe(h.pinned[h.index(old)], 4, 3*time.Second)
		hold(300 * time.Millisecond) // let the probes queue up on the frozen process
		if err := old.Thaw(); err != nil {
			h.t.Fatal(err)
		}
		answered, failed := wait()
		h.t.Logf("calls through the thawed old primary %s: %d answered, %d failed", old.Name, answered, failed)
	}}.run(t)
}

// TestFault_PrimaryPartitioned cuts the primary off from both others. The cut-off member
// must refuse writes and linearizable reads with a clear error and still answer stale
// reads, marked stale; the other two elect a primary and go on; after healing, all converge.
func TestFault_PrimaryPartitioned(t *testing.T) {
	scenario{opts: harnessOptions{failover: 3}, faults: func(h *harness, w *workload) {
		old := h.primary()
		if err := h.net.Isolate(old.Name); err != nil {
			h.t.Fatal(err)
		}
		h.newPrimary(old, 30*time.Second)
		h.checkMinority(w, old)
		hold(2 * time.Second)
	}}.run(t)
}

// TestFault_OneWay first lets the primary send but not receive, then (after healing) lets
// the new primary receive but not send. Either way the others must elect a primary among
// themselves and keep taking writes.
func TestFault_OneWay(t *testing.T) {
	scenario{opts: harnessOptions{failover: 3}, faults: func(h *harness, w *workload) {
		p := h.primary()
		for _, o := range others(h.g, p) {
			if err := h.net.OneWay(o.Name, p.Name); err != nil { // p hears nothing
				h.t.Fatal(err)
			}
		}
		h.newPrimary(p, 30*time.Second)
		w.writesGoOn(others(h.g, p))
		hold(time.Second)
		h.settle()

		p = h.primary()
		for _, o := range others(h.g, p) {
			if err := h.net.OneWay(p.Name, o.Name); err != nil { // nobody hears p
				h.t.Fatal(err)
			}
		}
		h.newPrimary(p, 30*time.Second)
		w.writesGoOn(others(h.g, p))
		hold(time.Second)
	}}.run(t)
}

// TestFault_AsyncMemberPartitioned cuts an async member off and heals it: it keeps answering
// stale reads, marked stale, whose revisions never go backwards, and it catches up.
func TestFault_AsyncMemberPartitioned(t *testing.T) {
	scenario{opts: harnessOptions{failover: 3, async: 1}, faults: func(h *harness, w *workload) {
		async := h.g.Members[3]
		mon := h.monitorStale(w, async)
		hold(time.Second)
		if err := h.net.Isolate(async.Name); err != nil {
			h.t.Fatal(err)
		}
		hold(3 * time.Second)
		h.net.Heal()
		target := h.storeRevision(h.primary())
		eventually(h.t, 30*time.Second, "the async member catches up", func() error {
			if rev := h.storeRevision(async); rev < target {
				return fmt.Errorf("%s is at revision %d, the primary was at %d when healed", async.Name, rev, target)
			}
			return nil
		})
		mon.stop(h.t, w)
	}}.run(t)
}

// TestFault_EveryMemberRestarted kills every member at once under load and restarts them:
// no acknowledged write may be lost, and the group comes back without operator action.
func TestFault_EveryMemberRestarted(t *testing.T) {
	scenario{opts: harnessOptions{failover: 3}, warmup: 3 * time.Second, faults: func(h *harness, w *workload) {
		var wg sync.WaitGroup
		for _, m := range h.g.Members {
			wg.Go(func() { h.kill(m) })
		}
		wg.Wait()
		for _, m := range h.g.Members {
			h.restart(m)
		}
		h.primary()
		hold(2 * time.Second)
	}}.run(t)
}

// TestFault_TornTail damages the end of a stopped member's newest raft log segment or of its
// store file, then restarts it. The member must either recover from the others or refuse to
// start with a message that says what to do (which the test then does); it must never serve
// wrong data, which the history and the final comparison of every member's copy check.
func TestFault_TornTail(t *testing.T) {
	runTornTail(t, nil, []tornTail{
		{name: "wal-truncate", file: newestWAL, truncate: true},
		{name: "wal-flip", file: newestWAL},
		{name: "store-truncate", file: storeFile, truncate: true},
		{name: "store-flip", file: storeFile},
	})
}

// TestFault_TornTailBolt is TestFault_TornTail for members on the bolt log store.
func TestFault_TornTailBolt(t *testing.T) {
	runTornTail(t, []string{"--log-store", "bolt"}, []tornTail{
		{name: "raftlog-truncate", file: boltRaftLog, truncate: true},
		{name: "raftlog-flip", file: boltRaftLog},
	})
}

func runTornTail(t *testing.T, serveArgs []string, damages []tornTail) {
	scenario{opts: harnessOptions{failover: 3, serveArgs: serveArgs}, faults: func(h *harness, w *workload) {
		for _, d := range damages {
			h.tearTail(d)
		}
	}}.run(t)
}

// TestFault_DiskFull puts one member's data directory on a small tmpfs and fills it while
// that member is the primary. Writes must fail with a clear error or be served by the others,
// nothing may be corrupted, and the member must recover once space returns.
func TestFault_DiskFull(t *testing.T) {
	var victim *localgroup.Member
	sc := scenario{opts: harnessOptions{failover: 3, beforeStart: func(g *localgroup.Group) error {
		victim = g.Members[0] // the bootstrap member, primary at first
		return mountTmpfs(t, victim.Dir, diskFullSize)
	}}}
	sc.faults = func(h *harness, w *workload) { h.fillDisk(w, victim) }
	if err := canMountTmpfs(t); err != nil {
		t.Fatalf("the disk-full scenario needs a size-limited tmpfs (run the tests as root, as .ci/run does): %v", err)
	}
	sc.run(t)
}

// --- fault helpers --------------------------------------------------------------------------

func (h *harness) kill(m *localgroup.Member) {
	h.t.Helper()
	h.t.Logf("kill -9 %s", m.Name)
	if err := m.Kill(); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) restart(m *localgroup.Member) {
	h.t.Helper()
	h.t.Logf("restart %s", m.Name)
	if err := h.g.Restart(m); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) waitInSync() {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(h.t.Context(), 60*time.Second)
	defer cancel()
	if err := h.g.WaitInSync(ctx); err != nil {
		h.t.Fatal(err)
	}
}

// probe runs n clients through c for d, recorded like the workload's, and returns at once;
// wait returns how many of their calls were answered and how many failed.
func (w *workload) probe(c *client.Client, n int, d time.Duration) (wait func() (answered, failed int64)) {
	var wg sync.WaitGroup
	var ok, bad atomic.Int64
	for range n {
		id := int(w.ids.Add(1))
		wg.Go(func() {
			end := time.Now().Add(d)
			for seq := 0; time.Now().Before(end); seq++ {
				key := w.keys[seq%len(w.keys)]
				var err error
				if seq%2 == 0 {
					_, _, err = w.get(c, id, key)
				} else {
					err = w.cas(c, id, key, fmt.Sprintf("p%d-%d", id, seq))
				}
				if _, mismatch := client.IsPreconditionFailed(err); err == nil || mismatch {
					ok.Add(1)
				} else {
					bad.Add(1)
				}
			}
		})
	}
	return func() (int64, int64) {
		wg.Wait()
		return ok.Load(), bad.Load()
	}
}

// writesGoOn waits until a write through members succeeds.
func (w *workload) writesGoOn(members []*localgroup.Member) {
	w.h.t.Helper()
	if err := w.writesResume(members, 30*time.Second); err != nil {
		w.h.t.Fatal(err)
	}
}

// writesResume tries recorded writes through members until one succeeds or timeout passes.
func (w *workload) writesResume(members []*localgroup.Member, timeout time.Duration) error {
	c := w.h.client(members...)
	id := int(w.ids.Add(1))
	deadline := time.Now().Add(timeout)
	for seq := 0; ; seq++ {
		err := w.put(c, id, w.keys[seq%len(w.keys)], fmt.Sprintf("g%d-%d", id, seq))
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no write through %d members succeeded for %s: %w", len(members), timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkMinority checks what the cut-off member m answers: a write and a linearizable read
// are refused with a reason and a fix (the write is recorded in the history), a stale read
// answers and says it is stale.
func (h *harness) checkMinority(w *workload, m *localgroup.Member) {
	t := h.t
	t.Helper()
	key := w.keys[1]
	id := int(w.ids.Add(1))
	seq := 0
	eventually(t, 20*time.Second, "the cut-off member refuses writes with a clear error", func() error {
		seq++
		status, e := w.rawPut(m, id, key, fmt.Sprintf("minority%d-%d", id, seq))
		if status/100 == 2 {
			t.Errorf("a write through the cut-off member %s was acknowledged (status %d)", m.Name, status)
			return nil
		}
		if err := clearRefusal(status, e); err != nil {
			return err
		}
		t.Logf("the cut-off %s refuses a write: %d, reason %d (%s), fix %q", m.Name, status, e.Reason.Code, e.Error, e.Fix)
		return nil
	})
	status, e, err := h.rawGet(m, key, false)
	if err != nil {
		t.Fatalf("linearizable read through the cut-off member %s: %v", m.Name, err)
	}
	if status == http.StatusOK || status == http.StatusNotFound {
		t.Errorf("a linearizable read through the cut-off member %s was answered (status %d)", m.Name, status)
	} else if err := clearRefusal(status, e); err != nil {
		t.Errorf("linearizable read through the cut-off member %s: %v", m.Name, err)
	} else {
		t.Logf("the cut-off %s refuses a linearizable read: %d, reason %d (%s)", m.Name, status, e.Reason.Code, e.Error)
	}
	r, err := h.staleGet(t.Context(), m, key)
	if err != nil {
		t.Fatalf("stale read through the cut-off member %s: %v", m.Name, err)
	}
	t.Logf("the cut-off %s answers a stale read: %d, %s: %v, revision %d", m.Name, r.status, wire.HeaderStale, r.stale, r.storeRev)
	if r.status == http.StatusOK && !r.stale {
		t.Errorf("stale read through the cut-off member %s lacks %s: true", m.Name, wire.HeaderStale)
	} else if r.status != http.StatusOK && r.status != http.StatusNotFound {
		t.Errorf("stale read through the cut-off member %s: status %d, want an answer from its own copy", m.Name, r.status)
	}
	st, err := statusOf(t, h.g, m)
	if err != nil {
		t.Fatalf("status of the cut-off member %s: %v", m.Name, err)
	}
	if st.Role != wire.RoleUnsync || st.Reason.Code == 0 {
		t.Errorf("the cut-off member %s reports role %s reason %+v; want %s with a reason", m.Name, st.Role, st.Reason, wire.RoleUnsync)
	}
}

// clearRefusal accepts a 503 that names a reason and a fix, the "try another member" answer.
func clearRefusal(status int, e wire.Error) error {
	if status != http.StatusServiceUnavailable {
		return fmt.Errorf("status %d (%s), want 503", status, e.Error)
	}
	if e.Reason.Code == 0 || e.Error == "" || e.Fix == "" {
		return fmt.Errorf("503 without a reason code, message and fix: %+v", e)
	}
	return nil
}

// rawPut writes through m alone, without the Go client's failover and retries, and records
// the write; it returns the status and the error body.
func (w *workload) rawPut(m *localgroup.Member, id int, key, value string) (int, wire.Error) {
	ctx, cancel := context.WithTimeout(context.Background(), rawTimeout)
	defer cancel()
	p := w.rec.Begin(id, history.Put, key, value, "")
	start := time.Now()
	status, e, err := w.h.do(ctx, http.MethodPut, m.ClientURL+"/v1/kv/"+key, []byte(value))
	switch {
	case err != nil:
		e.Error = fmt.Sprintf("no answer after %s: %v", time.Since(start).Round(time.Millisecond), err)
		p.End(history.Output{Unknown: true})
	case status/100 == 2:
		p.End(history.Output{OK: true})
	case status == http.StatusServiceUnavailable || status == http.StatusBadGateway:
		p.End(history.Output{})
	default:
		p.End(history.Output{Unknown: true})
	}
	return status, e
}

func (h *harness) rawGet(m *localgroup.Member, key string, stale bool) (int, wire.Error, error) {
	ctx, cancel := context.WithTimeout(h.t.Context(), rawTimeout)
	defer cancel()
	u := m.ClientURL + "/v1/kv/" + key
	if stale {
		u += "?stale=true"
	}
	return h.do(ctx, http.MethodGet, u, nil)
}

// do sends one request and decodes an error body.
func (h *harness) do(ctx context.Context, method, url string, body []byte) (int, wire.Error, error) {
	var e wire.Error
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return 0, e, err
	}
	resp, err := h.raw.Do(req)
	if err != nil {
		return 0, e, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, e, err
	}
	if resp.StatusCode/100 != 2 {
		_ = json.Unmarshal(data, &e) // a body that is not an error leaves e empty, which the caller reports
	}
	return resp.StatusCode, e, nil
}

// storeRevision is m's own store revision (X-Mirrorkv-Revision of a stale read).
func (h *harness) storeRevision(m *localgroup.Member) int64 {
	h.t.Helper()
	r, err := h.staleGet(h.t.Context(), m, "revision-probe")
	if err != nil {
		h.t.Fatalf("stale read on %s: %v", m.Name, err)
	}
	return r.storeRev
}

// staleMonitor reads every key from one member's own copy in a loop and checks that the
// answers are marked stale, that revisions never go backwards and that every value read
// was written by someone.
type staleMonitor struct {
	done   chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	reads  int
	errs   []string
	values map[string]bool // key + "\x00" + value of every read
}

func (h *harness) monitorStale(w *workload, m *localgroup.Member) *staleMonitor {
	mon := &staleMonitor{done: make(chan struct{}), values: make(map[string]bool)}
	mon.wg.Go(func() {
		var lastStore int64
		lastKey := make(map[string]int64)
		for {
			select {
			case <-mon.done:
				return
			case <-time.After(10 * time.Millisecond):
			}
			for _, key := range w.keys {
				r, err := h.staleGet(context.Background(), m, key)
				if err != nil {
					continue // the member is busy or the read timed out: no answer, nothing to check
				}
				mon.check(key, r, &lastStore, lastKey)
			}
		}
	})
	return mon
}

func (mon *staleMonitor) check(key string, r staleRead, lastStore *int64, lastKey map[string]int64) {
	mon.mu.Lock()
	defer mon.mu.Unlock()
	mon.reads++
	fail := func(format string, a ...any) {
		if len(mon.errs) < 10 {
			mon.errs = append(mon.errs, fmt.Sprintf(format, a...))
		}
	}
	switch r.status {
	case http.StatusOK:
		if !r.stale {
			fail("stale read of %s not marked %s", key, wire.HeaderStale)
		}
		mon.values[key+"\x00"+r.value] = true
	case http.StatusNotFound:
	default:
		fail("stale read of %s: status %d", key, r.status)
		return
	}
	if r.storeRev < *lastStore {
		fail("store revision went back from %d to %d", *lastStore, r.storeRev)
	}
	*lastStore = max(*lastStore, r.storeRev)
	if r.keyRev < lastKey[key] {
		fail("revision of %s went back from %d to %d", key, lastKey[key], r.keyRev)
	}
	lastKey[key] = max(lastKey[key], r.keyRev)
}

// stop ends the monitor and fails the test for anything it saw, and for any value it read
// that no client of w ever wrote.
func (mon *staleMonitor) stop(t *testing.T, w *workload) {
	t.Helper()
	close(mon.done)
	mon.wg.Wait()
	written := make(map[string]bool)
	for _, op := range w.rec.Ops() {
		if op.Kind == history.Put || op.Kind == history.CAS {
			written[op.Key+"\x00"+op.Value] = true
		}
	}
	for kv := range mon.values {
		if !written[kv] {
			key, value, _ := strings.Cut(kv, "\x00")
			t.Errorf("stale monitor: read %s = %q, which no client wrote", key, value)
		}
	}
	t.Logf("stale monitor: %d reads, %d distinct values", mon.reads, len(mon.values))
	if mon.reads == 0 {
		t.Error("stale monitor: no stale read answered")
	}
	for _, e := range mon.errs {
		t.Error("stale monitor: " + e)
	}
}

// --- torn tail --------------------------------------------------------------------------------

type tornTail struct {
	name     string
	file     func(dataDir string) (string, error)
	truncate bool // cut the last bytes off; otherwise flip them
}

// tailBytes is how much of the file's written end is damaged: less than a page, more than
// a record header.
const tailBytes = 64

func newestWAL(dataDir string) (string, error) {
	segs, err := filepath.Glob(filepath.Join(dataDir, "raft", "wal", "*.wal"))
	if err != nil || len(segs) == 0 {
		return "", fmt.Errorf("no raft wal segment in %s (%v)", dataDir, err)
	}
	sort.Strings(segs) // segment names start with the base index, zero-padded
	return segs[len(segs)-1], nil
}

func storeFile(dataDir string) (string, error) { return filepath.Join(dataDir, "store.db"), nil }

func boltRaftLog(dataDir string) (string, error) {
	return filepath.Join(dataDir, "raft", "raft.db"), nil
}

// damageTail cuts or flips the last tailBytes before the end of what was written to path:
// raft-wal preallocates segments and bbolt grows its file ahead, so the file's physical end
// is zeros, and a torn write is the last non-zero bytes going missing or wrong.
func damageTail(path string, truncate bool) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	end := len(data)
	for end > 0 && data[end-1] == 0 {
		end--
	}
	if end < tailBytes {
		return "", fmt.Errorf("%s has only %d written bytes", path, end)
	}
	if truncate {
		if err := os.Truncate(path, int64(end-tailBytes)); err != nil {
			return "", err
		}
		return fmt.Sprintf("truncated %s from %d to %d bytes (written end at %d)", path, len(data), end-tailBytes, end), nil
	}
	for i := end - tailBytes; i < end; i++ {
		data[i] ^= 0xff
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return "", err
	}
	return fmt.Sprintf("flipped bytes %d..%d of %s%s", end-tailBytes, end, path, boltPage(data, end-1)), nil
}

// boltPage says which kind of bbolt page holds offset off of a store file, for the log; it
// returns "" for anything that is not a bbolt file.
func boltPage(data []byte, off int) string {
	const magic = 0xED0CDAED
	if len(data) < 32 || endian.LittleEndian.Uint32(data[16:]) != magic {
		return ""
	}
	size := int(endian.LittleEndian.Uint32(data[24:]))
	if size == 0 {
		return ""
	}
	start := off / size * size
	if start+10 > len(data) {
		return ""
	}
	kinds := map[uint16]string{0x01: "branch", 0x02: "leaf", 0x04: "meta", 0x10: "freelist"}
	kind, ok := kinds[endian.LittleEndian.Uint16(data[start+8:])]
	if !ok {
		kind = "overflow or unused"
	}
	return fmt.Sprintf(" (in page %d: %s)", start/size, kind)
}

// fixWords are what a refusal to start must say to do.
var fixWords = []string{"move", "remove", "delete", "resync", "restore"}

// tearTail stops a standby under load, damages one of its files and restarts it. If it
// refuses to start, the refusal must say what to do, and the test does just that: it moves
// the damaged file aside and restarts the member, which must come back from the others.
func (h *harness) tearTail(d tornTail) {
	t := h.t
	p := h.primary()
	victim := others(h.g, p)[h.rng.IntN(2)]
	hold(time.Second)
	if err := victim.Kill(); err != nil {
		t.Fatal(err)
	}
	path, err := d.file(victim.Dir)
	if err != nil {
		t.Fatal(err)
	}
	what, err := damageTail(path, d.truncate)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %s: %s", d.name, victim.Name, what)
	logBefore := len(victim.Log())
	if err := h.g.Restart(victim); err != nil {
		t.Fatal(err)
	}
	switch h.recovery(victim, 30*time.Second) {
	case recovered:
		t.Logf("%s: %s recovered by itself", d.name, victim.Name)
		return
	case stuck:
		t.Fatalf("%s: %s neither recovers nor refuses to start:\n%s", d.name, victim.Name, tail(victim.Log(), 1500))
	}
	out := victim.Log()[logBefore:]
	if i := strings.Index(out, "panic:"); i >= 0 {
		t.Errorf("%s: %s crashed instead of refusing to start with a message:\n%.2500s", d.name, victim.Name, out[i:])
	} else {
		t.Logf("%s: %s refused to start:\n%s", d.name, victim.Name, tail(out, 1500))
	}
	if !strings.Contains(out, path) || !containsAny(strings.ToLower(out), fixWords) {
		t.Errorf("%s: %s refused to start without naming %s and saying what to do (none of %q)", d.name, victim.Name, path, fixWords)
	}
	if !strings.Contains(out, "--join") {
		t.Errorf("%s: %s refused to start without saying to restart it with --join", d.name, victim.Name)
	}
	aside := path + ".damaged"
	if err := os.Rename(path, aside); err != nil {
		t.Fatal(err)
	}
	// As the message says: a member whose store is gone learns the group's members (and so
	// which DNs to accept) from a running member, then receives a snapshot.
	t.Logf("%s: moved %s aside as the message says, restarting %s with --join", d.name, path, victim.Name)
	if err := h.g.Start(victim, "--join", h.primary().Advertise(), "--join-pin", h.primary().DN); err != nil {
		t.Fatal(err)
	}
	if r := h.recovery(victim, 30*time.Second); r != recovered {
		t.Fatalf("%s: %s did not resync after the advice was followed (%v):\n%s", d.name, victim.Name, r, tail(victim.Log(), 1500))
	}
	t.Logf("%s: %s is back in sync", d.name, victim.Name)
}

type recoveryOutcome int

const (
	recovered recoveryOutcome = iota
	refusedStart
	stuck
)

func (r recoveryOutcome) String() string {
	return [...]string{"recovered", "refused to start", "running but not in sync"}[r]
}

// recovery waits up to timeout until m is a STANDBY in sync or the PRIMARY, or has exited.
func (h *harness) recovery(m *localgroup.Member, timeout time.Duration) recoveryOutcome {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if !m.Running() {
			return refusedStart
		}
		// A restarted member may well win the next election: primary is as healthy as standby.
		if st, err := statusOf(h.t, h.g, m); err == nil && (st.Role == wire.RoleStandby || st.Role == wire.RolePrimary) {
			return recovered
		}
		time.Sleep(200 * time.Millisecond)
	}
	return stuck
}

func containsAny(s string, words []string) bool {
	for _, w := range words {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}

// --- disk full --------------------------------------------------------------------------------

// diskFullSize is the tmpfs under the victim's data directory: room for a raft-wal segment
// (16 MiB, preallocated), the store and the snapshots, and little more.
const diskFullSize = "64m"

// fillDisk fills victim's disk while it is the primary and checks how it fails: writes are
// refused with a clear error or served by the others, the group goes on, and once the filler
// is removed the victim catches up (settle, then the round's comparison of every copy).
func (h *harness) fillDisk(w *workload, victim *localgroup.Member) {
	t := h.t
	if p := h.primary(); p != victim {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		err := h.g.Admin().TransferLeadership(ctx, victim.Name)
		cancel()
		if err != nil {
			t.Fatalf("transfer leadership to %s: %v", victim.Name, err)
		}
	}
	filler := filepath.Join(victim.Dir, "filler")
	n, err := fill(filler)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("filled %s's disk with %d MiB", victim.Name, n>>20)
	// The raft log segment in use is preallocated and the store reuses its free pages, so
	// small writes could go on for a while: large values make both need new space at once.
	statuses := h.ballast(victim, 80, 256<<10)
	t.Logf("256 KiB writes through %s with a full disk: %v", victim.Name, statuses)
	for status, e := range statuses {
		switch {
		case status/100 == 2, status == http.StatusServiceUnavailable, status == http.StatusGatewayTimeout:
		case status == http.StatusInsufficientStorage:
			if e.Reason.Code != int(reason.DiskFull) {
				t.Errorf("507 without reason %d: %+v", reason.DiskFull, e)
			}
		case status == 0:
			t.Errorf("writes through %s with a full disk went unanswered (%v); want success, or 507 with reason %d", victim.Name, e, reason.DiskFull)
		default:
			t.Errorf("write through %s with a full disk: status %d %+v; want success, 503, 504 or 507 (reason %d)", victim.Name, status, e, reason.DiskFull)
		}
	}
	if st, err := statusOf(t, h.g, victim); err == nil {
		t.Logf("%s with a full disk reports %s, reason %+v", victim.Name, st.Role, st.Reason)
	}
	// A majority of the members have room: the group must keep taking writes.
	if err := w.writesResume(h.g.Members, 15*time.Second); err != nil {
		t.Errorf("while %s's disk is full: %v", victim.Name, err)
	}
	if !victim.Running() {
		t.Errorf("%s exited when its disk filled:\n%s", victim.Name, tail(victim.Log(), 2000))
	}
	hold(time.Second)
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	// In later rounds of a soak the member's own data fills more of the tmpfs, so the filler
	// gives back less than a raft log segment (16 MiB, preallocated) and a store commit need.
	// Grow the filesystem then, as an operator would.
	var st syscall.Statfs_t
	if err := syscall.Statfs(victim.Dir, &st); err != nil {
		t.Fatal(err)
	}
	if free, size := int64(st.Bavail)*st.Bsize, int64(st.Blocks)*st.Bsize; free < minReturned {
		grown := (size + minReturned - free + 1<<20 - 1) >> 20
		if out, err := exec.Command("mount", "-o", fmt.Sprintf("remount,size=%dm", grown), victim.Dir).CombinedOutput(); err != nil {
			t.Fatalf("grow the tmpfs on %s: %v: %s", victim.Dir, err, bytes.TrimSpace(out))
		}
		t.Logf("only %d MiB free on %s after removing the filler: grew its tmpfs from %d to %d MiB", free>>20, victim.Name, size>>20, grown)
	}
	t.Logf("space returned to %s", victim.Name)
}

// minReturned is the room a full member gets back: raft log segments (16 MiB each), the
// store's commit of the 20 MiB of ballast it has yet to apply, and a snapshot being received.
const minReturned = 64 << 20

// statusSample is how many answers of one status a run of writes got, and the last error body.
type statusSample struct {
	n int
	wire.Error
}

func (s statusSample) String() string { return fmt.Sprintf("%d× %q", s.n, s.Error.Error) }

// ballast writes n values of size bytes through m alone (keys outside the checked ones) and
// counts the answers; it stops after three failures in a row. The first write waits 12s,
// longer than the server's apply timeout (10s), to see whether the server bounds it itself.
func (h *harness) ballast(m *localgroup.Member, n, size int) map[int]statusSample {
	out := map[int]statusSample{}
	value := bytes.Repeat([]byte{'b'}, size)
	failures := 0
	for i := range n {
		timeout := opTimeout
		if i == 0 {
			timeout = 12 * time.Second
		}
		ctx, cancel := context.WithTimeout(h.t.Context(), timeout)
		status, e, err := h.do(ctx, http.MethodPut, fmt.Sprintf("%s/v1/kv/ballast/%d", m.ClientURL, i), value)
		cancel()
		if err != nil {
			status, e = 0, wire.Error{Error: err.Error()}
		}
		s := out[status]
		s.n++
		s.Error = e
		out[status] = s
		if status/100 == 2 {
			failures = 0
		} else if failures++; failures == 3 {
			break
		}
	}
	return out
}

// fill writes zeros to path until the disk is full and returns how much it wrote.
func fill(path string) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	var n int64
	for {
		k, err := f.Write(buf)
		n += int64(k)
		if err != nil {
			if errors.Is(err, errNoSpace) {
				return n, nil
			}
			return n, err
		}
	}
}

var errNoSpace = syscall.ENOSPC

// canMountTmpfs reports whether this process may mount a size-limited tmpfs (root, or a
// container with CAP_SYS_ADMIN), by mounting and unmounting a tiny one.
func canMountTmpfs(t *testing.T) error {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
		return fmt.Errorf("mount -t tmpfs: %w: %s", err, bytes.TrimSpace(out))
	}
	if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
		return fmt.Errorf("umount: %w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// mountTmpfs mounts a tmpfs of size on dir and unmounts it when the test ends, after the
// group has stopped (cleanups run last-in first-out, and this one is registered before the
// group's).
func mountTmpfs(t *testing.T, dir, size string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w: %s", dir, err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			// A member that outlived its group still holds files: detach lazily.
			t.Logf("umount %s: %v: %s; detaching lazily", dir, err, bytes.TrimSpace(out))
			_ = exec.Command("umount", "-l", dir).Run()
		}
	})
	return nil
}
