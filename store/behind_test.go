package store

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mirrorkv/mirrorkv/reason"
)

// behind is write-behind with an interval that never fires in a test: only Flush, Snapshot
// and Close commit.
var behind = Options{FlushInterval: time.Hour}

// copyFile copies the store file as a crash would leave it: what the last commit wrote.
func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestWriteBehind_CrashReplays is the contract with the raft log: after a crash the file is
// the state of the last flush, whole, and replaying every entry from there on rebuilds the
// state the store had, skipping what the file already holds.
func TestWriteBehind_CrashReplays(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, filepath.Join(dir, "state.db"), behind)
	first := entries(1, put("a", "1"), put("b", "1"), setMember("m1", "127.0.0.1:1"))
	second := entries(4, put("a", "2"), del("b"), put("c", "1"), setMember("m2", "127.0.0.1:2"))
	s.ApplyBatch(first)
	if err := s.Flush(); err != nil {
		t.Fatalf("Flush() = %v", err)
	}
	s.ApplyBatch(second)
	if got := s.fileApplied(); got != 3 {
		t.Fatalf("file applied %d after the flush of 1-3 and an unflushed batch, want 3", got)
	}
	before := dump(t, s)
	if before.Applied != 7 || len(before.Members) != 2 {
		t.Fatalf("in memory: applied %d, %d members; want 7 and 2", before.Applied, len(before.Members))
	}

	crashed := filepath.Join(dir, "crashed.db")
	copyFile(t, filepath.Join(dir, "state.db"), crashed)
	c := openAt(t, crashed, behind)
	if got := dump(t, c); got.Applied != 3 || got.Revision != 2 || len(got.KVs) != 2 || len(got.Members) != 1 {
		t.Fatalf("after the crash: %+v, want the state at index 3", got)
	}
	out := c.ApplyBatch(append(first, second...))
	for i := range first {
		if out[i] != (Result{}) {
			t.Errorf("replayed entry %d = %+v, want it skipped", i+1, out[i])
		}
	}
	assertState(t, dump(t, c), before)
}

// TestWriteBehind_CloseCommits: what was applied is in the file once Close returns.
func TestWriteBehind_CloseCommits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path, behind)
	if err != nil {
		t.Fatal(err)
	}
	s.ApplyBatch(entries(1, put("a", "1"), put("b", "2"), del("a")))
	want := dump(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	assertState(t, dump(t, openAt(t, path, Options{})), want)
}

// TestWriteBehind_Interval: the flusher commits on its own.
func TestWriteBehind_Interval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := openStore(t, Options{FlushInterval: 100 * time.Millisecond})
		s.ApplyBatch(entries(1, put("a", "1")))
		if got := s.fileApplied(); got != 0 {
			t.Fatalf("file applied %d before the interval, want 0", got)
		}
		time.Sleep(150 * time.Millisecond)
		synctest.Wait()
		if got := s.fileApplied(); got != 1 {
			t.Fatalf("file applied %d after the interval, want 1", got)
		}
	})
}

// TestWriteBehind_DiskFull: a flush the disk refuses stalls the store: Stalled says why,
// the next ApplyBatch waits, the retry commits both layers once the disk takes writes, and
// nothing applied is lost or applied twice.
func TestWriteBehind_DiskFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "state.db")
		s, err := Open(path, Options{NoFsync: true, FlushInterval: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		attempts := diskFull(s, 3)
		s.ApplyBatch(entries(1, put("a", "1"), put("b", "1")))
		time.Sleep(150 * time.Millisecond) // the first flush fails
		synctest.Wait()
		stall := s.Stalled()
		if code := reason.Of(stall, reason.OK); code != reason.DiskFull || !errors.Is(stall, syscall.ENOSPC) {
			t.Fatalf("Stalled() = %v (reason %v), want a disk-full error", stall, code)
		}
		if v, err := s.Get("a"); err != nil || string(v.Value) != "1" {
			t.Fatalf("Get(a) while stalled = %+v, %v; reads go on", v, err)
		}
		done := make(chan []Result)
		go func() { done <- s.ApplyBatch(entries(3, put("a", "2"))) }()
		synctest.Wait()
		select {
		case out := <-done:
			t.Fatalf("ApplyBatch returned %+v while the flush fails", out)
		default:
		}
		out := <-done // the retries (50, 100 ms) fail, the third succeeds
		if out[0] != (Result{Revision: 3}) {
			t.Fatalf("ApplyBatch after the disk recovered = %+v", out)
		}
		if err := s.Stalled(); err != nil {
			t.Fatalf("Stalled() after the flush went through = %v", err)
		}
		if n := attempts.Load(); n != 4 {
			t.Errorf("%d commit attempts, want 3 refused and 1 accepted", n)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		r := openAt(t, path, Options{})
		if got := dump(t, r); got.Applied != 3 || got.Revision != 3 || len(got.KVs) != 2 {
			t.Fatalf("after reopen: %+v, want applied 3 revision 3 and keys a, b", got)
		}
	})
}

// TestWriteBehind_CloseWhileDiskFull: Close gives up on a flush the disk refuses; the file
// keeps its last committed state, which the raft log replays from.
func TestWriteBehind_CloseWhileDiskFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "state.db")
		s, err := Open(path, Options{NoFsync: true, FlushInterval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		s.ApplyBatch(entries(1, put("a", "1")))
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		diskFull(s, 1<<30)
		s.ApplyBatch(entries(2, put("a", "2")))
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		r := openAt(t, path, Options{})
		if kv, err := r.Get("a"); err != nil || string(kv.Value) != "1" || r.AppliedIndex() != 1 {
			t.Fatalf("after Close on a full disk: Get(a) = %+v, %v, applied %d; want the committed state at 1", kv, err, r.AppliedIndex())
		}
	})
}

// TestWriteBehind_RestoreDropsMemory: a snapshot replaces what memory held as well.
func TestWriteBehind_RestoreDropsMemory(t *testing.T) {
	src := openStore(t, Options{})
	src.ApplyBatch(entries(1, put("x", "1")))
	s := openStore(t, behind)
	s.ApplyBatch(entries(1, put("a", "1"), put("b", "1")))
	if err := s.Restore(bytes.NewReader(snapshotBytes(t, src))); err != nil {
		t.Fatal(err)
	}
	assertState(t, dump(t, s), dump(t, src))
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	assertState(t, dump(t, s), dump(t, src))
}
