package e2e

import (
	"os"
	"sync"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/internal/lazyfs"
	"github.com/mirrorkv/mirrorkv/internal/localgroup"
)

// lazyDisks puts each member's data directory on a lazyfs mount over a directory beside it,
// so that a power loss can take away what the member wrote but did not fsync.
type lazyDisks struct {
	t     *testing.T
	mu    sync.Mutex
	disks map[string]*lazyfs.FS // by member name
	lost  int64                 // bytes rolled back by every crash so far
	// writes and syncs that came through the disks before each crash: the members did write
	// there, so a loss would have been seen.
	writes, syncs int64
}

func (d *lazyDisks) mount(m *localgroup.Member) error {
	backing := m.Dir + ".disk"
	for _, dir := range []string{backing, m.Dir} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
	}
	f, err := lazyfs.Mount(backing, m.Dir)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.disks[m.Name] = f
	return nil
}

// powerLoss kills m at once and takes away what it had not fsync'd, then mounts its disk
// again; the caller restarts it.
func (d *lazyDisks) powerLoss(h *harness, m *localgroup.Member) {
	h.t.Helper()
	h.kill(m)
	d.mu.Lock()
	f := d.disks[m.Name]
	d.mu.Unlock()
	w, s := f.Stats()
	lost, err := f.Crash()
	if err != nil {
		h.t.Fatalf("power loss of %s: %v", m.Name, err)
	}
	h.t.Logf("power loss of %s: %d bytes written but not fsync'd are gone", m.Name, lost)
	d.mu.Lock()
	d.lost += lost
	d.writes += w
	d.syncs += s
	d.mu.Unlock()
	if err := d.mount(m); err != nil {
		h.t.Fatal(err)
	}
}

// TestFault_PowerLoss runs every member on a disk that loses unsynced writes when the power
// goes (internal/lazyfs, a FUSE file system). The primary loses power twice, then the whole
// group at once, under the workload. Every member must come back (or refuse with the fix,
// which would fail the test here), and no acknowledged write may be lost: a write is
// acknowledged only once a majority has fsync'd it.
func TestFault_PowerLoss(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the power-loss test mounts a FUSE file system: run it as root (CI does), with /dev/fuse")
	}
	d := &lazyDisks{t: t, disks: map[string]*lazyfs.FS{}}
	opts := harnessOptions{failover: 3, beforeStart: func(g *localgroup.Group) error {
		// Registered here, it runs after the members are stopped and before their
		// directories are removed.
		t.Cleanup(func() {
			d.mu.Lock()
			defer d.mu.Unlock()
			for _, f := range d.disks {
				if err := f.Unmount(); err != nil {
					t.Errorf("unmount a member's disk: %v", err)
				}
			}
		})
		for _, m := range g.Members {
			if err := d.mount(m); err != nil {
				return err
			}
		}
		return nil
	}}
	scenario{opts: opts, warmup: 3 * time.Second, faults: func(h *harness, w *workload) {
		for range 2 {
			p := h.primary()
			d.powerLoss(h, p)
			hold(time.Second)
			h.restart(p)
			hold(2 * time.Second)
		}
		var wg sync.WaitGroup
		for _, m := range h.g.Members {
			wg.Go(func() { d.powerLoss(h, m) })
		}
		wg.Wait()
		for _, m := range h.g.Members {
			h.restart(m)
		}
		h.primary()
		hold(2 * time.Second)
	}}.run(t)
	if d.writes == 0 || d.syncs == 0 {
		t.Errorf("%d writes and %d fsyncs came through the disks: the members did not write there, and the test proved nothing", d.writes, d.syncs)
	}
	// Whether a power loss finds anything unsynced is a matter of timing: mirrorkv fsyncs
	// each raft batch before it answers, and each store commit. lazyfs TestCrash shows that
	// what is unsynced goes.
	t.Logf("%d writes and %d fsyncs came through the disks before the power losses, which took away %d bytes unsynced in all", d.writes, d.syncs, d.lost)
}
