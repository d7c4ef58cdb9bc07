package store

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mirrorkv/mirrorkv/reason"
)

// diskFull makes the next n commits of s fail with ENOSPC and counts the attempts.
func diskFull(s *Store, n int32) (attempts *atomic.Int32) {
	var left atomic.Int32
	left.Store(n)
	attempts = new(atomic.Int32)
	s.failCommit = func() error {
		attempts.Add(1)
		if left.Add(-1) >= 0 {
			return syscall.ENOSPC
		}
		return nil
	}
	return attempts
}

func TestStore_ApplyBatch_DiskFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs syncBuffer
		dir := t.TempDir()
		s := openAt(t, filepath.Join(dir, "state.db"), Options{NoFsync: true, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		mustApply(t, s, put("a", "1"))
		attempts := diskFull(s, 3)

		start := time.Now()
		out := s.ApplyBatch(entries(1, put("a", "1"), put("a", "2"), put("b", "1"), del("a")))

		if waited := time.Since(start); waited != 350*time.Millisecond {
			t.Errorf("waited %v, want 50+100+200ms of backoff", waited)
		}
		if n := attempts.Load(); n != 4 {
			t.Errorf("%d attempts, want 4", n)
		}
		want := []Result{{}, {Revision: 2}, {Revision: 3}, {Revision: 4}}
		for i := range want {
			if out[i] != want[i] {
				t.Fatalf("result %d = %+v, want %+v", i, out[i], want[i])
			}
		}
		// Applied once: three failed attempts moved nothing.
		if s.Revision() != 4 || s.AppliedIndex() != 4 {
			t.Fatalf("revision %d applied %d, want 4 and 4", s.Revision(), s.AppliedIndex())
		}
		if kv, err := s.Get("b"); err != nil || kv.Revision != 3 || kv.Created != 3 {
			t.Fatalf("Get(b) = %+v, %v", kv, err)
		}
		if out := s.ApplyBatch(entries(2, put("a", "2"), put("b", "1"))); out[0] != (Result{}) || out[1] != (Result{}) {
			t.Fatalf("replay after the retries = %+v", out)
		}
		msg := logs.String()
		for _, want := range []string{"stops applying until the disk accepts writes", "apply batch at index 2", "no space left on device", "free space in " + dir, "store writes again"} {
			if !strings.Contains(msg, want) {
				t.Errorf("log lacks %q:\n%s", want, msg)
			}
		}
	})
}

func TestStore_ApplyBatch_BackoffCaps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := openStore(t, Options{})
		attempts := diskFull(s, 8)
		start := time.Now()
		s.ApplyBatch(entries(1, put("a", "1")))
		// 50+100+200+400+800+1600, then the cap: 2000+2000.
		if waited := time.Since(start); waited != 7150*time.Millisecond || attempts.Load() != 9 {
			t.Fatalf("waited %v over %d attempts, want 7.15s over 9", waited, attempts.Load())
		}
	})
}

func TestStore_ApplyBatch_CloseWhileDiskFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "state.db")
		s, err := Open(path, Options{NoFsync: true})
		if err != nil {
			t.Fatal(err)
		}
		mustApply(t, s, put("a", "1"))
		diskFull(s, 1<<30)
		done := make(chan []Result)
		go func() { done <- s.ApplyBatch(entries(1, put("a", "x"), put("b", "1"))) }()
		time.Sleep(time.Minute)
		synctest.Wait()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		out := <-done
		if out[0] != (Result{}) || !errors.Is(out[1].Err, ErrClosed) {
			t.Fatalf("results = %+v, want a skip and ErrClosed", out)
		}
		s = openAt(t, path, Options{NoFsync: true})
		if s.AppliedIndex() != 1 || s.Revision() != 1 {
			t.Fatalf("after reopen applied %d revision %d, want 1 and 1", s.AppliedIndex(), s.Revision())
		}
	})
}

// TestStore_ConcurrentReads reads while batches apply and snapshots restore, under -race.
// Every batch writes all keys with one value, so a read that sees two values in one listing
// saw half a batch.
func TestStore_ConcurrentReads(t *testing.T) {
	for _, m := range storeModes {
		t.Run(m.name, func(t *testing.T) {
			s := openStore(t, m.opts)
			const keys = 20
			batch := func(n int) []Command {
				cmds := make([]Command, keys)
				for i := range cmds {
					cmds[i] = put(fmt.Sprintf("k/%02d", i), fmt.Sprint(n))
				}
				return cmds
			}
			mustApply(t, s, batch(0)...)
			old := snapshotBytes(t, s)

			stop := make(chan struct{})
			var wg sync.WaitGroup
			var reads atomic.Int64
			for range 3 {
				wg.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
						}
						kvs, _, err := s.List(Range{Prefix: "k/"})
						if err != nil {
							t.Errorf("List: %v", err)
							return
						}
						if len(kvs) != keys {
							t.Errorf("List saw %d keys, want %d", len(kvs), keys)
							return
						}
						for _, kv := range kvs {
							if !bytes.Equal(kv.Value, kvs[0].Value) {
								t.Errorf("one listing holds %q and %q: half a batch", kvs[0].Value, kv.Value)
								return
							}
						}
						if _, err := s.Get("k/07"); err != nil {
							t.Errorf("Get: %v", err)
							return
						}
						if _, err := s.Members(); err != nil {
							t.Errorf("Members: %v", err)
							return
						}
						reads.Add(1)
					}
				})
			}
			wg.Go(func() {
				for range 20 {
					select {
					case <-stop:
						return
					default:
					}
					if snapshotBytes(t, s) == nil {
						return
					}
				}
			})
			for n := 1; n <= 150; n++ {
				mustApply(t, s, batch(n)...)
				if n%30 == 0 {
					if err := s.Restore(bytes.NewReader(old)); err != nil {
						t.Fatalf("Restore: %v", err)
					}
				}
			}
			close(stop)
			wg.Wait()
			if reads.Load() == 0 {
				t.Fatal("no read completed")
			}
		})
	}
}

func TestStore_Stalled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := openStore(t, Options{NoFsync: true})
		if err := s.Stalled(); err != nil {
			t.Fatalf("Stalled() before any failure = %v", err)
		}
		diskFull(s, 3)
		done := make(chan []Result)
		go func() { done <- s.ApplyBatch(entries(1, put("a", "1"))) }()
		synctest.Wait() // ApplyBatch failed once and waits to retry
		err := s.Stalled()
		if err == nil {
			t.Fatal("Stalled() = nil while ApplyBatch retries a failed commit")
		}
		if code := reason.Of(err, reason.OK); code != reason.DiskFull {
			t.Errorf("Stalled() reason %v, want %v: %v", code, reason.DiskFull, err)
		}
		if !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("Stalled() = %v, want it to wrap ENOSPC", err)
		}
		if out := <-done; out[0].Err != nil {
			t.Fatalf("ApplyBatch after the disk recovered: %v", out[0].Err)
		}
		if err := s.Stalled(); err != nil {
			t.Errorf("Stalled() after the commit went through = %v", err)
		}
	})
}

func TestStore_Stalled_Close(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := openStore(t, Options{NoFsync: true})
		s.failCommit = func() error { return syscall.EIO }
		done := make(chan []Result)
		go func() { done <- s.ApplyBatch(entries(1, put("a", "1"))) }()
		synctest.Wait()
		if code := reason.Of(s.Stalled(), reason.OK); code != reason.StorageFail {
			t.Errorf("Stalled() reason %v on EIO, want %v", code, reason.StorageFail)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if out := <-done; !errors.Is(out[0].Err, ErrClosed) {
			t.Fatalf("ApplyBatch interrupted by Close: %v, want ErrClosed", out[0].Err)
		}
		if err := s.Stalled(); err != nil {
			t.Errorf("Stalled() after Close interrupted the retries = %v", err)
		}
	})
}
